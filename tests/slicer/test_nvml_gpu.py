"""The NVML backend on a real NVIDIA GPU: READ-ONLY checks (skipped where there is no GPU).

Never creates or destroys slices, never changes MIG mode, never resets a GPU: everything here reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flotilla.api.catalog import build_registry
from flotilla.api.loader import decode
from flotilla.slicer.backends import NvmlBackend, detect
from flotilla.slicer.inventory import node_object

from .builders import CATALOG

pytestmark = pytest.mark.gpu
pynvml: Any = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")


@pytest.fixture(scope="module")
def nvml() -> Iterator[Any]:
    """pynvml, initialised; skip when NVML or a GPU is missing."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"no NVIDIA GPU: {type(exc).__name__}")
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            pytest.skip("NVML reports no GPU")
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


@pytest.fixture
def backend(nvml: Any) -> Iterator[NvmlBackend]:
    b = NvmlBackend(CATALOG)
    yield b
    b.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _mig_mode(nvml: Any, handle: Any) -> tuple[bool, bool]:
    """(capable, enabled) straight from pynvml."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:
        return False, False
    return True, current == nvml.NVML_DEVICE_MIG_ENABLE


def test_discover_matches_pynvml(nvml: Any, backend: NvmlBackend) -> None:
    (inv,) = backend.discover()
    assert not inv.emulated and inv.source.startswith("nvml: driver ")
    assert len(inv.gpus) == nvml.nvmlDeviceGetCount()
    for gpu in inv.gpus:
        handle = nvml.nvmlDeviceGetHandleByIndex(gpu.index)
        name = _text(nvml.nvmlDeviceGetName(handle))
        assert gpu.uuid == _text(nvml.nvmlDeviceGetUUID(handle)) and gpu.uuid.startswith("GPU-")
        assert gpu.memory_mib == nvml.nvmlDeviceGetMemoryInfo(handle).total // (1 << 20)
        assert gpu.product == "-".join(name.split()) and " " not in gpu.product
        assert (gpu.mig_capable, gpu.mig_enabled) == _mig_mode(nvml, handle)
        assert gpu.model is None or gpu.model in CATALOG.models
        assert not gpu.emulated


def test_known_gpus_map_to_their_profile_table(backend: NvmlBackend) -> None:
    for gpu in backend.discover()[0].gpus:
        if gpu.product in ("NVIDIA-H200", "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-SXM4-80GB"):
            assert gpu.model is not None, f"{gpu.product} with {gpu.memory_mib} MiB found no profile table"


def test_node_object_validates(backend: NvmlBackend) -> None:
    obj = node_object(backend.discover()[0], CATALOG)
    decode(obj, build_registry(), source="nvml node")
    assert obj["metadata"]["labels"]["flotilla.dev/gpu-backend"] == "nvml"
    assert obj["status"]["capacity"]["nvidia.com/gpu"] == str(len(obj["status"]["gpus"]))


def test_slices_lists_without_changing_anything(backend: NvmlBackend) -> None:
    for gpu in backend.discover()[0].gpus:
        for device in backend.slices(gpu.uuid):  # read-only listing
            assert device.gpu_uuid == gpu.uuid and device.uuid.startswith("MIG-")


def test_detect_picks_nvml(nvml: Any) -> None:
    backend = detect(catalog=CATALOG)
    try:
        assert backend.name == "nvml"
    finally:
        backend.close()
