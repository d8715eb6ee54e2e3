"""Device backends: the emulator's slice rules, the NVML backend over a fake NVML, and detect()."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from flotilla.api.catalog import build_registry
from flotilla.api.loader import decode
from flotilla.slicer.backends import (
    EmulatedBackend,
    MigDevice,
    NoGPUError,
    NvmlBackend,
    NvmlError,
    NvmlLibrary,
    SliceError,
    detect,
    node_name,
)
from flotilla.slicer.backends.nvml import GpuInstance
from flotilla.slicer.inventory import EmulatedGPUConfig, node_object, parse_gpu_spec

from .builders import CATALOG

HOST = ("8", "32Gi")


def emulated(spec: str = "1x2xA100-40GB", **group: Any) -> EmulatedBackend:
    config = parse_gpu_spec(spec)
    if group:
        config = EmulatedGPUConfig.model_validate({"groups": [config.groups[0].model_dump() | group]})
    return EmulatedBackend(config, CATALOG, "test", host=HOST)


def first_gpu(backend: EmulatedBackend | NvmlBackend, index: int = 0) -> str:
    return backend.discover()[0].gpus[index].uuid


# --- emulated ---------------------------------------------------------------------------------------


def test_emulated_create_is_idempotent_and_deterministic() -> None:
    backend = emulated()
    gpu = first_gpu(backend)
    device = backend.create_slice(gpu, "3g.20gb", 4)
    assert re.fullmatch(r"MIG-[0-9a-f-]{36}", device.uuid)
    assert (device.gpu_uuid, device.profile, device.start, device.size) == (gpu, "3g.20gb", 4, 4)
    assert backend.create_slice(gpu, "3g.20gb", 4) == device
    assert backend.slices(gpu) == [device]
    # After a restart the runtime creates it again: the same device, UUID included.
    assert emulated().create_slice(gpu, "3g.20gb", 4) == device


def test_emulated_destroy_is_idempotent() -> None:
    backend = emulated()
    gpu = first_gpu(backend)
    small = backend.create_slice(gpu, "1g.5gb", 0)
    big = backend.create_slice(gpu, "3g.20gb", 4)
    assert backend.slices(gpu) == [small, big]
    backend.destroy_slice(small)
    backend.destroy_slice(small)
    assert backend.slices(gpu) == [big]
    backend.destroy_slice(big)
    # The freed slots can be used again: 4g + 2g + 1g fill all 7 compute slices.
    full = [backend.create_slice(gpu, p, s) for p, s in (("4g.20gb", 0), ("2g.10gb", 4), ("1g.5gb", 6))]
    assert backend.slices(gpu) == full


@pytest.mark.parametrize(
    ("existing", "request_", "words"),
    [
        ([("3g.20gb", 0)], ("1g.5gb", 2), ["1g.5gb at slot 2", "overlaps 3g.20gb at slots 0-3"]),
        ([("1g.5gb", 5)], ("3g.20gb", 4), ["3g.20gb at slots 4-7", "overlaps 1g.5gb at slot 5"]),
        ([], ("3g.20gb", 2), ["cannot start at slot 2", "valid starts: [0, 4]"]),
        ([], ("1g.5gb", 7), ["cannot start at slot 7", "valid starts: [0, 1, 2, 3, 4, 5, 6]"]),
        ([], ("1g.10gb+me", 0), ["A100-40GB has no MIG profile '1g.10gb+me'", "1g.5gb+me"]),
        ([("1g.5gb+me", 0)], ("1g.5gb+me", 1), ["at most 1 1g.5gb+me instance"]),
    ],
)
def test_emulated_refuses_what_nvml_would(
    existing: list[tuple[str, int]], request_: tuple[str, int], words: list[str]
) -> None:
    backend = emulated()
    gpu = first_gpu(backend)
    for profile, start in existing:
        backend.create_slice(gpu, profile, start)
    before = backend.slices(gpu)
    with pytest.raises(SliceError) as err:
        backend.create_slice(gpu, *request_)
    for word in words:
        assert word in str(err.value)
    assert backend.slices(gpu) == before


def test_emulated_gpus_are_separate() -> None:
    backend = emulated("1x2xH100-80GB")
    gpu0, gpu1 = (g.uuid for g in backend.discover()[0].gpus)
    backend.create_slice(gpu0, "7g.80gb", 0)
    assert backend.create_slice(gpu1, "7g.80gb", 0).gpu_uuid == gpu1
    with pytest.raises(SliceError, match="no GPU GPU-nope on the emulated nodes"):
        backend.create_slice("GPU-nope", "7g.80gb", 0)


def test_emulated_gpu_with_mig_disabled_says_how_to_enable_it() -> None:
    backend = emulated(migEnabled=False)
    with pytest.raises(SliceError, match=r"MIG mode is disabled on GPU 1 .*nvidia-smi -i 1 -mig 1"):
        backend.create_slice(first_gpu(backend, 1), "1g.5gb", 0)


# --- NVML over a fake library -----------------------------------------------------------------------

# NVML's GPU instance profile ids (the nvidia-smi ID) for the constants the tables name.
NVML_IDS = {
    "NVML_GPU_INSTANCE_PROFILE_1_SLICE": 19,
    "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1": 20,
    "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2": 15,
    "NVML_GPU_INSTANCE_PROFILE_2_SLICE": 14,
    "NVML_GPU_INSTANCE_PROFILE_3_SLICE": 9,
    "NVML_GPU_INSTANCE_PROFILE_4_SLICE": 5,
    "NVML_GPU_INSTANCE_PROFILE_7_SLICE": 0,
}


@dataclass
class FakeGPU:
    name: str
    memory_mib: int
    mig: bool | None  # None: not MIG capable
    uuid: str = ""
    gis: dict[int, GpuInstance] = field(default_factory=dict)
    cis: dict[int, set[int]] = field(default_factory=dict)


class FakeNvml(NvmlLibrary):
    """A GPU at the NvmlLibrary seam: GPU and compute instances as NVML keeps them."""

    def __init__(self, *gpus: FakeGPU, init_error: NvmlError | None = None) -> None:
        self.gpus = list(gpus)
        for i, gpu in enumerate(self.gpus):
            gpu.uuid = gpu.uuid or f"GPU-0000000{i}-1111-2222-3333-444444444444"
        self.init_error = init_error
        self.profile_ids = dict(NVML_IDS)
        self.fail_compute_instance = False
        self.open = False

    def _gpu(self, handle: Any) -> FakeGPU:
        gpu: FakeGPU = self.gpus[handle]
        return gpu

    def init(self) -> None:
        if self.init_error:
            raise self.init_error
        self.open = True

    def shutdown(self) -> None:
        self.open = False

    def driver_version(self) -> str:
        return "550.54.15"

    def device_count(self) -> int:
        return len(self.gpus)

    def handle(self, index: int) -> Any:
        return index

    def handle_by_uuid(self, gpu_uuid: str) -> Any:
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == gpu_uuid:
                return i
        raise NvmlError("NVMLError_NotFound", "nvmlDeviceGetHandleByUUID: Not Found")

    def name(self, handle: Any) -> str:
        return self._gpu(handle).name

    def uuid(self, handle: Any) -> str:
        return self._gpu(handle).uuid

    def memory_mib(self, handle: Any) -> int:
        return self._gpu(handle).memory_mib

    def mig_mode(self, handle: Any) -> bool | None:
        return self._gpu(handle).mig

    def gpu_instance_profile_id(self, handle: Any, nvml_profile: str) -> int:
        return self.profile_ids[nvml_profile]

    def gpu_instances(self, handle: Any, profile_id: int) -> list[tuple[Any, GpuInstance]]:
        return [((handle, g.id), g) for g in self.gpus[handle].gis.values() if g.profile_id == profile_id]

    def gpu_instance_by_id(self, handle: Any, gi_id: int) -> tuple[Any, GpuInstance] | None:
        gi = self.gpus[handle].gis.get(gi_id)
        return ((handle, gi_id), gi) if gi else None

    def create_gpu_instance(self, handle: Any, profile_id: int, start: int, size: int) -> tuple[Any, GpuInstance]:
        gpu = self.gpus[handle]
        if any(g.start < start + size and start < g.start + g.size for g in gpu.gis.values()):
            raise NvmlError("NVMLError_InsufficientResources", "Insufficient Resources")
        gi = GpuInstance(min(set(range(1, 15)) - set(gpu.gis)), profile_id, start, size)
        gpu.gis[gi.id], gpu.cis[gi.id] = gi, set()
        return (handle, gi.id), gi

    def destroy_gpu_instance(self, gi: Any) -> None:
        gpu = self.gpus[gi[0]]
        if gpu.cis[gi[1]]:
            raise NvmlError("NVMLError_InUse", "In use by another client")
        del gpu.gis[gi[1]], gpu.cis[gi[1]]

    def compute_instance_by_id(self, gi: Any, ci_id: int) -> Any | None:
        return (*gi, ci_id) if ci_id in self.gpus[gi[0]].cis.get(gi[1], set()) else None

    def create_compute_instance(self, gi: Any, compute_slices: int) -> tuple[Any, int]:
        if self.fail_compute_instance:
            raise NvmlError("NVMLError_Unknown", "Unknown Error")
        self.gpus[gi[0]].cis[gi[1]].add(0)
        return (*gi, 0), 0

    def destroy_compute_instance(self, ci: Any) -> None:
        self.gpus[ci[0]].cis[ci[1]].discard(ci[2])

    def mig_devices(self, handle: Any) -> list[tuple[str, int, int]]:
        cis = self.gpus[handle].cis
        return [(f"MIG-fake-{handle}-{g}-{c}", g, c) for g in sorted(cis) for c in sorted(cis[g])]


def fake_host() -> FakeNvml:
    return FakeNvml(
        FakeGPU("NVIDIA H200", 143771, True),
        FakeGPU("NVIDIA A100-SXM4-40GB", 40960, False),
        FakeGPU("NVIDIA GeForce RTX 4090", 24564, None),
        FakeGPU("NVIDIA A100-SXM4-40GB", 81920, True),  # the name of one table, the memory of another
    )


def test_nvml_discover_reads_names_models_memory_and_mig_mode() -> None:
    backend = NvmlBackend(CATALOG, fake_host())
    (inv,) = backend.discover()
    assert not inv.emulated and inv.source == (
        "nvml: driver 550.54.15, 4 x NVIDIA-A100-SXM4-40GB + NVIDIA-GeForce-RTX-4090 + NVIDIA-H200"
    )
    assert re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", inv.name)
    got = [(g.product, g.model, g.memory_mib, g.mig_capable, g.mig_enabled, g.emulated) for g in inv.gpus]
    assert got == [
        ("NVIDIA-H200", "H200-141GB", 143771, True, True, False),
        ("NVIDIA-A100-SXM4-40GB", "A100-40GB", 40960, True, False, False),
        ("NVIDIA-GeForce-RTX-4090", None, 24564, False, False, False),
        ("NVIDIA-A100-SXM4-40GB", None, 81920, True, True, False),
    ]
    obj = node_object(inv, CATALOG)
    decode(obj, build_registry())
    capacity = obj["status"]["capacity"]
    assert obj["metadata"]["labels"]["flotilla.dev/gpu-backend"] == "nvml"
    assert capacity["nvidia.com/gpu"] == "4" and capacity["nvidia.com/mig-1g.18gb"] == "7"  # the H200 only
    assert "nvidia.com/mig-1g.5gb" not in capacity


def test_nvml_create_and_destroy_are_idempotent() -> None:
    lib = fake_host()
    backend = NvmlBackend(CATALOG, lib)
    gpu = first_gpu(backend)
    device = backend.create_slice(gpu, "3g.71gb", 4)
    assert device == MigDevice("MIG-fake-0-1-0", gpu, "3g.71gb", 4, 4, 1, 0)
    assert lib.gpus[0].gis[1] == GpuInstance(1, 9, 4, 4)
    assert backend.create_slice(gpu, "3g.71gb", 4) == device
    assert len(lib.gpus[0].gis) == 1
    assert backend.slices(gpu) == [device]
    backend.destroy_slice(device)
    backend.destroy_slice(device)
    assert backend.slices(gpu) == [] and lib.gpus[0].gis == {}


def test_nvml_refuses_mig_disabled_and_gpus_without_a_table() -> None:
    backend = NvmlBackend(CATALOG, fake_host())
    with pytest.raises(SliceError, match=r"MIG mode is disabled on GPU 1 .*`sudo nvidia-smi -i 1 -mig 1`"):
        backend.create_slice(first_gpu(backend, 1), "1g.5gb", 0)
    with pytest.raises(SliceError, match="no MIG profile table"):
        backend.create_slice(first_gpu(backend, 2), "1g.5gb", 0)
    with pytest.raises(SliceError, match="valid starts: \\[0, 4\\]"):
        backend.create_slice(first_gpu(backend), "3g.71gb", 2)


def test_nvml_overlap_is_a_slice_error() -> None:
    backend = NvmlBackend(CATALOG, fake_host())
    gpu = first_gpu(backend)
    backend.create_slice(gpu, "4g.71gb", 0)
    with pytest.raises(SliceError, match="overlap an existing instance"):
        backend.create_slice(gpu, "1g.18gb", 3)


def test_nvml_refuses_a_profile_id_the_table_does_not_expect() -> None:
    lib = fake_host()
    lib.profile_ids["NVML_GPU_INSTANCE_PROFILE_3_SLICE"] = 10
    backend = NvmlBackend(CATALOG, lib)
    with pytest.raises(SliceError, match="NVML gives NVML_GPU_INSTANCE_PROFILE_3_SLICE id 10"):
        backend.create_slice(first_gpu(backend), "3g.71gb", 0)
    assert lib.gpus[0].gis == {}


def test_nvml_rolls_back_the_gpu_instance_when_the_compute_instance_fails() -> None:
    lib = fake_host()
    lib.fail_compute_instance = True
    backend = NvmlBackend(CATALOG, lib)
    with pytest.raises(SliceError, match="NVMLError_Unknown"):
        backend.create_slice(first_gpu(backend), "2g.35gb", 2)
    assert lib.gpus[0].gis == {}


def test_nvml_reuses_a_gpu_instance_left_without_compute_instance() -> None:
    lib = fake_host()
    lib.gpus[0].gis[3], lib.gpus[0].cis[3] = GpuInstance(3, 14, 2, 2), set()
    backend = NvmlBackend(CATALOG, lib)
    device = backend.create_slice(first_gpu(backend), "2g.35gb", 2)
    assert (device.gpu_instance_id, list(lib.gpus[0].gis)) == (3, [3])


def test_nvml_destroy_leaves_another_slice_with_a_reused_id_alone() -> None:
    lib = fake_host()
    backend = NvmlBackend(CATALOG, lib)
    gpu = first_gpu(backend)
    old = backend.create_slice(gpu, "1g.18gb", 0)
    backend.destroy_slice(old)
    new = backend.create_slice(gpu, "1g.18gb", 3)  # NVML hands out the same GPU instance id
    assert new.gpu_instance_id == old.gpu_instance_id
    backend.destroy_slice(old)
    assert backend.slices(gpu) == [new]


@pytest.mark.parametrize(
    ("hostname", "name"),
    [("GPU-Box_01", "gpu-box-01"), ("node7.Lab.example.com", "node7.lab.example.com"), ("--", "localhost")],
)
def test_node_name_is_dns_safe(hostname: str, name: str) -> None:
    assert node_name(hostname) == name


# --- detect -----------------------------------------------------------------------------------------


def test_detect_falls_back_to_the_emulator_here() -> None:
    backend = detect()
    if backend.name == "nvml":
        backend.close()
        pytest.skip("this host has an NVIDIA GPU")
    (inv,) = backend.discover()
    assert "no NVIDIA GPU found" in inv.source and ("NVML" in inv.source or "pynvml" in inv.source)
    assert [g.model for g in inv.gpus] == ["A100-40GB", "A100-40GB"]


def test_detect_with_a_failing_nvml() -> None:
    lib = FakeNvml(init_error=NvmlError("NVMLError_LibraryNotFound", "nvmlInit: NVML Shared Library Not Found"))
    backend = detect(parse_gpu_spec("1x1xH100-80GB"), catalog=CATALOG, library=lib)
    assert isinstance(backend, EmulatedBackend)
    assert backend.reason == "no NVIDIA GPU found: NVMLError_LibraryNotFound (nvmlInit: NVML Shared Library Not Found)"
    with pytest.raises(NoGPUError, match="nvml GPU backend was asked for, but no NVIDIA GPU found: NVMLError_Library"):
        detect(prefer="nvml", catalog=CATALOG, library=lib)


def test_detect_without_gpus_and_by_request() -> None:
    backend = detect(catalog=CATALOG, library=FakeNvml())
    assert isinstance(backend, EmulatedBackend) and "reports 0 GPUs" in backend.reason
    backend = detect(prefer="emulated", catalog=CATALOG, library=fake_host())
    assert backend.name == "emulated"


def test_detect_prefers_nvml_when_a_gpu_answers() -> None:
    lib = fake_host()
    backend = detect(catalog=CATALOG, library=lib)
    assert backend.name == "nvml" and lib.open
    backend.close()
    assert not lib.open
