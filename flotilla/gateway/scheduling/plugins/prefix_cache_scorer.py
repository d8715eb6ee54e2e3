"""`prefix-cache-scorer`: endpoints believed to hold more of the prompt's leading blocks score higher
(GAIE's approximate prefix-cache scorer; the index is `ApproximatePrefixIndex`, in ctx.prefix)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, PrefixView, SchedulingContext


class PrefixCacheScorerParams(PluginParams):
    """GAIE's parameters. They configure the index the driver builds (`approximate_index_for`), which
    is shared by every profile; the scorer itself only reads ctx.prefix."""

    blockSize: int = Field(default=64, ge=1)  # characters per block
    maxPrefixBlocksToMatch: int = Field(default=256, ge=1)
    lruCapacityPerServer: int = Field(default=31250, ge=1)


def prefix_fraction(
    view: PrefixView | None, request: InferenceRequest, endpoints: Sequence[EndpointSnapshot]
) -> list[float]:
    """matched_blocks(e) / total_blocks, 0 for every endpoint without a view or without a whole block."""
    if view is None:
        return [0.0] * len(endpoints)
    total = view.total_blocks(request)
    if total <= 0:
        return [0.0] * len(endpoints)
    matched = view.matched_blocks(request, [e.address for e in endpoints])
    return [min(1.0, matched.get(e.address, 0) / total) for e in endpoints]


def prefix_cache_scorer(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: PrefixCacheScorerParams,
) -> list[float]:
    """matched(e) / total: the longest run of the prompt's leading blocks that the gateway routed to e
    (and that e's LRU still holds), over the prompt's whole blocks (at most maxPrefixBlocksToMatch).
    No index, or a prompt shorter than one block -> all 0. Equal matches -> equal scores; the picker
    breaks ties."""
    return prefix_fraction(ctx.prefix, request, endpoints)


def register(registry: SchedulerRegistry) -> None:
    registry.scorer("prefix-cache-scorer", PrefixCacheScorerParams, prefix_cache_scorer)
