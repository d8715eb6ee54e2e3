"""`least-queue-filter`: GAIE's least-queue filter (keep the endpoints in the shortest-queue bucket)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.plugins.common import within_first_bucket
from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class LeastQueueFilterParams(PluginParams):
    pass


def least_queue_filter(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: LeastQueueFilterParams,
) -> list[EndpointSnapshot]:
    """Keep e iff waiting(e) <= min + (max - min) / n over the n candidates' waiting queues: the range is
    cut into n buckets and the first is kept (several near-minimal endpoints, not just the minimum,
    leave later plugins a choice). All equal -> all kept. Order kept; no ties to break."""
    keep = within_first_bucket([e.metrics.waiting for e in endpoints])
    return [endpoints[i] for i in keep]


def register(registry: SchedulerRegistry) -> None:
    registry.filter("least-queue-filter", LeastQueueFilterParams, least_queue_filter)
