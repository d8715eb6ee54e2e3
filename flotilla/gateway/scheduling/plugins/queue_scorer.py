"""`queue-scorer`: shorter waiting queues score higher (GAIE's queue-scorer)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.plugins.common import lowest_is_best
from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class QueueScorerParams(PluginParams):
    pass


def queue_scorer(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: QueueScorerParams,
) -> list[float]:
    """(max - waiting(e)) / (max - min) over the candidates' waiting queues: 1.0 for the shortest, 0.0
    for the longest. All equal (one candidate included) -> all 1.0; the picker breaks ties."""
    return lowest_is_best([e.metrics.waiting for e in endpoints])


def register(registry: SchedulerRegistry) -> None:
    registry.scorer("queue-scorer", QueueScorerParams, queue_scorer)
