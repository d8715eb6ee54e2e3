"""Whole GPUs and MIG slices through the whole cycle: which node, which GPU, which slots."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from flotilla.runtime.scheduling import Bound, DeviceAssignment, SchedulerConfig, ScorerConfig, Unschedulable

from .builders import NodeBuilder, PodBuilder, node, pod, run

A100 = "A100-40GB"
HEALTH = "autopilot.ibm.com/gpuhealth"


def mig(gpu: str, profile: str, start: int, size: int) -> DeviceAssignment:
    return DeviceAssignment(gpu, profile, start, size)


def whole(gpu: str) -> DeviceAssignment:
    return DeviceAssignment(gpu, "gpu", 0, 8)


@dataclass
class Case:
    name: str
    pod: PodBuilder
    nodes: list[NodeBuilder]
    node: str | None  # None: unschedulable
    devices: tuple[DeviceAssignment, ...] = ()
    message: str = ""
    placement: str = "first-fit"
    retryable: bool = True
    config: SchedulerConfig = field(default_factory=SchedulerConfig)


CASES = [
    Case(
        "first-fit: GPU 0, slot 0",
        pod().mig("1g.5gb"),
        [node("n1").gpus(A100, 2)],
        "n1",
        (mig("n1-gpu0", "1g.5gb", 0, 1),),
    ),
    Case(
        "packing (the slicer's config) keeps the large placements of an empty GPU",
        pod().mig("3g.20gb"),
        [node("n1").gpus(A100, 2)],
        "n1",
        (mig("n1-gpu0", "3g.20gb", 4, 4),),
        placement="packing",
    ),
    Case(
        "3g.20gb cannot start at 0 or 4 beside 1g slices at 1 and 5; the second GPU takes it",
        pod().mig("3g.20gb"),
        [node("n1").gpus(A100, 2).slice(0, "1g.5gb", 1).slice(0, "1g.5gb", 5)],
        "n1",
        (mig("n1-gpu1", "3g.20gb", 0, 4),),
    ),
    Case(
        "3g.20gb with 4 slots free but no aligned start: insufficient, yet it could fit once freed",
        pod().mig("3g.20gb"),
        [node("n1").gpus(A100, 1).slice(0, "1g.5gb", 1).slice(0, "1g.5gb", 5)],
        None,
        message="0/1 nodes are available: 1 Insufficient nvidia.com/mig-3g.20gb.",
    ),
    Case(
        "two slices, one after another on a copy: the second lands beside the first",
        pod().mig("1g.5gb", "1g.5gb"),
        [node("n1").gpus(A100, 2)],
        "n1",
        (mig("n1-gpu0", "1g.5gb", 0, 1), mig("n1-gpu0", "1g.5gb", 1, 1)),
    ),
    Case(
        "largest first: 4g.20gb takes start 0 before the 1g.5gb, devices still in the pod's order",
        pod().mig("1g.5gb", "4g.20gb"),
        [node("n1").gpus(A100, 1)],
        "n1",
        (mig("n1-gpu0", "1g.5gb", 4, 1), mig("n1-gpu0", "4g.20gb", 0, 4)),
    ),
    Case(
        "slices that together exceed one GPU spill to the next",
        pod().mig("4g.20gb", "4g.20gb"),
        [node("n1").gpus(A100, 2)],
        "n1",
        (mig("n1-gpu0", "4g.20gb", 0, 4), mig("n1-gpu1", "4g.20gb", 0, 4)),
    ),
    Case(
        "whole GPU: the partitioned GPU is skipped for the empty one",
        pod().gpus(1),
        [node("n1").gpus(A100, 2).slice(0, "1g.5gb", 6)],
        "n1",
        (whole("n1-gpu1"),),
    ),
    Case(
        "whole GPU: an empty but EVICT GPU is not used",
        pod().gpus(1),
        [node("n1").gpus(A100, 2).whole(1).gpu_health(0, "EVICT")],
        None,
        message="0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    ),
    Case(
        "whole GPU: unhealthy in the snapshot is not used either",
        pod().gpus(1),
        [node("n1").gpus(A100, 2).unhealthy(0)],
        "n1",
        (whole("n1-gpu1"),),
    ),
    Case(
        "whole GPU is never placed over slices; no MIG slice is placed over a whole GPU",
        pod().mig("1g.5gb"),
        [node("n1").gpus(A100, 2).whole(0)],
        "n1",
        (mig("n1-gpu1", "1g.5gb", 0, 1),),
    ),
    Case(
        "whole GPUs and a slice from different containers",
        pod().gpus(1).mig("3g.20gb"),
        [node("n1").gpus(A100, 2)],
        "n1",
        (whole("n1-gpu0"), mig("n1-gpu1", "3g.20gb", 0, 4)),
    ),
    Case(
        "EVICT GPU never chosen for a slice: ERR and EVICT both skipped, WARN and TESTING are fine",
        pod().mig("1g.5gb"),
        [node("n1").gpus(A100, 3).gpu_health(0, "EVICT").gpu_health(1, "ERR").gpu_health(2, "WARN")],
        "n1",
        (mig("n1-gpu2", "1g.5gb", 0, 1),),
    ),
    Case(
        "every GPU EVICT: insufficient, retryable (health can recover)",
        pod().mig("1g.5gb"),
        [node("n1").gpus(A100, 1).gpu_health(0, "EVICT")],
        None,
        message="0/1 nodes are available: 1 Insufficient nvidia.com/mig-1g.5gb.",
    ),
    Case(
        "ERR-labelled node rejected for a GPU pod; the healthy node takes it",
        pod().gpus(1),
        [node("n1").gpus(A100, 1).label(HEALTH, "ERR"), node("n2").gpus(A100, 1)],
        "n2",
        (whole("n2-gpu0"),),
    ),
    Case(
        "EVICT-labelled node is fine for a CPU pod",
        pod().cpu("1"),
        [node("n1").gpus(A100, 1).label(HEALTH, "EVICT")],
        "n1",
    ),
    Case(
        "GPUPacking: a 1g.5gb goes to the half-used GPU's node, not the empty one",
        pod().mig("1g.5gb"),
        [node("n1").gpus(A100, 1), node("n2").gpus(A100, 1).slice(0, "3g.20gb", 0)],
        "n2",
        (mig("n2-gpu0", "1g.5gb", 4, 1),),
    ),
    Case(
        "GPUPacking: a whole GPU goes to the node left fullest",
        pod().gpus(1),
        [node("a").gpus(A100, 4), node("b").gpus(A100, 2).whole(0), node("c").gpus(A100, 3)],
        "b",
        (whole("b-gpu1"),),
    ),
    Case(
        "packing is only a score: LeastAllocated with a larger weight spreads instead",
        pod().gpus(1).cpu("1"),
        [node("a").gpus(A100, 2).whole(0).used(cpu="6"), node("b").gpus(A100, 2)],
        "b",
        (whole("b-gpu0"),),
        config=SchedulerConfig(
            scorers=(ScorerConfig(name="NodeResourcesLeastAllocated", weight=5), ScorerConfig(name="GPUPacking"))
        ),
    ),
    Case(
        "more whole GPUs than any node has: never",
        pod().gpus(3),
        [node("n1").gpus(A100, 2), node("n2").gpus(A100, 1)],
        None,
        message="0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
        retryable=False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gpu_scheduling(case: Case) -> None:
    result = run(case.pod, *case.nodes, placement=case.placement, config=case.config)
    if case.node is None:
        assert isinstance(result, Unschedulable), result
        assert result.message == case.message
        assert result.retryable is case.retryable
    else:
        assert isinstance(result, Bound), result
        assert (result.node, result.devices) == (case.node, case.devices)


def test_a_profile_no_gpu_model_offers_is_never_schedulable_and_names_the_offered_profiles() -> None:
    result = run(pod().mig("3g.20gb"), node("n1").gpus("H100-80GB", 1), node("n2"))
    assert isinstance(result, Unschedulable)
    assert not result.retryable
    assert result.message.startswith(
        "0/2 nodes are available: no GPU model in the cluster has MIG profile '3g.20gb', so it can never be placed; "
        "profiles offered: H100-80GB: 1g.10gb, 1g.10gb+me, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb"
    )
    assert result.message.endswith(".")
    assert set(result.reasons) == {"n1", "n2"}


def test_a_cluster_without_gpus_says_so_for_a_mig_pod() -> None:
    result = run(pod().mig("1g.5gb"), node("n1"))
    assert isinstance(result, Unschedulable) and not result.retryable
    assert "the cluster has no GPUs with a profile table" in result.message


def test_a_profile_offered_elsewhere_in_the_cluster_is_retryable_when_that_node_is_tainted() -> None:
    result = run(pod().mig("3g.20gb"), node("n1").gpus("H100-80GB", 1), node("n2").gpus(A100, 1).taint("gpu", "bad"))
    assert isinstance(result, Unschedulable) and result.retryable
    assert result.message == (
        "0/2 nodes are available: 1 Insufficient nvidia.com/mig-3g.20gb, 1 node(s) had untolerated taint {gpu: bad}."
    )
