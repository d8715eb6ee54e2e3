"""`power`: drawing more than the enforced power limit."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flotilla.telemetry.checks import CheckRegistry, CheckResult, gpu_label
from flotilla.telemetry.readings import GPUReadings


class PowerParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tolerance_pct: float = Field(0.0, ge=0)


def power(readings: GPUReadings, params: PowerParams) -> CheckResult:
    """WARN when power draw exceeds the enforced limit by more than `tolerance_pct` percent (the
    GPU is being power-throttled, or its sensor is wrong); PASS otherwise or when not reported."""
    r = readings
    if r.power_w is not None and r.power_limit_w and r.power_w > r.power_limit_w * (1 + params.tolerance_pct / 100):
        return CheckResult(
            "power", "WARN", f"power: {r.power_w:.1f} W above the {r.power_limit_w:.1f} W limit on {gpu_label(r.uuid)}"
        )
    return CheckResult("power", "PASS", "power: ok")


def register(registry: CheckRegistry) -> None:
    registry.register("power", PowerParams, power)
