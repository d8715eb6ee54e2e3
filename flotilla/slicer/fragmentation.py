"""Fragmentation: free slots that no pending request can use.

A free slot is usable when some pending profile has a placement on that GPU covering it whose
slots are all free (and the profile's per-GPU instance limit is not reached). Everything else that
is free is stranded: capacity the cluster has but cannot give to anything that waits. Unhealthy
GPUs count neither as free nor as stranded. Pure functions over snapshots.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from flotilla.slicer.placement import GPUState
from flotilla.slicer.profiles import ProfileCatalog


@dataclass(frozen=True)
class Fragmentation:
    free_slots: int
    stranded_slots: int
    total_slots: int  # of the healthy GPUs

    @property
    def stranded_share_of_free(self) -> float:
        return self.stranded_slots / self.free_slots if self.free_slots else 0.0

    @property
    def stranded_share_of_total(self) -> float:
        return self.stranded_slots / self.total_slots if self.total_slots else 0.0


def usable_slots(catalog: ProfileCatalog, gpu: GPUState, pending: Collection[str]) -> int:
    """The bitmask of `gpu`'s free slots that some pending profile could be placed over."""
    usable = 0
    for profile in pending:
        slots = catalog.slots(gpu.model, profile)
        if slots is None or (slots.limited and gpu.count(profile) >= slots.profile.max_instances):
            continue
        for r in slots.ranges:
            if not r & gpu.occupied:
                usable |= r
    return usable


def stranded_slots(catalog: ProfileCatalog, gpu: GPUState, pending: Collection[str]) -> int:
    """How many of `gpu`'s free slots no pending profile can use."""
    free = catalog.geometry[gpu.model].full & ~gpu.occupied
    return (free & ~usable_slots(catalog, gpu, pending)).bit_count()


def fragmentation(catalog: ProfileCatalog, gpus: Sequence[GPUState], pending: Collection[str]) -> Fragmentation:
    """Free and stranded slots over the healthy GPUs, for the profiles in `pending`."""
    free = stranded = total = 0
    for gpu in gpus:
        if not gpu.healthy:
            continue
        geometry = catalog.geometry[gpu.model]
        total += geometry.slots
        free += geometry.slots - (gpu.occupied & geometry.full).bit_count()
        stranded += stranded_slots(catalog, gpu, pending)
    return Fragmentation(free, stranded, total)
