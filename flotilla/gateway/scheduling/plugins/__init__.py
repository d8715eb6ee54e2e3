"""Endpoint-picker plugins, one per module; `default_registry()` registers them all."""

from __future__ import annotations

from flotilla.gateway.scheduling.plugins import (
    active_request_scorer,
    healthy_filter,
    kv_cache_utilization_scorer,
    least_kv_cache_filter,
    least_queue_filter,
    lora_affinity_filter,
    lora_affinity_scorer,
    low_queue_filter,
    max_score_picker,
    precise_prefix_cache_scorer,
    prefix_cache_scorer,
    queue_scorer,
    random_picker,
    round_robin_picker,
    session_affinity_scorer,
    weighted_random_picker,
)
from flotilla.gateway.scheduling.registry import SchedulerRegistry

PLUGIN_MODULES = (
    healthy_filter,
    lora_affinity_filter,
    least_queue_filter,
    least_kv_cache_filter,
    low_queue_filter,
    queue_scorer,
    kv_cache_utilization_scorer,
    prefix_cache_scorer,
    precise_prefix_cache_scorer,
    session_affinity_scorer,
    lora_affinity_scorer,
    active_request_scorer,
    max_score_picker,
    random_picker,
    weighted_random_picker,
    round_robin_picker,
)


def default_registry() -> SchedulerRegistry:
    """A new registry with every built-in filter, scorer and picker."""
    registry = SchedulerRegistry()
    for module in PLUGIN_MODULES:
        module.register(registry)
    return registry
