"""`reachable`: does the GPU answer at all."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from flotilla.telemetry.checks import CheckRegistry, CheckResult, gpu_label
from flotilla.telemetry.readings import GPUReadings


class ReachableParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def reachable(readings: GPUReadings, params: ReachableParams) -> CheckResult:
    """ERR when the device does not answer (NVML cannot get a handle, or the GPU is lost);
    PASS otherwise. An unreachable GPU can run nothing, so no other verdict can outrank it."""
    if not readings.reachable:
        return CheckResult("reachable", "ERR", f"reachable: {gpu_label(readings.uuid)} does not answer")
    return CheckResult("reachable", "PASS", "reachable: ok")


def register(registry: CheckRegistry) -> None:
    registry.register("reachable", ReachableParams, reachable)
