"""`packing` with demand weights (params.demand): the weighted formula, its tie-breaks and its params."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from flotilla.slicer import GPUState, PlacementConfig, PlacementContext, PlacementRequest, PolicyParamsError
from flotilla.slicer.plugins.packing import weighted_capacity, weighted_tables
from flotilla.slicer.slots import MASKS, range_mask

from .builders import CATALOG, REGISTRY, gpu, outcome

A100 = CATALOG.geometry["A100-40GB"]
# the study's mix (benchmarks/slicer_bench.py): whisper-medium, whisper-large and 20% others
STUDY_MIX = {"1g.5gb": 0.45, "3g.20gb": 0.35, "1g.10gb": 0.05, "2g.10gb": 0.05, "4g.20gb": 0.05, "7g.40gb": 0.05}


Outcome = tuple[str, int] | str


def place_with(demand: Mapping[str, float], profile: str, gpus: list[GPUState]) -> Outcome:
    config = PlacementConfig(policy="packing", params={"demand": dict(demand)})
    ctx = PlacementContext(random.Random(0), CATALOG, config)
    return outcome(REGISTRY.bind(config).place(ctx, PlacementRequest(profile, "req"), gpus))


def test_weighted_capacity_of_an_empty_a100_under_the_study_mix() -> None:
    # w * size * placements: 1g.5gb .45*1*7 + 1g.10gb .05*2*4 + 2g.10gb .05*2*3 + 3g .35*4*2 + 4g .05*4 + 7g .05*8
    assert weighted_capacity(A100, STUDY_MIX, 0) == pytest.approx(3.15 + 0.4 + 0.3 + 2.8 + 0.2 + 0.4)
    assert weighted_capacity(A100, STUDY_MIX, range_mask(0, 8)) == 0
    assert weighted_capacity(A100, {"1g.5gb+me": 1.0}, range_mask(0, 7)) == 0  # slot 7 is no 1g start


def test_equal_weights_for_every_profile_are_the_unweighted_formula() -> None:
    tables = weighted_tables(A100, {name: 3.0 for name in A100.profiles})
    for name, slots in A100.profiles.items():
        assert tables[name].start == slots.least_loss_start, name
        for m in range(MASKS):  # the same order of keys: loss scaled by 1/7, then orphaned, then free
            assert (tables[name].key[m] < 0) == (slots.least_loss_key[m] < 0)


def test_weights_are_normalised_and_their_order_does_not_matter() -> None:
    a = weighted_tables(A100, STUDY_MIX)
    b = weighted_tables(A100, {name: 10 * w for name, w in reversed(STUDY_MIX.items())})
    assert a == b
    assert weighted_tables(A100, STUDY_MIX) is a  # memoised per geometry and demand


@pytest.mark.parametrize(
    ("demand", "profile", "gpus", "expect"),
    [
        # unweighted: both cost 21; the fuller GPU wins the tie (B's free half, start 0).
        # study mix: A@4 costs .4 (7g) + 1.4 (3g@4) + .1 (2g@4) + .2 (1g.10gb@4,6) + 1.35 (three 1g) = 3.45,
        # B@0 costs 1.4 + .2 (4g) + .2 (2g@0,2) + .2 (1g.10gb@0,2) + 1.8 (four 1g) = 3.8: the empty GPU is cheaper
        ({}, "3g.20gb", [gpu("GPU-A"), gpu("GPU-B", ("3g.20gb", 4))], ("GPU-B", 0)),
        (STUDY_MIX, "3g.20gb", [gpu("GPU-A"), gpu("GPU-B", ("3g.20gb", 4))], ("GPU-A", 4)),
        # only 3g.20gb asked for: every start of a free half costs one 3g (weight 1 x 4 slots); ties: no orphan
        # (start 6 would orphan slot 7), then the fuller GPU (A), then the lowest start; unweighted keeps 4-5
        ({}, "1g.5gb", [gpu("GPU-A", ("3g.20gb", 0)), gpu("GPU-B")], ("GPU-A", 6)),
        ({"3g.20gb": 1}, "1g.5gb", [gpu("GPU-A", ("3g.20gb", 0)), gpu("GPU-B")], ("GPU-A", 4)),
        # a 1g next to another 1g breaks no more halves under any weights
        (STUDY_MIX, "1g.5gb", [gpu("GPU-A"), gpu("GPU-B", ("1g.5gb", 0))], ("GPU-B", 1)),
        # identical GPUs: the first in the given order
        (STUDY_MIX, "1g.5gb", [gpu("GPU-A", ("3g.20gb", 0)), gpu("GPU-B", ("3g.20gb", 0))], ("GPU-A", 6)),
        (STUDY_MIX, "3g.20gb", [gpu("GPU-A", ("3g.20gb", 0), ("3g.20gb", 4))], "NoCapacity"),
        (STUDY_MIX, "1g.20gb", [gpu("GPU-A"), gpu("GPU-B", model="H100-80GB")], ("GPU-B", 6)),
    ],
)
def test_demand_weighted_decisions(
    demand: Mapping[str, float], profile: str, gpus: list[GPUState], expect: Outcome
) -> None:
    assert place_with(demand, profile, gpus) == expect
    assert place_with(demand, profile, gpus) == expect  # deterministic, memoised tables or not


@pytest.mark.parametrize(
    ("demand", "message"),
    [
        ({"1g.5gb": -1}, r"params\.demand\[1g\.5gb\]: .*greater than or equal to 0"),
        ({"1g.5gb": 0, "3g.20gb": 0}, "params.demand: .*at least one profile needs a weight above 0"),
        ({"1g.5gb": "many"}, r"params\.demand\[1g\.5gb\]: .*number"),
        ({"1g.5gb": float("inf")}, r"params\.demand\[1g\.5gb\]: .*finite"),
    ],
)
def test_demand_params_are_validated(demand: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyParamsError, match=message):
        REGISTRY.bind(PlacementConfig(policy="packing", params={"demand": demand}))
