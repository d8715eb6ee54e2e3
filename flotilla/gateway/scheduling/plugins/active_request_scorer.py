"""`active-request-scorer`: fewer requests in flight from this gateway score higher (llm-d's active-request-scorer)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class ActiveRequestScorerParams(PluginParams):
    pass


def active_request_scorer(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: ActiveRequestScorerParams,
) -> list[float]:
    """(max - in_flight(e)) / max, max over the candidates' gateway-side in-flight counts: 1.0 for an
    idle endpoint, 0.0 for the busiest. Nothing in flight anywhere -> all 1.0. Equal counts -> equal
    scores; the picker breaks ties. The count is the gateway's own (EndpointSnapshot.in_flight), fresher
    than scraped metrics."""
    counts = [e.in_flight for e in endpoints]
    high = max(counts, default=0)
    if high <= 0:
        return [1.0] * len(endpoints)
    return [(high - max(0, c)) / high for c in counts]


def register(registry: SchedulerRegistry) -> None:
    registry.scorer("active-request-scorer", ActiveRequestScorerParams, active_request_scorer)
