"""`NodeName`: a pod with spec.nodeName set fits only that node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.types import FilterStatus, NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry

REASON = "node(s) didn't match the requested node name"  # kube-scheduler's nodename.ErrReason


class NodeNameParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def node_name(ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, params: NodeNameParams) -> FilterStatus | None:
    """Rule: fits iff pod.node_name is unset or equals node.name. Retryable (the node may join later)."""
    if pod.node_name is None or pod.node_name == node.name:
        return None
    return FilterStatus((REASON,))


def register(registry: SchedulerRegistry) -> None:
    registry.register_filter("NodeName", NodeNameParams, node_name)
