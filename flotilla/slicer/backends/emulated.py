"""The emulated backend: GPUs described by an EmulatedGPUConfig, MIG slices kept in memory.

Slices live only in this process: the store's AllocationClaims are the durable record, and the runtime
creates them again after a restart. Everything is deterministic so that a re-created slice is the same
slice: MIG UUIDs are uuid5 of (GPU UUID, profile, start); the GPU instance id is the start slot (unique,
since live slices on a GPU never overlap) and the compute instance id is 0 (one per GPU instance, as
NVML numbers them).

create_slice checks what NVML would refuse: an unknown profile, a start that is not one of the
profile's placements, slots already taken, more instances than the profile allows (a `+me` profile: one
per GPU), and MIG mode off. (Compute slices need no check of their own: in every table the placements
that fit side by side never add up to more than the GPU's 7.)
"""

from __future__ import annotations

import uuid

from flotilla.slicer.backends.base import MigDevice, SliceError, check_placement, host_resources, mig_disabled
from flotilla.slicer.inventory import UUID_NAMESPACE, EmulatedGPUConfig, GPUDevice, NodeInventory, emulated_inventory
from flotilla.slicer.profiles import ProfileCatalog


def mig_uuid(gpu_uuid: str, profile: str, start: int) -> str:
    """An emulated MIG device's UUID: `MIG-` + a uuid5, the same for the same slice on every run."""
    return f"MIG-{uuid.uuid5(UUID_NAMESPACE, f'{gpu_uuid}/mig/{profile}@{start}')}"


def _slots(start: int, size: int) -> str:
    return f"slot {start}" if size == 1 else f"slots {start}-{start + size - 1}"


class EmulatedBackend:
    """GPUs that exist only in the config; see the module docstring for what create_slice enforces."""

    name = "emulated"

    def __init__(
        self,
        config: EmulatedGPUConfig,
        catalog: ProfileCatalog,
        reason: str = "",
        *,
        host: tuple[str, str] | None = None,
    ) -> None:
        """`reason`: why GPUs are emulated (in every node's source sentence); `host`: default (cpu, memory)."""
        cpu, memory = host if host is not None else host_resources()
        self.config = config
        self.catalog = catalog
        self.reason = reason
        self._nodes = emulated_inventory(config, catalog, reason, cpu, memory)
        self._gpus: dict[str, GPUDevice] = {gpu.uuid: gpu for node in self._nodes for gpu in node.gpus}
        self._slices: dict[str, dict[int, MigDevice]] = {}  # gpu uuid -> start -> device

    def discover(self) -> list[NodeInventory]:
        return list(self._nodes)

    def _gpu(self, gpu_uuid: str) -> GPUDevice:
        try:
            return self._gpus[gpu_uuid]
        except KeyError:
            raise SliceError(f"no GPU {gpu_uuid} on the emulated nodes ({self.config.describe()})") from None

    def create_slice(self, gpu_uuid: str, profile: str, start: int) -> MigDevice:
        gpu = self._gpu(gpu_uuid)
        if not gpu.mig_enabled:
            raise mig_disabled(gpu.index, gpu.uuid)
        assert gpu.model is not None  # emulated GPUs always have a catalog model
        model = self.catalog.model(gpu.model)
        p = check_placement(model, profile, start)
        live = self._slices.setdefault(gpu_uuid, {})
        same = live.get(start)
        if same is not None and same.profile == p.name:
            return same
        end = start + p.size
        for other in live.values():
            if other.start < end and start < other.start + other.size:
                raise SliceError(
                    f"{p.name} at {_slots(start, p.size)} on GPU {gpu_uuid} overlaps {other.profile} at "
                    f"{_slots(other.start, other.size)} ({other.uuid})"
                )
        if sum(1 for other in live.values() if other.profile == p.name) >= p.max_instances:
            raise SliceError(f"{model.model} allows at most {p.max_instances} {p.name} instance(s) per GPU")
        device = MigDevice(mig_uuid(gpu_uuid, p.name, start), gpu_uuid, p.name, start, p.size, start, 0)
        live[start] = device
        return device

    def destroy_slice(self, device: MigDevice) -> None:
        live = self._slices.get(device.gpu_uuid, {})
        if live.get(device.start) == device:
            del live[device.start]

    def slices(self, gpu_uuid: str) -> list[MigDevice]:
        self._gpu(gpu_uuid)
        return sorted(self._slices.get(gpu_uuid, {}).values(), key=lambda d: d.start)

    def close(self) -> None:
        """Nothing to release."""
