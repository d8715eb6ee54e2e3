"""`random-picker`: a uniformly random order, scores ignored (GAIE's random-picker)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.plugins.common import PickerParams, truncate
from flotilla.gateway.scheduling.registry import SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, SchedulingContext


class RandomPickerParams(PickerParams):
    pass


def random_picker(
    ctx: SchedulingContext, scored: Sequence[tuple[EndpointSnapshot, float]], params: RandomPickerParams
) -> list[EndpointSnapshot]:
    """A uniform random permutation of the candidates (ctx.rng.shuffle); scores are ignored, so there
    are no ties to break."""
    ranking = [e for e, _ in scored]
    ctx.rng.shuffle(ranking)
    return truncate(ranking, params.maxNumOfEndpoints)


def register(registry: SchedulerRegistry) -> None:
    registry.picker("random-picker", RandomPickerParams, random_picker)
