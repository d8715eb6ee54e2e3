"""`max-score-picker`: the highest total score wins (GAIE's max-score-picker)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.plugins.common import PickerParams, rank_by_score
from flotilla.gateway.scheduling.registry import SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, SchedulingContext


class MaxScorePickerParams(PickerParams):
    pass


def max_score_picker(
    ctx: SchedulingContext, scored: Sequence[tuple[EndpointSnapshot, float]], params: MaxScorePickerParams
) -> list[EndpointSnapshot]:
    """Rank by total score, highest first. Ties are broken uniformly at random with ctx.rng: the
    candidates are shuffled, then stably sorted by score (as GAIE does), so a seeded generator gives a
    reproducible order."""
    return rank_by_score(ctx.rng, scored, params.maxNumOfEndpoints)


def register(registry: SchedulerRegistry) -> None:
    registry.picker("max-score-picker", MaxScorePickerParams, max_score_picker)
