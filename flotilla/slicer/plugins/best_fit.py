"""`best-fit`: the classic bin-packing rule, the tightest GPU first."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from flotilla.slicer.placement import Choice, GPUState, PlacementContext, PlacementRegistry, PlacementRequest
from flotilla.slicer.slots import slots_free


class BestFitParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def best_fit(
    ctx: PlacementContext, request: PlacementRequest, gpus: Sequence[GPUState], params: BestFitParams
) -> Choice | None:
    """The healthy GPU with the fewest free slots that still has a free placement; on it, the lowest free start.

    Formula: choose min over feasible GPUs of (free slots before placing, GPU index); start = lowest
    free start. Ties between equally full GPUs go to the first in the given (stable) order. A GPU
    whose free slots equal the request's size is a perfect fit and ends the scan. It ignores where
    on the GPU the slice lands; `packing` does not.
    """
    catalog = ctx.catalog
    model = None
    slots = None
    size = 0
    best: Choice | None = None
    best_free = 1 << 30
    for index, gpu in enumerate(gpus):
        if not gpu.healthy:
            continue
        if gpu.model != model:
            model = gpu.model
            slots = catalog.slots(model, request.profile)
            size = slots.size if slots is not None else 0
        if slots is None:
            continue
        start = slots.first_start[gpu.occupied]
        if start < 0 or (slots.limited and gpu.count(request.profile) >= slots.profile.max_instances):
            continue
        free = slots_free(gpu.occupied, catalog.geometry[gpu.model].slots)
        if free < best_free:
            best, best_free = Choice(index, start), free
            if free == size:
                break
    return best


def register(registry: PlacementRegistry) -> None:
    registry.register("best-fit", BestFitParams, best_fit)
