"""`pciebw`: the PCIe link trained below what the slot and the GPU support."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flotilla.telemetry.checks import CheckRegistry, CheckResult, gpu_label
from flotilla.telemetry.readings import GPUReadings


class PcieBandwidthParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    # Idle GPUs lower their link speed to save power, so a generation below the maximum only counts
    # while the GPU is at least this busy (utilisation %, when known). Width does not change at idle.
    generation_min_utilization_pct: float = Field(1.0, ge=0, le=100)


def pciebw(readings: GPUReadings, params: PcieBandwidthParams) -> CheckResult:
    """EVICT when the link width is below half its maximum (x4 of x16: a quarter of the bandwidth);
    WARN when the width, or the generation (only while utilisation >= generation_min_utilization_pct),
    is below its maximum; PASS otherwise or when the link is not reported.

    Autopilot measures host-to-device bandwidth with a CUDA transfer; this check judges the link
    NVML reports, which is what that bandwidth follows from, without occupying the GPU.
    """
    r = readings
    width_low = r.pcie_width is not None and r.pcie_width_max is not None and r.pcie_width < r.pcie_width_max
    busy_enough = r.utilization_pct is None or r.utilization_pct >= params.generation_min_utilization_pct
    gen_low = busy_enough and r.pcie_gen is not None and r.pcie_gen_max is not None and r.pcie_gen < r.pcie_gen_max
    if not (width_low or gen_low):
        return CheckResult("pciebw", "PASS", "pciebw: ok")
    link = f"link gen {r.pcie_gen} of {r.pcie_gen_max}, width x{r.pcie_width} of x{r.pcie_width_max}"
    if width_low and r.pcie_width is not None and r.pcie_width_max is not None and 2 * r.pcie_width < r.pcie_width_max:
        return CheckResult("pciebw", "EVICT", f"pciebw: {link} (below half width) on {gpu_label(r.uuid)}")
    return CheckResult("pciebw", "WARN", f"pciebw: {link} on {gpu_label(r.uuid)}")


def register(registry: CheckRegistry) -> None:
    registry.register("pciebw", PcieBandwidthParams, pciebw)
