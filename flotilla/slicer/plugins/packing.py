"""`packing`: place where the least placeable capacity is lost, to keep large contiguous ranges free."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flotilla.slicer.placement import Choice, GPUState, PlacementContext, PlacementRegistry, PlacementRequest
from flotilla.slicer.slots import MASKS, SlotGeometry, slots_free

LOSS_SCALE = 1_000_000  # weighted losses are compared in millionths of a slot (weights are normalised to sum 1)


class PackingParams(BaseModel):
    """`demand`: the expected share of requests per profile name (any non-negative numbers; normalised).

    Empty (the default): every profile of the model weighs 1, the unweighted formula. Profiles left
    out of a non-empty `demand` weigh 0: their placements are not worth keeping free.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    demand: Mapping[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = {}

    @field_validator("demand")
    @classmethod
    def _some_demand(cls, demand: Mapping[str, float]) -> Mapping[str, float]:
        if demand and not any(demand.values()):
            raise ValueError("at least one profile needs a weight above 0 (or leave demand empty)")
        return demand


@dataclass(frozen=True)
class WeightedTables:
    """One profile of one model under demand weights: per occupied mask, the best key and its start (-1: none)."""

    key: tuple[int, ...]
    start: tuple[int, ...]
    min_key: int


_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64
_CACHE: dict[tuple[int, tuple[tuple[str, float], ...]], tuple[SlotGeometry, dict[str, WeightedTables]]] = {}


def weighted_capacity(geometry: SlotGeometry, weights: Mapping[str, float], occupied: int) -> float:
    """C_w(m) = sum over the model's profiles q of w_q * size_q * min(max_instances_q, #free placements of q in m)."""
    total = 0.0
    for name, slots in geometry.profiles.items():
        weight = weights.get(name, 0.0)
        if weight:
            fits = sum(1 for r in slots.ranges if not r & occupied)
            total += weight * slots.size * min(slots.profile.max_instances, fits)
    return total


def weighted_tables(geometry: SlotGeometry, demand: Mapping[str, float]) -> dict[str, WeightedTables]:
    """Per profile of `geometry`: the least (weighted loss, orphaned after, free after, start) per mask.

    The key packs the first three into one int, ((round(loss * LOSS_SCALE) * 16 + orphaned) * 16 + free),
    with the weights normalised to sum 1, so keys compare across models as the tuples do. Memoised per
    geometry and demand (a pure function of both).
    """
    total = sum(demand.values())
    weights = {name: w / total for name, w in sorted(demand.items())}
    cache_key = (id(geometry), tuple(weights.items()))
    with _CACHE_LOCK:
        hit = _CACHE.get(cache_key)
    if hit is not None and hit[0] is geometry:
        return hit[1]
    capacity = [weighted_capacity(geometry, weights, m) for m in range(MASKS)]
    tables: dict[str, WeightedTables] = {}
    for name, slots in geometry.profiles.items():
        keys: list[int] = []
        starts: list[int] = []
        for occupied in range(MASKS):
            free = [(s, r) for s, r in zip(slots.profile.starts, slots.ranges, strict=True) if not r & occupied]
            if not free:
                keys.append(-1)
                starts.append(-1)
                continue
            key, start = min(
                (
                    (
                        round((capacity[occupied] - capacity[occupied | r]) * LOSS_SCALE) * 16
                        + geometry.orphaned[occupied | r]
                    )
                    * 16
                    + slots_free(occupied | r, geometry.slots),
                    s,
                )
                for s, r in free
            )
            keys.append(key)
            starts.append(start)
        tables[name] = WeightedTables(tuple(keys), tuple(starts), min(k for k in keys if k >= 0))
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_SIZE:  # catalogs are loaded once per process; a bound all the same
            _CACHE.clear()
        _CACHE[cache_key] = (geometry, tables)
    return tables


def packing(
    ctx: PlacementContext, request: PlacementRequest, gpus: Sequence[GPUState], params: PackingParams
) -> Choice | None:
    """The (GPU, start) that costs the least placeable capacity; ties: fewer orphaned slots, fuller GPU, first GPU.

    Placeable capacity of a GPU whose occupied slots are m (flotilla.slicer.slots), each profile q
    weighted by its expected demand w_q (params.demand normalised to sum 1; default: every w_q = 1):
        C(m) = sum over the model's profiles q of w_q * size_q * min(max_instances_q, #free placements of q in m)
    Placing at start s (slots r) costs loss = C(m) - C(m | r). Choose the minimum of
        (loss, orphaned(m | r), free slots left on the GPU after placing, GPU index, start)
    over healthy GPUs and free starts, where orphaned counts free slots no profile can use any more.
    Small losses go to GPUs that are already partitioned (an empty GPU loses its 7g and 4g
    placements), and within a GPU to the start that breaks the fewest larger placements (a 1g lands
    beside other small slices, not in a free half). With demand weights, placements of profiles that
    are asked for often (the study's 3g.20gb halves at 0 and 4) are worth more than ones nobody asks
    for (1g.5gb+me, weight 0), so a slice breaks the unrequested placements first. Weighted losses
    are compared in millionths. Deterministic: ties go to the first GPU in the given (stable) order,
    then the lowest start. The scan stops at a key no placement can beat.
    """
    catalog = ctx.catalog
    demand = params.demand
    offering = catalog.models_offering(request.profile)
    # the best key any model offering the profile can produce: reaching it ends the scan
    if demand:
        floor = min(
            (weighted_tables(catalog.geometry[m], demand)[request.profile].min_key for m in offering), default=-1
        )
    else:
        floor = min(
            (s.min_key for m in offering if (s := catalog.slots(m, request.profile))),
            default=-1,
        )
    model = None
    slots = None
    keys: tuple[int, ...] = ()
    starts: tuple[int, ...] = ()
    best_key = 1 << 62
    best: Choice | None = None
    for index, gpu in enumerate(gpus):
        if not gpu.healthy:
            continue
        if gpu.model != model:
            model = gpu.model
            slots = catalog.slots(model, request.profile)
            if slots is None:
                keys = starts = ()
            elif demand:
                table = weighted_tables(catalog.geometry[model], demand)[request.profile]
                keys, starts = table.key, table.start
            else:
                keys, starts = slots.least_loss_key, slots.least_loss_start
        if slots is None:
            continue
        key = keys[gpu.occupied]
        if key < 0 or key >= best_key:
            continue
        if slots.limited and gpu.count(request.profile) >= slots.profile.max_instances:
            continue
        best_key, best = key, Choice(index, starts[gpu.occupied])
        if key == floor:
            break
    return best


def register(registry: PlacementRegistry) -> None:
    registry.register("packing", PackingParams, packing)
