"""Helpers the plugins share: min-max normalization and ranking with random tie-breaks."""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import Field

from flotilla.gateway.scheduling.registry import PluginParams
from flotilla.gateway.scheduling.types import EndpointSnapshot


class PickerParams(PluginParams):
    """GAIE's picker parameter: how many endpoints to return (here: the pick plus its fallbacks).
    None keeps the whole ranking."""

    maxNumOfEndpoints: int | None = Field(default=None, ge=1)


def lowest_is_best(values: Sequence[float]) -> list[float]:
    """(max - v) / (max - min) per value: 1.0 for the lowest, 0.0 for the highest; all equal -> all 1.0."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [1.0] * len(values)
    return [(high - v) / (high - low) for v in values]


def within_first_bucket(values: Sequence[float]) -> list[int]:
    """GAIE's least-* filters: the indexes whose value lies in [min, min + (max - min) / n]."""
    if not values:
        return []
    low, high = min(values), max(values)
    limit = low + (high - low) / len(values)
    return [i for i, v in enumerate(values) if v <= limit]


def rank_by_score(
    rng: random.Random, scored: Sequence[tuple[EndpointSnapshot, float]], limit: int | None = None
) -> list[EndpointSnapshot]:
    """Highest score first; equal scores in an order drawn uniformly with `rng` (shuffle, then a stable sort)."""
    shuffled = list(scored)
    rng.shuffle(shuffled)
    shuffled.sort(key=lambda pair: pair[1], reverse=True)
    return truncate([e for e, _ in shuffled], limit)


def truncate(ranking: list[EndpointSnapshot], limit: int | None) -> list[EndpointSnapshot]:
    return ranking if limit is None else ranking[:limit]
