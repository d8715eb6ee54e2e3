"""`TaintToleration`: the pod must tolerate every NoSchedule and NoExecute taint of the node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.types import FilterStatus, NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry


class TaintTolerationParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def taint_toleration(
    ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, params: TaintTolerationParams
) -> FilterStatus | None:
    """Rule: fits iff each taint with effect NoSchedule or NoExecute is tolerated by some toleration
    (same effect or none; same key, or no key with Exists; Exists, or Equal with the same value).
    PreferNoSchedule is a scoring matter and ignored. The reason names the first untolerated taint in
    the node's order, as kube-scheduler does: `node(s) had untolerated taint {key: value}`. Retryable."""
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not pod.tolerates(taint):
            return FilterStatus((f"node(s) had untolerated taint {{{taint.key}: {taint.value or ''}}}",))
    return None


def register(registry: SchedulerRegistry) -> None:
    registry.register_filter("TaintToleration", TaintTolerationParams, taint_toleration)
