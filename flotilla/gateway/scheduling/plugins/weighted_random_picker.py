"""`weighted-random-picker`: random, in proportion to the total score (GAIE's weighted-random-picker, A-Res)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.plugins.common import PickerParams, truncate
from flotilla.gateway.scheduling.registry import SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, SchedulingContext


class WeightedRandomPickerParams(PickerParams):
    pass


def weighted_random_picker(
    ctx: SchedulingContext, scored: Sequence[tuple[EndpointSnapshot, float]], params: WeightedRandomPickerParams
) -> list[EndpointSnapshot]:
    """Weighted sampling without replacement (A-Res, Efraimidis and Spirakis): key(e) = u ** (1 / score(e))
    with u ~ U(0, 1) from ctx.rng, ranked by key, highest first; so e comes first with probability
    score(e) / sum of scores. Endpoints scoring 0 get key 0 and follow in a uniformly random order
    (the candidates are shuffled before a stable sort); all scores 0 -> a uniform random order."""
    shuffled = list(scored)
    ctx.rng.shuffle(shuffled)
    keyed: list[tuple[float, EndpointSnapshot]] = []
    for endpoint, score in shuffled:
        if score > 0:
            u = ctx.rng.random() or 1e-12
            keyed.append((u ** (1.0 / score), endpoint))
        else:
            keyed.append((0.0, endpoint))
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return truncate([e for _, e in keyed], params.maxNumOfEndpoints)


def register(registry: SchedulerRegistry) -> None:
    registry.picker("weighted-random-picker", WeightedRandomPickerParams, weighted_random_picker)
