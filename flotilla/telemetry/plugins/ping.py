"""`ping`: a node check, does the node reach its peer (the control plane's API port)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flotilla.telemetry.checks import CheckRegistry, CheckResult, NodeReadings


class PingParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    warn_above_s: float | None = Field(None, gt=0)


def ping(readings: NodeReadings, params: PingParams) -> CheckResult:
    """ERR when the probe got no answer (latency None); WARN when the latency exceeds
    `warn_above_s` (if set); PASS otherwise, and when no target is configured."""
    r = readings
    if r.ping_target is None:
        return CheckResult("ping", "PASS", "ping: no target configured")
    if r.ping_latency_s is None:
        return CheckResult("ping", "ERR", f"ping: no answer from {r.ping_target} on node {r.node}")
    if params.warn_above_s is not None and r.ping_latency_s > params.warn_above_s:
        return CheckResult(
            "ping",
            "WARN",
            f"ping: {r.ping_latency_s * 1000:.1f} ms to {r.ping_target} on node {r.node} "
            f"(above {params.warn_above_s * 1000:.1f} ms)",
        )
    return CheckResult("ping", "PASS", "ping: ok")


def register(registry: CheckRegistry) -> None:
    registry.register("ping", PingParams, ping, scope="node")
