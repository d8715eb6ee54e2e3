"""`GPUHealth`: GPU pods stay off nodes that IBM Autopilot marks ERR (or EVICT too, if configured).

Flotilla's scheduler is device-aware: a GPU whose own health is EVICT or ERR is never used
(GPUFit), while the node's other GPUs still are. The node label (the worst of its GPUs and node
checks) takes the whole node out only for ERR by default: a node that fails its ping or has an
unreachable GPU. Kubernetes users of Autopilot drain EVICT nodes whole (node affinity on the
label); `args: {GPUHealth: {reject: [EVICT, ERR]}}` does the same here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.types import HEALTH_LABEL, FilterStatus, NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry


class GPUHealthParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = HEALTH_LABEL
    reject: frozenset[str] = frozenset({"ERR"})


def gpu_health(ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, params: GPUHealthParams) -> FilterStatus | None:
    """Rule: a pod that requests whole GPUs or MIG slices does not fit a node whose label
    `autopilot.ibm.com/gpuhealth` is in `reject` (default: ERR); reason `node(s) had GPU health <value>`.
    Pods without GPUs fit regardless. Retryable (health checks run again). Single GPUs marked
    EVICT/ERR are handled by GPUFit, which never places on them."""
    value = node.labels.get(params.label)
    if pod.wants_gpus and value in params.reject:
        return FilterStatus((f"node(s) had GPU health {value}",))
    return None


def register(registry: SchedulerRegistry) -> None:
    registry.register_filter("GPUHealth", GPUHealthParams, gpu_health)
