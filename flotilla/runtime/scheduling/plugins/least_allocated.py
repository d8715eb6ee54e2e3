"""`NodeResourcesLeastAllocated`: spread pods, preferring the node with the most cpu and memory left."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from flotilla.runtime.scheduling.types import NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry

# kube-scheduler scores a pod that requests no cpu or memory as if it asked for these (non-zero requests)
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


class ResourceWeights(BaseModel):
    """The resources a score averages over and their weights (kube's scoringStrategy.resources)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    resources: Mapping[str, float] = Field(default_factory=lambda: {"cpu": 1.0, "memory": 1.0}, min_length=1)


class LeastAllocatedParams(ResourceWeights):
    pass


def used_fraction(pod: PodInfo, node: NodeInfo, resource: str) -> float:
    """(node.requested[r] + pod request[r]) / node.allocatable[r], clamped to [0, 1]; 1 when nothing is
    allocatable. A pod without a cpu or memory request counts as 100m cpu and 200Mi memory."""
    have = node.allocatable.get(resource, 0)
    if have <= 0:
        return 1.0
    want = pod.requests.get(resource, 0)
    if want == 0:
        want = {"cpu": DEFAULT_MILLI_CPU, "memory": DEFAULT_MEMORY}.get(resource, 0)
    return min(1.0, max(0.0, (node.requested.get(resource, 0) + want) / have))


def weighted_mean(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    total = sum(weights.values())
    return sum(values[r] * w for r, w in weights.items()) / total if total > 0 else 0.0


def least_allocated(
    ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo], params: LeastAllocatedParams
) -> list[float]:
    """Formula: score(node) = weighted mean over resources r (default cpu and memory, weight 1 each) of
        1 - (requested[r] + pod[r]) / allocatable[r]     (the free fraction after placing, in [0, 1])
    Ties (equally free nodes) are broken by the framework with ctx.rng."""
    return [
        weighted_mean({r: 1.0 - used_fraction(pod, n, r) for r in params.resources}, params.resources) for n in nodes
    ]


def register(registry: SchedulerRegistry) -> None:
    registry.register_scorer("NodeResourcesLeastAllocated", LeastAllocatedParams, least_allocated)
