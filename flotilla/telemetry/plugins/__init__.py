"""Health check plugins, one per module; `default_registry()` registers them all."""

from __future__ import annotations

from flotilla.telemetry.checks import CheckRegistry
from flotilla.telemetry.plugins import ecc, pciebw, ping, power, reachable, remapped, temperature, xid

PLUGIN_MODULES = (reachable, pciebw, remapped, ecc, power, temperature, xid, ping)


def default_registry() -> CheckRegistry:
    """A new registry with every built-in check: reachable, pciebw, remapped, ecc, power,
    temperature, xid (GPU checks) and ping (a node check)."""
    registry = CheckRegistry()
    for module in PLUGIN_MODULES:
        module.register(registry)
    return registry
