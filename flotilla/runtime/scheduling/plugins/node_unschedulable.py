"""`NodeUnschedulable`: a cordoned node (spec.unschedulable) takes only pods that tolerate it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.types import FilterStatus, NodeInfo, PodInfo, SchedulingContext, Taint

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry

REASON = "node(s) were unschedulable"  # kube-scheduler's nodeunschedulable.ErrReasonUnschedulable
UNSCHEDULABLE_TAINT = Taint(key="node.kubernetes.io/unschedulable", effect="NoSchedule")


class NodeUnschedulableParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def node_unschedulable(
    ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, params: NodeUnschedulableParams
) -> FilterStatus | None:
    """Rule: fits iff the node is not unschedulable, or the pod tolerates the taint
    `node.kubernetes.io/unschedulable:NoSchedule` (as DaemonSet pods do). Retryable (uncordon)."""
    if not node.unschedulable or pod.tolerates(UNSCHEDULABLE_TAINT):
        return None
    return FilterStatus((REASON,))


def register(registry: SchedulerRegistry) -> None:
    registry.register_filter("NodeUnschedulable", NodeUnschedulableParams, node_unschedulable)
