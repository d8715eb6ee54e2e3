"""`kv-cache-utilization-scorer`: emptier KV caches score higher (GAIE's kv-cache-utilization-scorer)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class KVCacheUtilizationScorerParams(PluginParams):
    pass


def kv_cache_utilization_scorer(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: KVCacheUtilizationScorerParams,
) -> list[float]:
    """1 - kv_usage(e) (vllm:kv_cache_usage_perc, 0..1), clamped to [0, 1]. Absolute, not min-max:
    equal usage -> equal scores; the picker breaks ties."""
    return [min(1.0, max(0.0, 1.0 - e.metrics.kv_usage)) for e in endpoints]


def register(registry: SchedulerRegistry) -> None:
    registry.scorer("kv-cache-utilization-scorer", KVCacheUtilizationScorerParams, kv_cache_utilization_scorer)
