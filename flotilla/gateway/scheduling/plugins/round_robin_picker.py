"""`round-robin`: plain load balancing, the baseline the smarter profiles are measured against."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.plugins.common import PickerParams, truncate
from flotilla.gateway.scheduling.registry import SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, SchedulingContext


class RoundRobinPickerParams(PickerParams):
    pass


def round_robin_picker(
    ctx: SchedulingContext, scored: Sequence[tuple[EndpointSnapshot, float]], params: RoundRobinPickerParams
) -> list[EndpointSnapshot]:
    """The candidates in address order, rotated to start at index turn mod n, where turn is
    ctx.round_robin_turn (the profile's pick counter unless the driver passes its own; 0 if unset).
    Scores are ignored; the order is total, so there are no ties. With a fixed candidate set, n
    consecutive picks visit every endpoint once (Envoy's ROUND_ROBIN over a stable host set)."""
    ranking = sorted((e for e, _ in scored), key=lambda e: (e.address, e.endpoint.name))
    if not ranking:
        return []
    start = (ctx.round_robin_turn or 0) % len(ranking)
    return truncate(ranking[start:] + ranking[:start], params.maxNumOfEndpoints)


def register(registry: SchedulerRegistry) -> None:
    registry.picker("round-robin", RoundRobinPickerParams, round_robin_picker)
