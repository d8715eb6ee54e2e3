"""Slot geometry: a GPU model's MIG placements as bitmasks, with lookup tables per occupancy.

A GPU's occupancy is an `occupied` bitmask over its slots (bit i set = slot i is taken). Every
question a placement policy asks of one GPU depends only on that mask, so each model's answers are
computed once, for all 2^8 masks, when the catalog is built; a decision then costs a table lookup
per GPU.

Placeable capacity of a mask (the packing measure, used by the `packing` policy and the benchmark):

    capacity(occupied) = sum over profiles q of  size_q * min(max_instances_q, fits_q(occupied))

where fits_q counts q's placements (start, size) whose slots are all free. Placements of one profile
never overlap each other (aligned starts), so fits_q is how many q instances could still be created;
summing over profiles weighs each by the slots it would use. The capacity a placement costs is
capacity(occupied) - capacity(occupied | placement): small when it lands where little else fits.

Orphaned slots of a mask: free slots that no placement of any of the model's profiles covers with
all its slots free (on an A100, slot 7 once slot 6 is taken). They are lost until a neighbour frees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flotilla.slicer.profiles import GPUModel, MigProfile

MAX_SLOTS = 8  # NVIDIA MIG GPUs have at most 8 memory slices (placement slots)
MASKS = 1 << MAX_SLOTS  # every occupancy of an 8-slot GPU


def range_mask(start: int, size: int) -> int:
    """The bitmask of slots start .. start+size-1."""
    return ((1 << size) - 1) << start


def slots_free(occupied: int, slots: int) -> int:
    """How many of the GPU's `slots` are not in `occupied`."""
    return slots - (occupied & ((1 << slots) - 1)).bit_count()


@dataclass(frozen=True)
class ProfileSlots:
    """One profile of one model, with per-occupancy answers (index: the GPU's occupied mask).

    `first_start[m]`: the lowest start whose slots are free, -1 if none.
    `least_loss_start[m]`: the free start with the smallest (capacity lost, slots orphaned after,
    slots free after, start), -1 if none; `least_loss_key[m]` packs the first three into one int
    ((loss * 16 + orphaned) * 16 + free), so comparing keys compares the tuples.
    """

    profile: MigProfile
    ranges: tuple[int, ...]  # one mask per start, in the order of profile.starts
    first_start: tuple[int, ...]
    least_loss_start: tuple[int, ...]
    least_loss_key: tuple[int, ...]
    min_key: int  # the smallest least_loss_key over all masks: nothing can beat it

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def size(self) -> int:
        return self.profile.size

    @property
    def limited(self) -> bool:
        """True when max_instances binds before the slots run out (the +me profiles: one per GPU)."""
        return self.profile.max_instances < len(self.profile.starts)

    def free_starts(self, occupied: int) -> tuple[int, ...]:
        """Every start whose slots are free under `occupied`."""
        return tuple(s for s, r in zip(self.profile.starts, self.ranges, strict=True) if not r & occupied)

    def mask_at(self, start: int) -> int:
        return range_mask(start, self.profile.size)


@dataclass(frozen=True)
class SlotGeometry:
    """A model's slots, placeable capacity per occupancy, and its profiles' lookup tables."""

    model: str
    slots: int
    capacity: tuple[int, ...]  # per occupied mask
    orphaned: tuple[int, ...]  # per occupied mask
    profiles: Mapping[str, ProfileSlots]

    @classmethod
    def of(cls, model: GPUModel) -> SlotGeometry:
        ranges = {p.name: tuple(range_mask(s, p.size) for s in p.starts) for p in model.profiles}
        every_range = {r for rs in ranges.values() for r in rs}
        full = (1 << model.slots) - 1
        capacity = tuple(_capacity(model, ranges, m) for m in range(MASKS))
        orphaned = tuple(_orphaned(every_range, full, m) for m in range(MASKS))
        return cls(
            model=model.model,
            slots=model.slots,
            capacity=capacity,
            orphaned=orphaned,
            profiles={
                p.name: _profile_slots(model.slots, p, ranges[p.name], capacity, orphaned) for p in model.profiles
            },
        )

    @property
    def full(self) -> int:
        return (1 << self.slots) - 1


def _capacity(model: GPUModel, ranges: Mapping[str, tuple[int, ...]], occupied: int) -> int:
    total = 0
    for p in model.profiles:
        fits = sum(1 for r in ranges[p.name] if not r & occupied)
        total += p.size * min(p.max_instances, fits)
    return total


def _orphaned(every_range: set[int], full: int, occupied: int) -> int:
    covered = 0
    for r in every_range:
        if not r & occupied:
            covered |= r
    return (full & ~occupied & ~covered).bit_count()


def _profile_slots(
    slots: int, p: MigProfile, ranges: tuple[int, ...], capacity: tuple[int, ...], orphaned: tuple[int, ...]
) -> ProfileSlots:
    first: list[int] = []
    best_start: list[int] = []
    best_key: list[int] = []
    for occupied in range(MASKS):
        free = [(s, r) for s, r in zip(p.starts, ranges, strict=True) if not r & occupied]
        first.append(free[0][0] if free else -1)
        if not free:
            best_start.append(-1)
            best_key.append(-1)
            continue
        key, start = min(
            (
                ((capacity[occupied] - capacity[occupied | r]) * 16 + orphaned[occupied | r]) * 16
                + slots_free(occupied | r, slots),
                s,
            )
            for s, r in free
        )
        best_start.append(start)
        best_key.append(key)
    return ProfileSlots(
        profile=p,
        ranges=ranges,
        first_start=tuple(first),
        least_loss_start=tuple(best_start),
        least_loss_key=tuple(best_key),
        min_key=min(k for k in best_key if k >= 0),
    )
