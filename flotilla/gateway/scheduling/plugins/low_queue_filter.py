"""`low-queue-filter`: keep endpoints whose waiting queue is at most a threshold."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class LowQueueFilterParams(PluginParams):
    threshold: int = Field(default=128, ge=0)  # GAIE's DefaultQueueingThresholdLoRA


def low_queue_filter(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: LowQueueFilterParams,
) -> list[EndpointSnapshot]:
    """Keep e iff waiting(e) <= threshold. Order kept; no ties to break."""
    return [e for e in endpoints if e.metrics.waiting <= params.threshold]


def register(registry: SchedulerRegistry) -> None:
    registry.filter("low-queue-filter", LowQueueFilterParams, low_queue_filter)
