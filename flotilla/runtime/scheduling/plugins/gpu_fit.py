"""`GPUFit`: the pod's whole GPUs and MIG slices can be placed on the node's healthy GPUs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.devices import DeviceShortfall, plan_devices
from flotilla.runtime.scheduling.types import FilterStatus, NodeInfo, PodInfo, SchedulingContext
from flotilla.slicer import NoPlacement, PlacementRequest, stable_order

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry


class GPUFitParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def gpu_fit(ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, params: GPUFitParams) -> FilterStatus | None:
    """Rule: fits iff the device plan (runtime/scheduling/devices.py) succeeds on this node: `gpus`
    healthy GPUs with no allocation, then each MIG slice placed by the slicer's policy on a copy
    of the GPUs, largest profile first (ties in the pod's order). GPUs unhealthy in the snapshot or
    with health EVICT/ERR are passed to the slicer as unhealthy and never chosen. Reasons:
    `Insufficient nvidia.com/gpu`, `Insufficient nvidia.com/mig-<profile>` (the first slice that did
    not fit). Not retryable when the plan fails even on the node's GPUs emptied and healthy."""
    if not pod.wants_gpus:
        return None
    plan = plan_devices(ctx, pod, node)
    if isinstance(plan, DeviceShortfall):
        return FilterStatus((plan.reason,), plan.retryable)
    return None


def profiles_offered(
    ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo], params: GPUFitParams
) -> str | None:
    """Cluster-wide: every MIG profile the pod asks for must be offered by the model of some GPU in
    the cluster, or the pod can never be placed; the slicer's UnsupportedProfile message says so and
    lists the profiles each model present offers."""
    gpus = stable_order(g for n in nodes for g in n.gpus)
    for profile in dict.fromkeys(pod.mig):
        decision = ctx.policy.place(ctx.placement, PlacementRequest(profile, pod.owner), gpus)
        if isinstance(decision, NoPlacement) and decision.reason == "UnsupportedProfile":
            return decision.message
    return None


def register(registry: SchedulerRegistry) -> None:
    registry.register_filter("GPUFit", GPUFitParams, gpu_fit, prefilter=profiles_offered)
