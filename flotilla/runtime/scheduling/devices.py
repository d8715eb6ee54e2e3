"""Which GPUs and MIG slots a pod would get on one node: the plan GPUFit checks, GPUPacking scores
and the framework binds. Pure functions of (context, pod, node).

Plan on a node, on a copy of its GPUs in the slicer's stable order (node, UUID), where a GPU that
is unhealthy in the snapshot or whose health is EVICT/ERR is passed to the slicer as unhealthy:

1. whole GPUs: the first `pod.gpus` healthy GPUs with no allocation (each becomes a "gpu" range
   over slots 0..7, so no slice lands on it);
2. MIG slices: one after another, each by the slicer's bound policy (`ctx.policy`, so first-fit vs
   packing is the slicer's config) on the GPUs as the earlier slices left them; the largest profile
   first (bin packing's rule: a 4g.20gb is not blocked by a 1g.5gb placed at slot 0 before it),
   ties in the pod's order.

The devices come back in the pod's order (whole GPUs, then `pod.mig` entries), whatever the order
they were placed in. A node that cannot fit the pod says whether it ever could: the same plan on
its GPUs emptied and healthy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from flotilla.runtime.scheduling.types import (
    GPU_RESOURCE,
    WHOLE_GPU,
    DeviceAssignment,
    NodeInfo,
    PodInfo,
    SchedulingContext,
    mig_resource,
)
from flotilla.slicer import GPUState, NoPlacement, PlacementRequest, SlotRange, stable_order
from flotilla.slicer.slots import MAX_SLOTS


@dataclass(frozen=True)
class DevicePlan:
    """The devices, and the node's usable GPUs before and after taking them (for scoring)."""

    devices: tuple[DeviceAssignment, ...]
    before: tuple[GPUState, ...]
    after: tuple[GPUState, ...]


@dataclass(frozen=True)
class DeviceShortfall:
    """The devices do not fit: kube-style reason (`Insufficient nvidia.com/mig-3g.20gb`) and whether
    they would fit on this node's GPUs were they all empty and healthy."""

    reason: str
    retryable: bool


def usable_gpus(node: NodeInfo) -> tuple[GPUState, ...]:
    """The node's GPUs in stable order, with EVICT/ERR ones marked unhealthy for the slicer."""
    return tuple(g if node.gpu_usable(g) else replace(g, healthy=False) for g in stable_order(node.gpus))


def plan_devices(ctx: SchedulingContext, pod: PodInfo, node: NodeInfo) -> DevicePlan | DeviceShortfall:
    """The pod's devices on `node`, or why not (see the module docstring for the rule)."""
    gpus = usable_gpus(node)
    plan = _plan(ctx, pod, gpus)
    if not isinstance(plan, str):
        return plan
    empty = tuple(replace(g, allocations=(), healthy=True) for g in gpus)
    return DeviceShortfall(plan, retryable=not isinstance(_plan(ctx, pod, empty), str))


def _plan(ctx: SchedulingContext, pod: PodInfo, gpus: Sequence[GPUState]) -> DevicePlan | str:
    """The plan, or the reason it fails."""
    before = tuple(gpus)
    current = list(gpus)
    devices: list[DeviceAssignment | None] = [None] * (pod.gpus + len(pod.mig))
    if pod.gpus:
        free = [i for i, g in enumerate(current) if g.healthy and not g.allocations]
        if len(free) < pod.gpus:
            return f"Insufficient {GPU_RESOURCE}"
        for n, i in enumerate(free[: pod.gpus]):
            current[i] = current[i].with_allocation(SlotRange(0, MAX_SLOTS, pod.owner, WHOLE_GPU))
            devices[n] = DeviceAssignment(current[i].uuid, WHOLE_GPU, 0, MAX_SLOTS)
    for n in sorted(range(len(pod.mig)), key=lambda n: -_largest_size(ctx, pod.mig[n])):
        profile = pod.mig[n]
        decision = ctx.policy.place(ctx.placement, PlacementRequest(profile, pod.owner), current)
        if isinstance(decision, NoPlacement):
            return f"Insufficient {mig_resource(profile)}"
        i = next(i for i, g in enumerate(current) if g.uuid == decision.gpu)
        current[i] = current[i].with_allocation(decision.allocation())
        devices[pod.gpus + n] = DeviceAssignment(decision.gpu, profile, decision.start, decision.size)
    return DevicePlan(tuple(d for d in devices if d is not None), before, tuple(current))


def _largest_size(ctx: SchedulingContext, profile: str) -> int:
    catalog = ctx.placement.catalog
    return max((s.size for m in catalog.models_offering(profile) if (s := catalog.slots(m, profile))), default=0)


def capacity(ctx: SchedulingContext, gpus: Sequence[GPUState]) -> tuple[int, int]:
    """(placeable capacity, orphaned slots) summed over the healthy GPUs (flotilla.slicer.slots).

    A GPU of a model without a MIG table counts as one whole-GPU placement: 8 when it has no
    allocation, else 0; it orphans nothing.
    """
    total = orphaned = 0
    for g in gpus:
        if not g.healthy:
            continue
        geometry = ctx.placement.catalog.geometry.get(g.model)
        if geometry is None:
            total += 0 if g.allocations else MAX_SLOTS
            continue
        mask = g.occupied & geometry.full
        total += geometry.capacity[mask]
        orphaned += geometry.orphaned[mask]
    return total, orphaned
