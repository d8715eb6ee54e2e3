"""`first-fit`: what the Dynamic Accelerator Slicer (instaslice) does."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from flotilla.slicer.placement import Choice, GPUState, PlacementContext, PlacementRegistry, PlacementRequest


class FirstFitParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def first_fit(
    ctx: PlacementContext, request: PlacementRequest, gpus: Sequence[GPUState], params: FirstFitParams
) -> Choice | None:
    """The first healthy GPU, in the given (stable) order, with any free placement; on it, the lowest free start.

    Formula: choose min over (GPU index, start) of the feasible placements, GPU index first.
    No ties: the order is total. DAS does the same (controller/capacity.go: GPU UUIDs sorted per
    node, the profile's placements tried in ascending start order, the first free one taken).
    """
    catalog = ctx.catalog
    model = None
    slots = None
    for index, gpu in enumerate(gpus):
        if not gpu.healthy:
            continue
        if gpu.model != model:
            model = gpu.model
            slots = catalog.slots(model, request.profile)
        if slots is None:
            continue
        start = slots.first_start[gpu.occupied]
        if start < 0 or (slots.limited and gpu.count(request.profile) >= slots.profile.max_instances):
            continue
        return Choice(index, start)
    return None


def register(registry: PlacementRegistry) -> None:
    registry.register("first-fit", FirstFitParams, first_fit)
