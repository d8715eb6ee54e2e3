"""`NodeResourcesFit`: the pod's requests fit in what the node has left, and the pod count is under its limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.types import FilterStatus, NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry

TOO_MANY_PODS = "Too many pods"
_FIRST = ("cpu", "memory", "ephemeral-storage")  # kube-scheduler reports these first, then the rest by name


class NodeResourcesFitParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    ignored_resources: frozenset[str] = frozenset()  # kube's ignoredResources: never checked


def node_resources_fit(
    ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, params: NodeResourcesFitParams
) -> FilterStatus | None:
    """Rule: for every resource r the pod requests (> 0, not ignored),
        node.requested[r] + pod.requests[r] <= node.allocatable[r]   (a missing allocatable is 0)
    and node.pods + 1 <= allocatable["pods"] when the node states a pod limit. Each failure is one
    reason, in kube-scheduler's order and words: `Too many pods`, `Insufficient cpu`,
    `Insufficient memory`, `Insufficient ephemeral-storage`, then `Insufficient <r>` by name.
    Not retryable when the pod alone exceeds the node (pod.requests[r] > allocatable[r], or a pod
    limit of 0): freeing other pods can never make room."""
    reasons: list[str] = []
    never = False
    limit = node.max_pods
    if limit is not None and node.pods + 1 > limit:
        reasons.append(TOO_MANY_PODS)
        never = limit < 1
    order = sorted(pod.requests, key=lambda r: (_FIRST.index(r) if r in _FIRST else len(_FIRST), r))
    for r in order:
        want = pod.requests[r]
        if want <= 0 or r in params.ignored_resources or r == "pods":
            continue
        have = node.allocatable.get(r, 0)
        if node.requested.get(r, 0) + want > have:
            reasons.append(f"Insufficient {r}")
            never = never or want > have
    return FilterStatus(tuple(reasons), retryable=not never) if reasons else None


def register(registry: SchedulerRegistry) -> None:
    registry.register_filter("NodeResourcesFit", NodeResourcesFitParams, node_resources_fit)
