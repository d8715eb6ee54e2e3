"""`NodeResourcesMostAllocated`: pack pods, preferring the node with the least cpu and memory left (off by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from flotilla.runtime.scheduling.plugins.least_allocated import ResourceWeights, used_fraction, weighted_mean
from flotilla.runtime.scheduling.types import NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry


class MostAllocatedParams(ResourceWeights):
    pass


def most_allocated(
    ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo], params: MostAllocatedParams
) -> list[float]:
    """Formula: score(node) = weighted mean over resources r (default cpu and memory, weight 1 each) of
        (requested[r] + pod[r]) / allocatable[r]     (the used fraction after placing, clamped to [0, 1])
    Ties (equally full nodes) are broken by the framework with ctx.rng."""
    return [weighted_mean({r: used_fraction(pod, n, r) for r in params.resources}, params.resources) for n in nodes]


def register(registry: SchedulerRegistry) -> None:
    registry.register_scorer("NodeResourcesMostAllocated", MostAllocatedParams, most_allocated)
