"""`healthy-filter`: drop endpoints whose metrics are not fresh."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class HealthyFilterParams(PluginParams):
    maxStalenessSeconds: float | None = Field(default=None, gt=0)


def healthy_filter(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: HealthyFilterParams,
) -> list[EndpointSnapshot]:
    """Keep e iff e.metrics.fresh (the data layer's verdict: the last scrape succeeded and is recent) and,
    when maxStalenessSeconds is set, ctx.now - e.metrics.scraped_at <= maxStalenessSeconds.

    Order is kept; no ties to break. GAIE drops endpoints whose metrics are stale in the same spirit
    (its saturation detector's metricsStalenessThreshold)."""
    limit = params.maxStalenessSeconds
    return [e for e in endpoints if e.metrics.fresh and (limit is None or ctx.now - e.metrics.scraped_at <= limit)]


def register(registry: SchedulerRegistry) -> None:
    registry.filter("healthy-filter", HealthyFilterParams, healthy_filter)
