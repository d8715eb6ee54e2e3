"""The NVML backend: this host's NVIDIA GPUs, and MIG slices made with NVML's GPU/compute instance API.

It never changes MIG mode and never resets a GPU: `NvmlLibrary` (the only code that calls pynvml) has
no such call. A GPU with MIG mode off gets a SliceError that tells an administrator how to enable it.

Model rule: a GPU's catalog model is the profile table whose product names include the NVML name
(`NVIDIA A100-SXM4-40GB`, compared as profiles.normalize_product does) and whose memory is within 5%
of the GPU's total; otherwise None (the GPU is offered whole, with no MIG resources, and create_slice
refuses it). The name alone already separates 40GB from 80GB cards; the memory check catches a card
whose name matches a table its memory does not (a different SKU, a driver reporting other memory).

Profile ids: the tables name NVML's GPU instance profile constant for each profile (`nvml_profile`,
e.g. 1g.10gb on an A100-40GB is NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2, `+me` profiles are
..._1_SLICE_REV1). Before creating, the backend asks NVML for that constant's profile info and checks its
id against the table's `profile_id` (the nvidia-smi ID), refusing on a mismatch rather than creating
the wrong shape. The compute instance always takes the whole GPU instance (the CI profile with the
GPU instance's compute slices, shared engines), as `nvidia-smi mig -cgi ... -C` does.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import re
import socket
from dataclasses import dataclass
from typing import Any

from flotilla.slicer.backends.base import (
    MigDevice,
    NoGPUError,
    SliceError,
    check_placement,
    host_resources,
    mig_disabled,
)
from flotilla.slicer.inventory import GPUDevice, NodeInventory, gfd_product
from flotilla.slicer.profiles import ProfileCatalog, UnknownGPUModelError

MEMORY_TOLERANCE = 0.05
_MAX_INSTANCES = 32  # room for every GPU instance of a profile (NVML: at most 7 per GPU)


class NvmlError(RuntimeError):
    """An NVML call failed; `code` is pynvml's error class name (`NVMLError_NotFound`)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code} ({message})")


@dataclass(frozen=True)
class GpuInstance:
    """What nvmlGpuInstanceGetInfo says about a GPU instance."""

    id: int
    profile_id: int
    start: int
    size: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlLibrary:
    """The NVML calls Flotilla makes, over pynvml, with plain Python values and NvmlError.

    Read-only calls plus GPU/compute instance create and destroy; nothing changes MIG mode or resets.
    Tests substitute a subclass (a fake GPU) at this seam.
    """

    def __init__(self) -> None:
        try:
            self.nvml: Any = importlib.import_module("pynvml")
        except ImportError:
            raise NvmlError("ImportError", "pynvml is not installed (pip install nvidia-ml-py)") from None

    def _call(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.nvml, fn)(*args)
        except self.nvml.NVMLError as exc:
            raise NvmlError(type(exc).__name__, f"{fn}: {exc}") from None

    def init(self) -> None:
        self._call("nvmlInit")

    def shutdown(self) -> None:
        self._call("nvmlShutdown")

    def driver_version(self) -> str:
        return _text(self._call("nvmlSystemGetDriverVersion"))

    def device_count(self) -> int:
        return int(self._call("nvmlDeviceGetCount"))

    def handle(self, index: int) -> Any:
        return self._call("nvmlDeviceGetHandleByIndex", index)

    def handle_by_uuid(self, gpu_uuid: str) -> Any:
        return self._call("nvmlDeviceGetHandleByUUID", gpu_uuid)

    def name(self, handle: Any) -> str:
        return _text(self._call("nvmlDeviceGetName", handle))

    def uuid(self, handle: Any) -> str:
        return _text(self._call("nvmlDeviceGetUUID", handle))

    def memory_mib(self, handle: Any) -> int:
        return int(self._call("nvmlDeviceGetMemoryInfo", handle).total) // (1 << 20)

    def mig_mode(self, handle: Any) -> bool | None:
        """The current MIG mode; None when the GPU cannot do MIG."""
        try:
            current, _pending = self._call("nvmlDeviceGetMigMode", handle)
        except NvmlError as exc:
            if exc.code in ("NVMLError_NotSupported", "NVMLError_FunctionNotFound"):
                return None
            raise
        return bool(current == self.nvml.NVML_DEVICE_MIG_ENABLE)

    def gpu_instance_profile_id(self, handle: Any, nvml_profile: str) -> int:
        """The profile id NVML gives the GPU instance profile constant `nvml_profile` on this GPU."""
        index = getattr(self.nvml, nvml_profile)
        try:
            return int(self._call("nvmlDeviceGetGpuInstanceProfileInfo", handle, index).id)
        except NvmlError as exc:  # drivers before the V2 struct: ask with version 1
            if exc.code != "NVMLError_FunctionNotFound":
                raise
            return int(self._call("nvmlDeviceGetGpuInstanceProfileInfo", handle, index, 1).id)

    def _gi_info(self, gi: Any) -> GpuInstance:
        info = self._call("nvmlGpuInstanceGetInfo", gi)
        return GpuInstance(int(info.id), int(info.profileId), int(info.placement.start), int(info.placement.size))

    def gpu_instances(self, handle: Any, profile_id: int) -> list[tuple[Any, GpuInstance]]:
        array = (self.nvml.c_nvmlGpuInstance_t * _MAX_INSTANCES)()
        count = ctypes.c_uint(_MAX_INSTANCES)
        self._call("nvmlDeviceGetGpuInstances", handle, profile_id, array, ctypes.byref(count))
        return [(array[i], self._gi_info(array[i])) for i in range(count.value)]

    def gpu_instance_by_id(self, handle: Any, gi_id: int) -> tuple[Any, GpuInstance] | None:
        try:
            gi = self._call("nvmlDeviceGetGpuInstanceById", handle, gi_id)
        except NvmlError as exc:
            if exc.code in ("NVMLError_NotFound", "NVMLError_InvalidArgument"):
                return None
            raise
        return gi, self._gi_info(gi)

    def create_gpu_instance(self, handle: Any, profile_id: int, start: int, size: int) -> tuple[Any, GpuInstance]:
        placement = self.nvml.c_nvmlGpuInstancePlacement_t()
        placement.start, placement.size = start, size
        gi = self._call("nvmlDeviceCreateGpuInstanceWithPlacement", handle, profile_id, ctypes.byref(placement))
        return gi, self._gi_info(gi)

    def destroy_gpu_instance(self, gi: Any) -> None:
        self._call("nvmlGpuInstanceDestroy", gi)

    def compute_instance_by_id(self, gi: Any, ci_id: int) -> Any | None:
        try:
            return self._call("nvmlGpuInstanceGetComputeInstanceById", gi, ci_id)
        except NvmlError as exc:
            if exc.code in ("NVMLError_NotFound", "NVMLError_InvalidArgument"):
                return None
            raise

    def create_compute_instance(self, gi: Any, compute_slices: int) -> tuple[Any, int]:
        """A compute instance over the whole GPU instance; returns (handle, compute instance id)."""
        ci_profile = getattr(self.nvml, f"NVML_COMPUTE_INSTANCE_PROFILE_{compute_slices}_SLICE")
        shared = self.nvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
        info = self._call("nvmlGpuInstanceGetComputeInstanceProfileInfo", gi, ci_profile, shared)
        ci = self._call("nvmlGpuInstanceCreateComputeInstance", gi, info.id)
        return ci, int(self._call("nvmlComputeInstanceGetInfo", ci).id)

    def destroy_compute_instance(self, ci: Any) -> None:
        self._call("nvmlComputeInstanceDestroy", ci)

    def mig_devices(self, handle: Any) -> list[tuple[str, int, int]]:
        """(MIG UUID, GPU instance id, compute instance id) of every MIG device on the GPU."""
        out = []
        for i in range(int(self._call("nvmlDeviceGetMaxMigDeviceCount", handle))):
            try:
                mig = self._call("nvmlDeviceGetMigDeviceHandleByIndex", handle, i)
            except NvmlError as exc:
                if exc.code in ("NVMLError_NotFound", "NVMLError_InvalidArgument"):
                    continue
                raise
            gi_id = int(self._call("nvmlDeviceGetGpuInstanceId", mig))
            ci_id = int(self._call("nvmlDeviceGetComputeInstanceId", mig))
            out.append((self.uuid(mig), gi_id, ci_id))
        return out


def node_name(hostname: str) -> str:
    """A DNS-safe node name from a hostname: lowercased, other characters as dashes (kubelet's default)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", hostname.lower()).strip("-.")
    name = re.sub(r"\.{2,}", ".", name)[:253].strip("-.")
    return name or "localhost"


def match_model(catalog: ProfileCatalog, nvml_name: str, memory_mib: int) -> str | None:
    """The catalog model of a GPU by NVML name and memory (see the module docstring); None if none fits."""
    try:
        model = catalog.for_product(nvml_name)
    except UnknownGPUModelError:
        return None
    if abs(memory_mib - model.memory_mib) > MEMORY_TOLERANCE * model.memory_mib:
        return None
    return model.model


class NvmlBackend:
    """This host's GPUs through NVML; one node named after the host."""

    name = "nvml"

    def __init__(self, catalog: ProfileCatalog, library: NvmlLibrary | None = None) -> None:
        """Initialise NVML; NoGPUError (with NVML's reason) when it fails or finds no GPU."""
        self.catalog = catalog
        try:
            self.lib = library if library is not None else NvmlLibrary()
            self.lib.init()
        except NvmlError as exc:
            raise NoGPUError(f"no NVIDIA GPU found: {exc}") from None
        try:
            count = self.lib.device_count()
        except NvmlError as exc:
            self.lib.shutdown()
            raise NoGPUError(f"no NVIDIA GPU found: {exc}") from None
        if count == 0:
            self.lib.shutdown()
            raise NoGPUError("no NVIDIA GPU found: NVML works but reports 0 GPUs")
        self._gpus: dict[str, GPUDevice] = {}

    def discover(self) -> list[NodeInventory]:
        driver = self.lib.driver_version()
        gpus = []
        for index in range(self.lib.device_count()):
            h = self.lib.handle(index)
            name, memory, mig = self.lib.name(h), self.lib.memory_mib(h), self.lib.mig_mode(h)
            model = match_model(self.catalog, name, memory)
            gpus.append(
                GPUDevice(index, self.lib.uuid(h), model, gfd_product(name), memory, mig is not None, bool(mig), False)
            )
        self._gpus = {g.uuid: g for g in gpus}
        kinds = sorted({g.product for g in gpus})
        source = f"nvml: driver {driver}, {len(gpus)} x {' + '.join(kinds)}"
        cpu, memory_q = host_resources()
        return [NodeInventory(node_name(socket.gethostname()), tuple(gpus), False, cpu, memory_q, source)]

    def _gpu(self, gpu_uuid: str) -> tuple[GPUDevice, Any]:
        if gpu_uuid not in self._gpus:
            self.discover()
        gpu = self._gpus.get(gpu_uuid)
        if gpu is None:
            raise SliceError(f"no GPU {gpu_uuid} on this host; it has {sorted(self._gpus)}")
        try:
            return gpu, self.lib.handle_by_uuid(gpu_uuid)
        except NvmlError as exc:
            raise SliceError(f"GPU {gpu.index} ({gpu_uuid}) does not answer: {exc}") from None

    def slices(self, gpu_uuid: str) -> list[MigDevice]:
        gpu, h = self._gpu(gpu_uuid)
        if gpu.model is None or not self.lib.mig_mode(h):
            return []
        by_id = {p.profile_id: p for p in self.catalog.model(gpu.model).profiles}
        out = []
        try:
            for mig_uuid, gi_id, ci_id in self.lib.mig_devices(h):
                found = self.lib.gpu_instance_by_id(h, gi_id)
                if found is None:
                    continue
                info = found[1]
                name = by_id[info.profile_id].name if info.profile_id in by_id else f"profile-id-{info.profile_id}"
                out.append(MigDevice(mig_uuid, gpu_uuid, name, info.start, info.size, gi_id, ci_id))
        except NvmlError as exc:
            raise SliceError(f"cannot list the MIG devices of GPU {gpu.index}: {exc}") from None
        return sorted(out, key=lambda d: (d.start, d.gpu_instance_id, d.compute_instance_id))

    def create_slice(self, gpu_uuid: str, profile: str, start: int) -> MigDevice:
        gpu, h = self._gpu(gpu_uuid)
        if gpu.model is None:
            raise SliceError(f"GPU {gpu.index} ({gpu.product}) has no MIG profile table; it is offered whole only")
        if not self.lib.mig_mode(h):
            raise mig_disabled(gpu.index, gpu_uuid)
        p = check_placement(self.catalog.model(gpu.model), profile, start)
        for existing in self.slices(gpu_uuid):
            if existing.profile == p.name and existing.start == start:
                return existing
        try:
            profile_id = self.lib.gpu_instance_profile_id(h, p.nvml_profile)
            if profile_id != p.profile_id:
                raise SliceError(
                    f"NVML gives {p.nvml_profile} id {profile_id} on GPU {gpu.index} but the {gpu.model} table says "
                    f"{p.name} is id {p.profile_id}; not creating a slice of the wrong shape (fix the profile table)"
                )
            # A GPU instance left without its compute instance (a crash between the two) is reused.
            leftover = [(gi, info) for gi, info in self.lib.gpu_instances(h, profile_id) if info.start == start]
            created = not leftover
            gi, info = leftover[0] if leftover else self.lib.create_gpu_instance(h, profile_id, start, p.size)
        except NvmlError as exc:
            hint = " (its slots overlap an existing instance)" if exc.code == "NVMLError_InsufficientResources" else ""
            raise SliceError(f"cannot create {p.name} at slot {start} on GPU {gpu.index}{hint}: {exc}") from None
        gi_id = info.id
        try:
            ci, ci_id = self.lib.create_compute_instance(gi, p.compute_slices)
            mig = next((u for u, g, c in self.lib.mig_devices(h) if (g, c) == (gi_id, ci_id)), None)
            if mig is None:
                self.lib.destroy_compute_instance(ci)
                raise NvmlError("NoMigDevice", f"no MIG device for GPU instance {gi_id} / compute instance {ci_id}")
        except NvmlError as exc:
            if created:  # roll back; if that fails too, the next create_slice reuses the leftover instance
                with contextlib.suppress(NvmlError):
                    self.lib.destroy_gpu_instance(gi)
            raise SliceError(f"cannot create {p.name} at slot {start} on GPU {gpu.index}: {exc}") from None
        return MigDevice(mig, gpu_uuid, p.name, start, p.size, gi_id, ci_id)

    def destroy_slice(self, device: MigDevice) -> None:
        gpu = self._gpus.get(device.gpu_uuid)
        try:
            h = self.lib.handle_by_uuid(device.gpu_uuid)
            found = self.lib.gpu_instance_by_id(h, device.gpu_instance_id)
            if found is None or found[1].start != device.start or found[1].size != device.size:
                return  # gone already (its id may now be another slice's: leave that one alone)
            gi = found[0]
            ci = self.lib.compute_instance_by_id(gi, device.compute_instance_id)
            if ci is not None:
                self.lib.destroy_compute_instance(ci)
            self.lib.destroy_gpu_instance(gi)
        except NvmlError as exc:
            if exc.code == "NVMLError_NotFound":
                return
            hint = " (processes still use it; stop them first)" if exc.code == "NVMLError_InUse" else ""
            where = f"GPU {gpu.index}" if gpu else device.gpu_uuid
            raise SliceError(f"cannot destroy {device.profile} {device.uuid} on {where}{hint}: {exc}") from None

    def close(self) -> None:
        with contextlib.suppress(NvmlError):  # closing must not fail
            self.lib.shutdown()
