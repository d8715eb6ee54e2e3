"""`GPUHealth`: GPU pods stay off nodes that IBM Autopilot marks EVICT or ERR."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.types import HEALTH_LABEL, FilterStatus, NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry


class GPUHealthParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = HEALTH_LABEL
    reject: frozenset[str] = frozenset({"EVICT", "ERR"})


def gpu_health(ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, params: GPUHealthParams) -> FilterStatus | None:
    """Rule: a pod that requests whole GPUs or MIG slices does not fit a node whose label
    `autopilot.ibm.com/gpuhealth` is in `reject` (EVICT, ERR); reason `node(s) had GPU health <value>`.
    Pods without GPUs fit regardless. Retryable (health checks run again). Single GPUs marked
    EVICT/ERR are handled by GPUFit, which never places on them."""
    value = node.labels.get(params.label)
    if pod.wants_gpus and value in params.reject:
        return FilterStatus((f"node(s) had GPU health {value}",))
    return None


def register(registry: SchedulerRegistry) -> None:
    registry.register_filter("GPUHealth", GPUHealthParams, gpu_health)
