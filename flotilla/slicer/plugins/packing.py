"""`packing`: place where the least placeable capacity is lost, to keep large contiguous ranges free."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from flotilla.slicer.placement import Choice, GPUState, PlacementContext, PlacementRegistry, PlacementRequest


class PackingParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def packing(
    ctx: PlacementContext, request: PlacementRequest, gpus: Sequence[GPUState], params: PackingParams
) -> Choice | None:
    """The (GPU, start) that costs the least placeable capacity; ties: fewer orphaned slots, fuller GPU, first GPU.

    Placeable capacity of a GPU whose occupied slots are m (flotilla.slicer.slots):
        C(m) = sum over the model's profiles q of size_q * min(max_instances_q, #free placements of q in m)
    Placing at start s (slots r) costs loss = C(m) - C(m | r). Choose the minimum of
        (loss, orphaned(m | r), free slots left on the GPU after placing, GPU index, start)
    over healthy GPUs and free starts, where orphaned counts free slots no profile can use any more.
    Small losses go to GPUs that are already partitioned (an empty GPU loses its 7g and 4g
    placements), and within a GPU to the start that breaks the fewest larger placements (a 1g lands
    beside other small slices, not in a free half). Deterministic: ties go to the first GPU in the
    given (stable) order, then the lowest start. The scan stops at a key no placement can beat.
    """
    catalog = ctx.catalog
    # the best key any model offering the profile can produce: reaching it ends the scan
    floor = min(
        (s.min_key for m in catalog.models_offering(request.profile) if (s := catalog.slots(m, request.profile))),
        default=-1,
    )
    model = None
    slots = None
    keys: tuple[int, ...] = ()
    best_key = 1 << 30
    best: Choice | None = None
    for index, gpu in enumerate(gpus):
        if not gpu.healthy:
            continue
        if gpu.model != model:
            model = gpu.model
            slots = catalog.slots(model, request.profile)
            keys = slots.least_loss_key if slots is not None else ()
        if slots is None:
            continue
        key = keys[gpu.occupied]
        if key < 0 or key >= best_key:
            continue
        if slots.limited and gpu.count(request.profile) >= slots.profile.max_instances:
            continue
        best_key, best = key, Choice(index, slots.least_loss_start[gpu.occupied])
        if key == floor:
            break
    return best


def register(registry: PlacementRegistry) -> None:
    registry.register("packing", PackingParams, packing)
