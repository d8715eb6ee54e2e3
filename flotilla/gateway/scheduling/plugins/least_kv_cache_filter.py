"""`least-kv-cache-filter`: GAIE's least-KV-cache filter (keep the endpoints in the emptiest-cache bucket)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.plugins.common import within_first_bucket
from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class LeastKVCacheFilterParams(PluginParams):
    pass


def least_kv_cache_filter(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: LeastKVCacheFilterParams,
) -> list[EndpointSnapshot]:
    """Keep e iff kv_usage(e) <= min + (max - min) / n over the n candidates (the first of n equal
    buckets of the range). All equal -> all kept. Order kept; no ties to break."""
    keep = within_first_bucket([e.metrics.kv_usage for e in endpoints])
    return [endpoints[i] for i in keep]


def register(registry: SchedulerRegistry) -> None:
    registry.filter("least-kv-cache-filter", LeastKVCacheFilterParams, least_kv_cache_filter)
