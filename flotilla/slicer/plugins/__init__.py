"""Placement policy plugins, one per module; `default_registry()` registers them all."""

from __future__ import annotations

from flotilla.slicer.placement import PlacementRegistry
from flotilla.slicer.plugins import best_fit, first_fit, packing

PLUGIN_MODULES = (first_fit, best_fit, packing)


def default_registry() -> PlacementRegistry:
    """A new registry with every built-in placement policy (first-fit, best-fit, packing)."""
    registry = PlacementRegistry()
    for module in PLUGIN_MODULES:
        module.register(registry)
    return registry
