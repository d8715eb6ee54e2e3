"""Fair sharing: dominant resource shares, fair order of entries, fair sharing preemption strategies,
admission fair sharing order and usage decay."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import pytest

from flotilla.queue.fairsharing import decay_usage, dominant_resource_share, entry_penalty
from flotilla.queue.quota import QuotaTree
from flotilla.queue.types import AdmissionFairSharingConfig, FairSharingConfig, QueueConfig

from .builders import GPU, WL, Obj, cohort, cq, lq, snapshot, wl
from .scenarios import Scenario

FAIR = QueueConfig(fairSharing=FairSharingConfig(enable=True))
MAIN = "couldn't assign flavors to pod set main: "
PREEMPTING_ONE = ". Pending the preemption of 1 workload(s)"


def running(key: str, queue: str, priority: int = 0, at: float = 0.0, **requests: int | str) -> WL:
    return wl(key).queue(queue).priority(priority).pods(1, **requests).admitted_in(queue, at=at)


# -- dominant resource share ------------------------------------------------------------------
@dataclass
class ShareCase:
    name: str
    objects: list[Obj]
    node: str
    share: int  # status.fairSharing.weightedShare
    precise: float
    resource: str = ""

    def __str__(self) -> str:
        return self.name


SHARES = [
    ShareCase(
        "borrowed over the cohort's lendable amount, per mille",
        [
            cq("a").cohort("c").quota("default", "cpu", 10),
            cq("b").cohort("c").quota("default", "cpu", 10),
            running("ns/x", "a", cpu=15),
        ],
        "a",
        250,
        250.0,
        "cpu",
    ),
    ShareCase(
        "divided by the weight",
        [
            cq("a").cohort("c").quota("default", "cpu", 10),
            cq("b").cohort("c").quota("default", "cpu", 10).weight(2),
            running("ns/x", "b", cpu=14),
        ],
        "b",
        100,
        100.0,
        "cpu",
    ),
    ShareCase(
        "the dominant resource is the one with the highest ratio",
        [
            cq("a").cohort("c").quota("default", "cpu", 10).quota("default", "memory", "20Gi"),
            cq("b").cohort("c").quota("default", "cpu", 10).quota("default", "memory", "20Gi"),
            running("ns/x", "a", cpu=11, memory="28Gi"),
        ],
        "a",
        200,
        200.0,
        "memory",
    ),
    ShareCase(
        "flavors of one resource add up",
        [
            cq("a").cohort("c").quota("f1", GPU, 2).quota("f2", GPU, 2),
            cq("b").cohort("c").quota("f1", GPU, 2).quota("f2", GPU, 2),
            wl("ns/x").queue("a").pods(3, gpu=1).admitted_in("a", flavor="f1"),
            wl("ns/y").queue("a").pods(3, gpu=1).admitted_in("a", flavor="f2"),
        ],
        "a",
        250,
        250.0,
        GPU,
    ),
    ShareCase(
        "rounded up",
        [
            cq("a").cohort("c").quota("default", "cpu", 1),
            cq("b").cohort("c").quota("default", "cpu", 2),
            running("ns/x", "a", cpu=2),
        ],
        "a",
        334,
        1000 / 3,
        "cpu",
    ),
    ShareCase(
        "not borrowing: zero",
        [
            cq("a").cohort("c").quota("default", "cpu", 10),
            cq("b").cohort("c").quota("default", "cpu", 10),
            running("ns/x", "a", cpu=10),
        ],
        "a",
        0,
        0.0,
    ),
    ShareCase("no cohort: zero", [cq("a").quota("default", "cpu", 10), running("ns/x", "a", cpu=10)], "a", 0, 0.0),
    ShareCase(
        "weight zero while borrowing: infinite",
        [
            cq("a").cohort("c").quota("default", "cpu", 10).weight(0),
            cq("b").cohort("c").quota("default", "cpu", 10),
            running("ns/x", "a", cpu=11),
        ],
        "a",
        sys.maxsize,
        math.inf,
        "cpu",
    ),
]


@pytest.mark.parametrize("case", SHARES, ids=str)
def test_dominant_resource_share(case: ShareCase) -> None:
    tree = QuotaTree.from_snapshot(snapshot(*case.objects))
    drs = dominant_resource_share(tree.cqs[case.node])
    assert (drs.weighted_share, drs.resource) == (case.share, case.resource)
    assert drs.precise == pytest.approx(case.precise)


def test_cohort_share_counts_its_subtree() -> None:
    tree = QuotaTree.from_snapshot(
        snapshot(
            cohort("org"),
            cohort("t1").parent("org"),
            cohort("t2").parent("org").weight(2),
            cq("a").cohort("t1").quota("default", "cpu", 10),
            cq("b").cohort("t2").quota("default", "cpu", 10),
            running("ns/x", "b", cpu=16),
        )
    )
    assert dominant_resource_share(tree.cohorts["t2"]).weighted_share == 150  # 6 of 20, weight 2


# -- scenarios --------------------------------------------------------------------------------
def lender_cohort() -> list[Obj]:
    return [
        cq("a").cohort("c").quota("default", "cpu", 10),
        cq("b").cohort("c").quota("default", "cpu", 10),
        cq("l").cohort("c").quota("default", "cpu", 10),
        running("ns/a0", "a", cpu=14),
        running("ns/b0", "b", cpu=11),
        wl("ns/wa").queue("a").priority(100).pods(1, cpu=4),
        wl("ns/wb").queue("b").priority(0).pods(1, cpu=4),
    ]


def fair_victims(strategies: tuple[str, ...], preempted: bool) -> Scenario:
    """One big borrowed workload: LessThanOrEqualToFinalShare alone refuses it (taking it would
    leave its queue below the preemptor); LessThanInitialShare, first or second, takes it."""
    return Scenario(
        f"fair sharing preemption {'+'.join(strategies)}",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            cq("l").cohort("c").quota("default", "cpu", 4),
            running("ns/a1", "a", cpu=2),
            running("ns/b1", "b", cpu=8),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        config=QueueConfig(fairSharing=FairSharingConfig(enable=True, preemptionStrategies=strategies)),
        preempted={"ns/b1": "InCohortFairSharing"} if preempted else {},
        pending={"ns/w": SHORT + PREEMPTING_ONE if preempted else SHORT},
    )


SMALL_VICTIMS: list[Obj] = [
    cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="Any"),
    cq("b").cohort("c").quota("default", "cpu", 4),
    cq("l").cohort("c").quota("default", "cpu", 4),
    running("ns/a1", "a", cpu=2),
    *(running(f"ns/b{i}", "b", at=float(i), cpu=2) for i in range(1, 5)),
    wl("ns/w").queue("a").pods(1, cpu=4),
]
SHORT = MAIN + "insufficient unused quota for cpu in flavor default, 2 more needed"

SCENARIOS = [
    Scenario(
        "classical order: priority among borrowers",
        lender_cohort(),
        admitted={"ns/wa": "default"},
        pending={"ns/wb": "Workload no longer fits after processing another workload"},
        requeue={"ns/wb": "immediate"},
    ),
    Scenario(
        "fair order: the lower share goes first",
        lender_cohort(),
        config=FAIR,
        admitted={"ns/wb": "default"},
        pending={"ns/wa": "Workload no longer fits after processing another workload"},
    ),
    Scenario(
        "fair order: not borrowing in the requested flavors beats a lower share",
        [
            cq("a").cohort("c").quota("default", "cpu", 10).quota("default", "memory", "10Gi"),
            cq("b").cohort("c").quota("default", "cpu", 10).quota("default", "memory", "10Gi"),
            cq("l").cohort("c").quota("default", "cpu", 0).quota("default", "memory", "10Gi"),
            running("ns/a0", "a", cpu=10),
            running("ns/b0", "b", cpu=2, memory="20Gi"),  # b's share is 333 (memory), a's would be 50
            wl("ns/wa").queue("a").pods(1, cpu=1),
            wl("ns/wb").queue("b").pods(1, cpu=8),
        ],
        config=FAIR,
        admitted={"ns/wb": "default"},
        pending={"ns/wa": "Workload no longer fits after processing another workload"},
    ),
    Scenario(
        "fair order: hierarchical tournament compares the cohorts' weighted shares",
        [
            cohort("org"),
            cohort("t1").parent("org"),
            cohort("t2").parent("org").weight(0.5),
            cq("l").cohort("org").quota("default", "cpu", 10),
            cq("a").cohort("t1").quota("default", "cpu", 5),
            cq("b").cohort("t2").quota("default", "cpu", 5),
            running("ns/a0", "a", cpu=8),
            running("ns/b0", "b", cpu=6),
            wl("ns/wa").queue("a").created(5).pods(1, cpu=4),  # t1 would borrow 7 of 20: 350
            wl("ns/wb").queue("b").created(1).pods(1, cpu=4),  # t2 would borrow 5 of 20, weight 0.5: 500
        ],
        config=FAIR,
        admitted={"ns/wa": "default"},
        pending={"ns/wb": "Workload no longer fits after processing another workload"},
    ),
    Scenario(
        "fair preemption: LessThanOrEqualToFinalShare takes a small borrowed workload",
        SMALL_VICTIMS,
        config=FAIR,
        preempted={"ns/b4": "InCohortFairSharing"},
        pending={"ns/w": SHORT + PREEMPTING_ONE},
    ),
    fair_victims(("LessThanOrEqualToFinalShare",), preempted=False),
    fair_victims(("LessThanOrEqualToFinalShare", "LessThanInitialShare"), preempted=True),
    fair_victims(("LessThanInitialShare",), preempted=True),
    Scenario(
        "fair preemption within nominal reclaims unconditionally",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            running("ns/b1", "b", cpu=8),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        config=FAIR,
        preempted={"ns/b1": "InCohortReclamation"},
        pending={"ns/w": MAIN + "insufficient unused quota for cpu in flavor default, 4 more needed" + PREEMPTING_ONE},
    ),
    Scenario(
        "fair preemption in the own queue without cohort",
        [
            cq("a").quota("default", "cpu", 4).preemption(within="LowerPriority"),
            running("ns/low", "a", 0, cpu=4),
            wl("ns/w").queue("a").priority(5).pods(1, cpu=4),
        ],
        config=FAIR,
        preempted={"ns/low": "InClusterQueue"},
        pending={"ns/w": MAIN + "insufficient unused quota for cpu in flavor default, 4 more needed" + PREEMPTING_ONE},
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_fair_sharing(scenario: Scenario) -> None:
    scenario.check()


# -- admission fair sharing -------------------------------------------------------------------
AFS = QueueConfig(admissionFairSharing=AdmissionFairSharingConfig())


def afs_queue() -> list[Obj]:
    return [
        cq("a").quota("default", "cpu", 10).admission_fair_sharing(),
        lq("ns/lq-1", "a").usage(cpu=10),
        lq("ns/lq-2", "a").usage(cpu=30).weight(4),
        wl("ns/busy").queue("lq-1").priority(100).pods(1, cpu=1),
        wl("ns/quiet").queue("lq-2").created(1).pods(1, cpu=1),
    ]


AFS_SCENARIOS = [
    Scenario(
        "admission fair sharing: lowest usage over weight is the head",
        afs_queue(),
        config=AFS,
        admitted={"ns/quiet": "default"},
    ),
    Scenario("without admission fair sharing: priority decides", afs_queue(), admitted={"ns/busy": "default"}),
    Scenario(
        "admission fair sharing: preempt from the LocalQueue with more usage first",
        [
            cq("a").quota("default", "cpu", 2).admission_fair_sharing().preemption(within="LowerPriority"),
            lq("ns/lq-1", "a").usage(cpu=10),
            lq("ns/lq-2", "a").usage(cpu=50),
            wl("ns/x1").queue("lq-1").pods(1, cpu=1).admitted_in("a", at=10),
            wl("ns/x2").queue("lq-2").pods(1, cpu=1).admitted_in("a", at=5),
            wl("ns/w").queue("lq-1").priority(10).pods(1, cpu=1),
        ],
        config=AFS,
        preempted={"ns/x2": "InClusterQueue"},
        pending={"ns/w": MAIN + "insufficient unused quota for cpu in flavor default, 1 more needed" + PREEMPTING_ONE},
    ),
]
AFS_SCENARIOS.append(
    Scenario(
        "without admission fair sharing: preempt the most recently admitted",
        AFS_SCENARIOS[2].objects,
        preempted={"ns/x1": "InClusterQueue"},
        pending=dict(AFS_SCENARIOS[2].pending),
    )
)


@pytest.mark.parametrize("scenario", AFS_SCENARIOS, ids=str)
def test_admission_fair_sharing(scenario: Scenario) -> None:
    scenario.check()


@pytest.mark.parametrize(
    ("previous", "sample", "elapsed", "expected"),
    [
        ({"cpu": 100.0}, {"cpu": 0.0}, 600.0, {"cpu": 50.0}),
        ({"cpu": 100.0}, {"cpu": 0.0}, 1200.0, {"cpu": 25.0}),
        ({"cpu": 100.0}, {"cpu": 40.0}, 0.0, {"cpu": 100.0}),
        ({}, {"memory": 8.0}, 600.0, {"memory": 4.0}),
    ],
)
def test_decay_usage(
    previous: dict[str, float], sample: dict[str, float], elapsed: float, expected: dict[str, float]
) -> None:
    assert decay_usage(previous, sample, elapsed, half_life=600.0) == pytest.approx(expected)


def test_entry_penalty_uses_sampling_interval_over_half_life() -> None:
    config = AdmissionFairSharingConfig(usageHalfLifeTime=600.0, usageSamplingInterval=600.0)
    assert entry_penalty({"cpu": 4000}, config) == {"cpu": 2000.0}
