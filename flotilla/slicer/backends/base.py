"""The device backend contract: discover a node's GPUs, create and destroy MIG slices on them.

Two backends implement it: `nvml` (the real GPUs of this host) and `emulated` (GPUs described by an
`EmulatedGPUConfig`). The store's AllocationClaims are the durable record of slices; after a restart the
runtime asks the backend to create them again, so create and destroy are idempotent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from flotilla.slicer.inventory import NodeInventory
from flotilla.slicer.profiles import GPUModel, MigProfile, UnknownProfileError


class SliceError(RuntimeError):
    """A slice that cannot be created or destroyed; the message says why and, where there is one, the fix."""


class NoGPUError(RuntimeError):
    """The NVML backend was asked for, but there is no usable NVIDIA GPU."""


@dataclass(frozen=True)
class MigDevice:
    """One MIG device: a GPU instance of `profile` at slots start .. start+size-1, with one compute instance."""

    uuid: str  # MIG-<uuid>, what CUDA_VISIBLE_DEVICES takes
    gpu_uuid: str
    profile: str  # 3g.20gb
    start: int
    size: int
    gpu_instance_id: int
    compute_instance_id: int


class GPUBackend(Protocol):
    """What the node agent and the runtime need from GPUs."""

    name: str  # "emulated" | "nvml"

    def discover(self) -> list[NodeInventory]:
        """The nodes (NVML: this host, one node) and their GPUs."""
        ...

    def create_slice(self, gpu_uuid: str, profile: str, start: int) -> MigDevice:
        """Create `profile` at slot `start` on the GPU; if that exact slice exists already, return it."""
        ...

    def destroy_slice(self, device: MigDevice) -> None:
        """Destroy the slice; nothing happens if it is gone already."""
        ...

    def slices(self, gpu_uuid: str) -> list[MigDevice]:
        """The GPU's MIG devices, by start slot."""
        ...

    def close(self) -> None:
        """Release the library (NVML) or nothing (emulated)."""
        ...


def check_placement(model: GPUModel, profile: str, start: int) -> MigProfile:
    """The model's `profile`, if `start` is one of its placements; SliceError otherwise."""
    try:
        p = model.profile(profile)
    except UnknownProfileError as exc:
        raise SliceError(str(exc)) from None
    if start not in p.starts:
        raise SliceError(
            f"MIG profile {p.name} on {model.model} cannot start at slot {start}; valid starts: {list(p.starts)}"
        )
    return p


def mig_disabled(index: int, gpu_uuid: str) -> SliceError:
    """The error for a GPU whose MIG mode is off: Flotilla never changes MIG mode itself."""
    return SliceError(
        f"MIG mode is disabled on GPU {index} ({gpu_uuid}); an administrator must enable it "
        f"(`sudo nvidia-smi -i {index} -mig 1`, with no processes on the GPU); Flotilla never changes MIG mode"
    )


def host_resources() -> tuple[str, str]:
    """This host's CPU count and memory as quantities (`16`, `131927236Ki`), as the kubelet reports them."""
    cpu = str(os.cpu_count() or 1)
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 1024}Ki"
    except (ValueError, OSError, AttributeError):  # no sysconf (not Linux/Unix)
        memory = "0"
    return cpu, memory
