"""`lora-affinity-scorer`: GAIE's LoRA affinity scorer (adapter loaded > room to load > queued to load)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class LoraAffinityScorerParams(PluginParams):
    pass


def _score(request: InferenceRequest, e: EndpointSnapshot) -> float:
    m = e.metrics
    if request.model in m.running_loras:
        return 1.0
    if len(m.running_loras | m.waiting_loras) < m.max_loras:
        return 0.8
    if request.model in m.waiting_loras:
        return 0.6
    return 0.0


def lora_affinity_scorer(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: LoraAffinityScorerParams,
) -> list[float]:
    """Per endpoint, the first that holds: request.model among running adapters -> 1.0; fewer adapters
    (running | waiting) than max_loras, room to load one -> 0.8; request.model waiting to load -> 0.6;
    else 0.0. Equal scores -> the picker breaks ties."""
    return [_score(request, e) for e in endpoints]


def register(registry: SchedulerRegistry) -> None:
    registry.scorer("lora-affinity-scorer", LoraAffinityScorerParams, lora_affinity_scorer)
