"""`temperature`: at the slowdown threshold (the GPU lowers its clocks)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flotilla.telemetry.checks import CheckRegistry, CheckResult, gpu_label
from flotilla.telemetry.readings import GPUReadings


class TemperatureParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    margin_c: float = Field(0.0, ge=0)


def temperature(readings: GPUReadings, params: TemperatureParams) -> CheckResult:
    """WARN when the GPU temperature is at or above its slowdown threshold less `margin_c`;
    PASS otherwise or when either is not reported."""
    r = readings
    if (
        r.temperature_c is not None
        and r.temperature_slowdown_c is not None
        and r.temperature_c >= r.temperature_slowdown_c - params.margin_c
    ):
        return CheckResult(
            "temperature",
            "WARN",
            f"temperature: {r.temperature_c:g} C at or above the {r.temperature_slowdown_c:g} C slowdown "
            f"threshold on {gpu_label(r.uuid)}",
        )
    return CheckResult("temperature", "PASS", "temperature: ok")


def register(registry: CheckRegistry) -> None:
    registry.register("temperature", TemperatureParams, temperature)
