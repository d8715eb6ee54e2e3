"""Scheduler plugins, one per module; `default_registry()` registers them all."""

from __future__ import annotations

from flotilla.runtime.scheduling.framework import SchedulerRegistry
from flotilla.runtime.scheduling.plugins import (
    gpu_fit,
    gpu_health,
    gpu_packing,
    least_allocated,
    most_allocated,
    node_affinity,
    node_name,
    node_resources_fit,
    node_unschedulable,
    taint_toleration,
)

PLUGIN_MODULES = (
    node_unschedulable,
    node_name,
    taint_toleration,
    node_affinity,
    node_resources_fit,
    gpu_health,
    gpu_fit,
    least_allocated,
    most_allocated,
    gpu_packing,
)


def default_registry() -> SchedulerRegistry:
    """A new registry with every built-in plugin: filters NodeUnschedulable, NodeName, TaintToleration,
    NodeAffinity, NodeResourcesFit, GPUHealth, GPUFit; scorers NodeResourcesLeastAllocated,
    NodeResourcesMostAllocated, GPUPacking."""
    registry = SchedulerRegistry()
    for module in PLUGIN_MODULES:
        module.register(registry)
    return registry
