"""Placement decisions of every policy on hand-made cases, and the snapshot contract."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from flotilla.slicer import GPUState, NoPlacement, Placement, PlacementRequest, SlotRange, stable_order

from .builders import CATALOG, POLICIES, REGISTRY, apply, context, gpu, outcome, place

Outcome = tuple[str, int] | str


@dataclass
class Case:
    """One request on a hand-made cluster; the expected outcome per policy (default: the same for all)."""

    name: str
    gpus: list[GPUState]
    profile: str
    expect: Outcome
    per_policy: dict[str, Outcome] = field(default_factory=dict)


CASES = [
    Case(
        "1g beside 1g@0 and 3g@4: the free pair 2-3 stays whole",
        [gpu("GPU-A", ("1g.5gb", 0), ("3g.20gb", 4))],
        "1g.5gb",
        ("GPU-A", 1),
    ),
    Case(
        "1g with an empty GPU first and a half-used one second",
        [gpu("GPU-A"), gpu("GPU-B", ("3g.20gb", 0))],
        "1g.5gb",
        ("GPU-A", 0),  # first-fit: the first GPU, the first start
        {"best-fit": ("GPU-B", 4), "packing": ("GPU-B", 6)},  # packing keeps 4-5 for a 2g/1g.10gb
    ),
    Case(
        "3g on an empty GPU",
        [gpu("GPU-A")],
        "3g.20gb",
        ("GPU-A", 0),
        {"packing": ("GPU-A", 4)},  # the 4g.20gb placement (start 0 only) survives
    ),
    Case(
        "3g prefers a partitioned GPU to an empty one",
        [gpu("GPU-A"), gpu("GPU-B", ("1g.5gb", 0))],
        "3g.20gb",
        ("GPU-A", 0),
        {"best-fit": ("GPU-B", 4), "packing": ("GPU-B", 4)},
    ),
    Case(
        "equal losses: packing leaves no slot orphaned rather than filling the fuller GPU",
        [gpu("GPU-A"), gpu("GPU-B", ("1g.5gb", 4), ("1g.5gb", 5), ("1g.5gb", 6))],
        "3g.20gb",
        ("GPU-A", 0),
        {"best-fit": ("GPU-B", 0), "packing": ("GPU-A", 4)},  # 3g@0 on B would orphan slot 7
    ),
    Case(
        "1g.10gb on the slot-7 pair of a GPU with seven 1g-capable slots taken",
        [gpu("GPU-A", *[("1g.5gb", s) for s in range(6)])],
        "1g.10gb",
        ("GPU-A", 6),
    ),
    Case(
        "a full GPU has no room",
        [gpu("GPU-A", ("3g.20gb", 0), ("3g.20gb", 4))],
        "1g.5gb",
        "NoCapacity",
    ),
    Case(
        "slot 7 alone fits no 1g.5gb",
        [gpu("GPU-A", *[("1g.5gb", s) for s in range(7)])],
        "1g.5gb",
        "NoCapacity",
    ),
    Case(
        "an unhealthy GPU is never chosen",
        [gpu("GPU-A", healthy=False), gpu("GPU-B", ("2g.10gb", 0))],
        "1g.5gb",
        ("GPU-B", 2),
    ),
    Case(
        "only unhealthy GPUs: no room now, not unsupported",
        [gpu("GPU-A", healthy=False)],
        "1g.5gb",
        "NoCapacity",
    ),
    Case("a profile the model lacks", [gpu("GPU-A"), gpu("GPU-B")], "7g.80gb", "UnsupportedProfile"),
    Case("a profile no model has", [gpu("GPU-A")], "9g.1gb", "UnsupportedProfile"),
    Case("no GPUs at all", [], "1g.5gb", "UnsupportedProfile"),
    Case(
        "one +me instance per GPU",
        [gpu("GPU-A", ("1g.5gb+me", 0)), gpu("GPU-B", ("1g.5gb", 0))],
        "1g.5gb+me",
        ("GPU-B", 1),
        {"packing": ("GPU-B", 1)},
    ),
    Case(
        "the +me limit holds with free slots left",
        [gpu("GPU-A", ("1g.5gb+me", 0))],
        "1g.5gb+me",
        "NoCapacity",
    ),
    Case(
        "a profile only the H100 has",
        [gpu("GPU-A"), gpu("GPU-B", model="H100-80GB")],
        "1g.20gb",
        ("GPU-B", 0),
        {"packing": ("GPU-B", 6)},
    ),
    Case(
        "identical GPUs: the first in order",
        [gpu("GPU-A", ("3g.20gb", 0)), gpu("GPU-B", ("3g.20gb", 0))],
        "3g.20gb",
        ("GPU-A", 4),
    ),
]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decisions(case: Case, policy: str) -> None:
    decision = place(policy, case.profile, case.gpus)
    assert outcome(decision) == case.per_policy.get(policy, case.expect)
    if isinstance(decision, Placement):
        chosen = next(g for g in case.gpus if g.uuid == decision.gpu)
        assert decision.size == CATALOG.profile(chosen.model, case.profile).size
        assert decision.node == chosen.node and decision.owner == "req"


@pytest.mark.parametrize(
    ("policy", "after"),
    [("first-fit", "NoCapacity"), ("best-fit", ("GPU-A", 0)), ("packing", ("GPU-A", 0))],
)
def test_a_whole_gpu_survives_packing_but_not_first_fit(policy: str, after: Outcome) -> None:
    """GPU-A empty, GPU-B with a 3g@0: first-fit puts a 1g on A, so a 7g no longer fits anywhere."""
    gpus = [gpu("GPU-A"), gpu("GPU-B", ("3g.20gb", 0))]
    gpus = apply(gpus, place(policy, "1g.5gb", gpus))
    assert outcome(place(policy, "7g.40gb", gpus)) == after


@pytest.mark.parametrize(("policy", "four_g"), [("first-fit", "NoCapacity"), ("packing", ("GPU-A", 0))])
def test_after_a_3g_on_an_empty_gpu_a_4g_still_fits_only_under_packing(policy: str, four_g: Outcome) -> None:
    gpus = [gpu("GPU-A")]
    gpus = apply(gpus, place(policy, "3g.20gb", gpus))
    assert outcome(place(policy, "4g.20gb", gpus)) == four_g


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("profile", "expect"),
    [("3g.20gb", "NoCapacity"), ("4g.20gb", "NoCapacity"), ("2g.10gb", ("GPU-A", 2)), ("1g.5gb", ("GPU-A", 2))],
)
def test_after_1g_at_0_and_3g_at_4_and_a_new_1g_only_slots_2_3_remain(
    policy: str, profile: str, expect: Outcome
) -> None:
    gpus = [gpu("GPU-A", ("1g.5gb", 0), ("3g.20gb", 4))]
    gpus = apply(gpus, place(policy, "1g.5gb", gpus))  # every policy puts it at slot 1 (test_decisions)
    assert gpus[0].occupied == 0b11110011
    assert outcome(place(policy, profile, gpus)) == expect


def test_unsupported_and_no_capacity_say_why_and_when_to_retry() -> None:
    unsupported = place("packing", "7g.80gb", [gpu("GPU-A")])
    assert isinstance(unsupported, NoPlacement) and unsupported.retry == "never"
    assert "no GPU model in the cluster has MIG profile '7g.80gb'" in unsupported.message
    assert "A100-40GB: 1g.5gb, 1g.5gb+me, 1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb, 7g.40gb" in unsupported.message
    full = place("packing", "3g.20gb", [gpu("GPU-A", ("3g.20gb", 0), ("3g.20gb", 4))])
    assert isinstance(full, NoPlacement) and full.retry == "on-capacity" and full.reason == "NoCapacity"


@pytest.mark.parametrize("policy", POLICIES)
def test_decisions_do_not_depend_on_the_random_generator(policy: str) -> None:
    gpus = [gpu(f"GPU-{i}", ("1g.5gb", i % 7)) for i in range(6)]
    request = PlacementRequest("2g.10gb", "r")
    policy_fn = REGISTRY.bind(context(policy).config)
    assert len({outcome(policy_fn.place(context(policy, seed), request, gpus)) for seed in range(5)}) == 1


def test_the_placement_is_an_allocation_of_the_gpu() -> None:
    gpus = [gpu("GPU-A", ("3g.20gb", 4))]
    decision = place("first-fit", "2g.10gb", gpus, owner="pod-7")
    assert isinstance(decision, Placement)
    after = gpus[0].with_allocation(decision.allocation())
    assert after.occupied == 0b11110011
    assert after.count("2g.10gb") == 1
    assert after.without_owner("pod-7") == gpus[0]


@pytest.mark.parametrize(
    ("allocations", "message"),
    [
        ((SlotRange(0, 4, "a", "3g.20gb"), SlotRange(2, 2, "b", "2g.10gb")), "GPU G: b at 2:2 overlaps"),
        ((SlotRange(6, 4, "a", "3g.20gb"),), "GPU G: a at 6:4 is outside slots 0..7"),
        ((SlotRange(-1, 1, "a", "1g.5gb"),), "outside slots"),
        ((SlotRange(0, 0, "a", "1g.5gb"),), "outside slots"),
    ],
)
def test_a_gpu_state_refuses_impossible_allocations(allocations: tuple[SlotRange, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GPUState("G", "n", "A100-40GB", allocations)
    with pytest.raises(ValueError, match="overlaps"):
        gpu("GPU-A", ("3g.20gb", 0)).with_allocation(SlotRange(3, 1, "late", "1g.5gb"))


def test_stable_order_is_node_then_uuid() -> None:
    gpus = [gpu("GPU-2", node="b"), gpu("GPU-9", node="a"), gpu("GPU-1", node="b")]
    assert [g.uuid for g in stable_order(gpus)] == ["GPU-9", "GPU-1", "GPU-2"]
