"""`lora-affinity-filter`: prefer endpoints with the request's LoRA adapter loaded, else with room for it."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class LoraAffinityFilterParams(PluginParams):
    threshold: float = Field(default=0.999, ge=0.0, le=1.0)  # GAIE's DefaultLoraAffinityThreshold


def lora_affinity_filter(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: LoraAffinityFilterParams,
) -> list[EndpointSnapshot]:
    """GAIE's lora-affinity filter. affinity = endpoints with request.model among running or waiting
    adapters; available = the others with |running | waiting| < max_loras (room to load it).

    Both non-empty: affinity with probability `threshold` (ctx.rng.random() < threshold), else available
    (a little load spreading). One non-empty: that one. Both empty (a base-model request, or no room
    anywhere; vLLM queues the load): the endpoints unchanged, where GAIE would return none. Order kept."""
    affinity: list[EndpointSnapshot] = []
    available: list[EndpointSnapshot] = []
    for e in endpoints:
        m = e.metrics
        if request.model in m.running_loras or request.model in m.waiting_loras:
            affinity.append(e)
        elif len(m.running_loras | m.waiting_loras) < m.max_loras:
            available.append(e)
    if affinity and available:
        return affinity if ctx.rng.random() < params.threshold else available
    return affinity or available or list(endpoints)


def register(registry: SchedulerRegistry) -> None:
    registry.filter("lora-affinity-filter", LoraAffinityFilterParams, lora_affinity_filter)
