"""`ecc`: uncorrectable memory errors and retired pages (page retirement: GPUs before A100)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flotilla.telemetry.checks import CheckRegistry, CheckResult, gpu_label
from flotilla.telemetry.readings import GPUReadings


class EccParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    retired_dbe_evict_above: int = Field(60, ge=0)


def ecc(readings: GPUReadings, params: EccParams) -> CheckResult:
    """EVICT when more than `retired_dbe_evict_above` pages were retired for double-bit errors;
    WARN when there were uncorrectable ECC errors since the driver loaded (volatile count > 0: the
    process that hit one was killed, the GPU goes on); PASS otherwise or when ECC is not reported."""
    r = readings
    if r.retired_pages_dbe is not None and r.retired_pages_dbe > params.retired_dbe_evict_above:
        return CheckResult(
            "ecc",
            "EVICT",
            f"ecc: {r.retired_pages_dbe} pages retired for double-bit errors on {gpu_label(r.uuid)} "
            f"(more than {params.retired_dbe_evict_above})",
        )
    if r.ecc_volatile_uncorrected:
        return CheckResult(
            "ecc",
            "WARN",
            f"ecc: {r.ecc_volatile_uncorrected} uncorrectable ECC errors on {gpu_label(r.uuid)} "
            "since the driver loaded",
        )
    return CheckResult("ecc", "PASS", "ecc: ok")


def register(registry: CheckRegistry) -> None:
    registry.register("ecc", EccParams, ecc)
