"""`xid`: XID errors the driver reported since the last read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from flotilla.telemetry.checks import CheckRegistry, CheckResult, gpu_label
from flotilla.telemetry.readings import GPUReadings

# XIDs after which the GPU needs a reset or replacement (NVIDIA's XID catalogue): 48 DBE ECC error,
# 61/62 internal micro-controller breakpoint/halt, 63/64 ECC page retirement or row remapping event
# or failure, 68 video processor exception, 69 graphics engine class error, 73 NVLink/NVENC error,
# 74 NVLink error, 79 fallen off the bus, 92 high single-bit ECC rate, 94/95 contained/uncontained
# ECC error, 119/120 GSP RPC timeout / GSP error.
CRITICAL_XIDS = (48, 61, 62, 63, 64, 68, 69, 73, 74, 79, 92, 94, 95, 119, 120)


class XidParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    critical: tuple[int, ...] = CRITICAL_XIDS


def xid(readings: GPUReadings, params: XidParams) -> CheckResult:
    """EVICT when any XID in `critical` was reported; WARN for any other XID (most are raised by an
    application's own fault, e.g. 13 or 31); PASS when none. The message names the first critical
    XID, else the first one."""
    events = readings.xid_events
    if not events:
        return CheckResult("xid", "PASS", "xid: ok")
    critical = [e for e in events if e in params.critical]
    shown = ", ".join(str(e) for e in dict.fromkeys(events))
    if critical:
        return CheckResult(
            "xid", "EVICT", f"xid: critical XID {critical[0]} on {gpu_label(readings.uuid)} (XIDs seen: {shown})"
        )
    return CheckResult("xid", "WARN", f"xid: XID {events[0]} on {gpu_label(readings.uuid)} (XIDs seen: {shown})")


def register(registry: CheckRegistry) -> None:
    registry.register("xid", XidParams, xid)
