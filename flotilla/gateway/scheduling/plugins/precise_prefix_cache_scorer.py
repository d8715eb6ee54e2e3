"""`precise-prefix-cache-scorer`: endpoints whose engines report more of the prompt's leading KV blocks
score higher (llm-d's precise prefix-cache scorer; the index is `PrecisePrefixIndex`, in ctx.precise_prefix)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from flotilla.gateway.scheduling.plugins.prefix_cache_scorer import prefix_fraction
from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext


class PrecisePrefixCacheScorerParams(PluginParams):
    """The engines' KV block size in tokens (vLLM's default, 16); it configures the index the driver builds."""

    blockSize: int = Field(default=16, ge=1)


def precise_prefix_cache_scorer(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: PrecisePrefixCacheScorerParams,
) -> list[float]:
    """matched(e) / total: the longest run of the prompt's leading full token blocks that e's engine
    reported stored (BlockStored, not since removed), over the prompt's full blocks. No index, or a
    prompt shorter than one block -> all 0. Equal matches -> equal scores; the picker breaks ties."""
    return prefix_fraction(ctx.precise_prefix, request, endpoints)


def register(registry: SchedulerRegistry) -> None:
    registry.scorer("precise-prefix-cache-scorer", PrecisePrefixCacheScorerParams, precise_prefix_cache_scorer)
