"""`NodeAffinity`: spec.nodeSelector and the required node affinity must both match the node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.types import FilterStatus, NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry

REASON = "node(s) didn't match Pod's node affinity/selector"  # kube-scheduler's nodeaffinity.ErrReasonPod


class NodeAffinityParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def node_affinity(
    ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, params: NodeAffinityParams
) -> FilterStatus | None:
    """Rule: every nodeSelector label equals the node's, and (when set) some required node selector
    term matches: terms are ORed, a term's expressions ANDed; In, NotIn, Exists, DoesNotExist, Gt, Lt
    as Kubernetes defines them (NotIn/DoesNotExist hold for a missing label; Gt/Lt compare integers;
    an empty term matches nothing). Retryable (labels can change)."""
    if any(node.labels.get(k) != v for k, v in pod.node_selector.items()):
        return FilterStatus((REASON,))
    terms = pod.required_affinity
    if terms is not None and not any(t.matches(node) for t in terms):
        return FilterStatus((REASON,))
    return None


def register(registry: SchedulerRegistry) -> None:
    registry.register_filter("NodeAffinity", NodeAffinityParams, node_affinity)
