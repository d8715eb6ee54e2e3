"""`GPUPacking`: put GPU and MIG pods where their devices cost the least placeable capacity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flotilla.runtime.scheduling.devices import DevicePlan, capacity, plan_devices
from flotilla.runtime.scheduling.types import NodeInfo, PodInfo, SchedulingContext

if TYPE_CHECKING:
    from flotilla.runtime.scheduling.framework import SchedulerRegistry


class GPUPackingParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def gpu_packing(
    ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo], params: GPUPackingParams
) -> list[float]:
    """Formula: with C(gpus) the placeable capacity and O(gpus) the orphaned slots of a node's healthy
    GPUs (flotilla.slicer.slots: C = sum over profiles q of size_q * min(max_instances_q, free
    placements of q), per GPU), each node gets the key
        (loss, orphaned, left) = (C(before) - C(after), O(after), C(after))
    for the pod's device plan there (devices.py): the capacity the placement destroys, the slots it
    strands, and what the node keeps. Lower keys are better: least capacity lost cluster-wide, then
    fewest stranded slots, then the fuller node (bin packing: whole-GPU pods fill the node with the
    fewest free GPUs). score = 1 - rank / (distinct keys - 1), rank counting distinct keys from the
    best (0); one distinct key -> 1.0 everywhere. Equal keys get equal scores: the framework breaks
    those ties with ctx.rng. Pods without GPUs or MIG slices: 1.0 on every node.
    """
    if not pod.wants_gpus:
        return [1.0] * len(nodes)
    keys = []
    for node in nodes:
        plan = plan_devices(ctx, pod, node)
        if not isinstance(plan, DevicePlan):  # not feasible (GPUFit disabled): worst key
            keys.append((1 << 30, 0, 0))
            continue
        before, _ = capacity(ctx, plan.before)
        after, orphaned = capacity(ctx, plan.after)
        keys.append((before - after, orphaned, after))
    distinct = sorted(set(keys))
    if len(distinct) == 1:
        return [1.0] * len(nodes)
    rank = {k: i for i, k in enumerate(distinct)}
    return [1.0 - rank[k] / (len(distinct) - 1) for k in keys]


def register(registry: SchedulerRegistry) -> None:
    registry.register_scorer("GPUPacking", GPUPackingParams, gpu_packing)
