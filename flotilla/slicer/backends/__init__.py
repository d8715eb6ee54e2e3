"""GPU device backends: `nvml` (this host's NVIDIA GPUs) and `emulated`; `detect` picks one.

backend = detect(parse_gpu_spec("1x2xA100-40GB"))     # NVML if it finds a GPU, else these emulated GPUs
nodes = backend.discover()                             # [NodeInventory]
device = backend.create_slice(nodes[0].gpus[0].uuid, "3g.20gb", 4)   # idempotent
"""

from __future__ import annotations

from typing import Literal

from flotilla.slicer.backends.base import GPUBackend, MigDevice, NoGPUError, SliceError, host_resources
from flotilla.slicer.backends.emulated import EmulatedBackend, mig_uuid
from flotilla.slicer.backends.nvml import NvmlBackend, NvmlError, NvmlLibrary, match_model, node_name
from flotilla.slicer.inventory import DEFAULT_GPU_CONFIG, EmulatedGPUConfig
from flotilla.slicer.profiles import ProfileCatalog, load_catalog

BackendChoice = Literal["auto", "nvml", "emulated"]


def detect(
    gpu_config: EmulatedGPUConfig | None = None,
    prefer: BackendChoice = "auto",
    *,
    catalog: ProfileCatalog | None = None,
    library: NvmlLibrary | None = None,
) -> GPUBackend:
    """The backend to use.

    auto: NVML when it initialises and finds at least one GPU, else the emulator with `gpu_config`
    (default: 1 node x 2 A100-40GB) and the reason NVML was not used. nvml: NoGPUError when there is
    no usable GPU. emulated: the emulator, without trying NVML. `library` replaces pynvml (tests).
    """
    catalog = catalog if catalog is not None else load_catalog()
    config = gpu_config if gpu_config is not None else DEFAULT_GPU_CONFIG
    if prefer == "emulated":
        return EmulatedBackend(config, catalog, "emulated by request")
    try:
        return NvmlBackend(catalog, library)
    except NoGPUError as exc:
        if prefer == "nvml":
            raise NoGPUError(f"the nvml GPU backend was asked for, but {exc}; use auto or emulated") from None
        return EmulatedBackend(config, catalog, str(exc))


__all__ = [
    "BackendChoice",
    "EmulatedBackend",
    "GPUBackend",
    "MigDevice",
    "NoGPUError",
    "NvmlBackend",
    "NvmlError",
    "NvmlLibrary",
    "SliceError",
    "detect",
    "host_resources",
    "match_model",
    "mig_uuid",
    "node_name",
]
