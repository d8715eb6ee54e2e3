"""`remapped`: HBM row remapping (A100 and later), as Autopilot's remapped-rows check reads it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flotilla.telemetry.checks import CheckRegistry, CheckResult, gpu_label
from flotilla.telemetry.readings import GPUReadings


class RemappedParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    uncorrectable_warn_above: int = Field(0, ge=0)


def remapped(readings: GPUReadings, params: RemappedParams) -> CheckResult:
    """EVICT when row remapping failed (no spare rows left: the memory is unreliable) or a remapping
    is pending (it takes effect only after a GPU reset); WARN when more than
    `uncorrectable_warn_above` rows were remapped for uncorrectable errors; PASS otherwise or when
    row remapping is not reported (GPUs before A100)."""
    r = readings
    rows = f"uncorrectable rows {r.remapped_rows_uncorrectable if r.remapped_rows_uncorrectable is not None else '?'}"
    if r.remapped_rows_failure:
        return CheckResult("remapped", "EVICT", f"remapped: row remapping failure on {gpu_label(r.uuid)} ({rows})")
    if r.remapped_rows_pending:
        return CheckResult(
            "remapped", "EVICT", f"remapped: row remapping pending on {gpu_label(r.uuid)} (needs a GPU reset; {rows})"
        )
    if r.remapped_rows_uncorrectable is not None and r.remapped_rows_uncorrectable > params.uncorrectable_warn_above:
        return CheckResult(
            "remapped",
            "WARN",
            f"remapped: {r.remapped_rows_uncorrectable} rows remapped for uncorrectable errors on "
            f"{gpu_label(r.uuid)} (more than {params.uncorrectable_warn_above})",
        )
    return CheckResult("remapped", "PASS", "remapped: ok")


def register(registry: CheckRegistry) -> None:
    registry.register("remapped", RemappedParams, remapped)
