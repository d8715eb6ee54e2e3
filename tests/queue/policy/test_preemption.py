"""Classical preemption: withinClusterQueue, reclaimWithinCohort, borrowWithinCohort, hierarchical
reclaim, candidate order and minimal victim sets, Kueue's attempt order and messages."""

from __future__ import annotations

import pytest

from .builders import CQ, GPU, WL, cohort, cq, wl
from .scenarios import Scenario

MAIN = "couldn't assign flavors to pod set main: "
PENDING_ONE = ". Pending the preemption of 1 workload(s)"


def gpus(name: str = "a", nominal: int = 8) -> CQ:
    return cq(name).quota("gpu-flavor", GPU, nominal)


def running(key: str, queue: str, priority: int = 0, at: float = 0.0, **requests: int | str) -> WL:
    flavor = "gpu-flavor" if "gpu" in requests else "default"
    return wl(key).queue(queue).priority(priority).pods(1, **requests).admitted_in(queue, flavor=flavor, at=at)


def gpu_short(n: int) -> str:
    return MAIN + f"insufficient unused quota for nvidia.com/gpu in flavor gpu-flavor, {n} more needed"


def cpu_short(n: int) -> str:
    return MAIN + f"insufficient unused quota for cpu in flavor default, {n} more needed"


SCENARIOS = [
    Scenario(
        "withinClusterQueue LowerPriority preempts a lower priority workload",
        [
            gpus().preemption(within="LowerPriority"),
            running("ns/low", "a", 0, gpu=8),
            wl("ns/high").queue("a").priority(10).pods(1, gpu=4),
        ],
        preempted={"ns/low": "InClusterQueue"},
        pending={"ns/high": gpu_short(4) + PENDING_ONE},
        requeue={"ns/high": "immediate"},
    ),
    Scenario(
        "withinClusterQueue LowerPriority spares equal priority",
        [
            gpus().preemption(within="LowerPriority"),
            running("ns/old", "a", 5, gpu=8),
            wl("ns/new").queue("a").priority(5).pods(1, gpu=4),
        ],
        pending={"ns/new": gpu_short(4)},
    ),
    Scenario(
        "withinClusterQueue Never",
        [gpus(), running("ns/low", "a", 0, gpu=8), wl("ns/high").queue("a").priority(10).pods(1, gpu=4)],
        pending={"ns/high": gpu_short(4)},
    ),
    Scenario(
        "LowerOrNewerEqualPriority preempts an equal-priority workload queued later",
        [
            gpus().preemption(within="LowerOrNewerEqualPriority"),
            running("ns/newer", "a", 5, gpu=8).created(50),
            wl("ns/w").queue("a").priority(5).created(10).pods(1, gpu=4),
        ],
        preempted={"ns/newer": "InClusterQueue"},
        pending={"ns/w": gpu_short(4) + PENDING_ONE},
    ),
    Scenario(
        "LowerOrNewerEqualPriority spares an equal-priority workload queued earlier",
        [
            gpus().preemption(within="LowerOrNewerEqualPriority"),
            running("ns/older", "a", 5, gpu=8).created(5),
            wl("ns/w").queue("a").priority(5).created(10).pods(1, gpu=4),
        ],
        pending={"ns/w": gpu_short(4)},
    ),
    Scenario(
        "minimal set: one 4-GPU job instead of two 1-GPU jobs",
        [
            gpus().preemption(within="LowerPriority"),
            running("ns/big", "a", 1, at=10, gpu=4),
            running("ns/small1", "a", 0, at=20, gpu=1),
            running("ns/small2", "a", 0, at=30, gpu=1),
            running("ns/keep", "a", 2, at=5, gpu=2),
            wl("ns/w").queue("a").priority(5).pods(1, gpu=4),
        ],
        preempted={"ns/big": "InClusterQueue"},
        pending={"ns/w": gpu_short(4) + PENDING_ONE},
    ),
    Scenario(
        "lowest priority and most recently admitted go first",
        [
            gpus().preemption(within="LowerPriority"),
            running("ns/big", "a", 1, at=10, gpu=4),
            running("ns/small1", "a", 0, at=20, gpu=1),
            running("ns/small2", "a", 0, at=30, gpu=1),
            running("ns/keep", "a", 2, at=5, gpu=2),
            wl("ns/w").queue("a").priority(5).pods(1, gpu=6),
        ],
        preempted={"ns/small2": "InClusterQueue", "ns/small1": "InClusterQueue", "ns/big": "InClusterQueue"},
        pending={"ns/w": gpu_short(6) + ". Pending the preemption of 3 workload(s)"},
    ),
    Scenario(
        "reclaimWithinCohort LowerPriority cannot reclaim from higher priority",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="LowerPriority"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            running("ns/b1", "b", 5, at=10, cpu=4),
            running("ns/b2", "b", 5, at=20, cpu=4),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        pending={"ns/w": cpu_short(4)},
    ),
    Scenario(
        "reclaimWithinCohort Any reclaims lent quota regardless of priority",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            running("ns/b1", "b", 5, at=10, cpu=4),
            running("ns/b2", "b", 5, at=20, cpu=4),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        preempted={"ns/b2": "InCohortReclamation"},
        pending={"ns/w": cpu_short(4) + PENDING_ONE},
    ),
    Scenario(
        "reclaimWithinCohort LowerPriority reclaims from a lower priority borrower",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="LowerPriority"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            running("ns/b1", "b", 0, at=10, cpu=2),
            running("ns/b2", "b", 0, at=20, cpu=2),
            running("ns/b3", "b", 0, at=30, cpu=2),
            running("ns/b4", "b", 0, at=40, cpu=2),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        preempted={"ns/b4": "InCohortReclamation", "ns/b3": "InCohortReclamation"},
        pending={"ns/w": cpu_short(4) + ". Pending the preemption of 2 workload(s)"},
    ),
    Scenario(
        "queues within nominal are not reclaimed from",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            cq("l").cohort("c").quota("default", "cpu", 4),
            running("ns/b1", "b", 0, cpu=4),
            running("ns/l1", "l", 0, cpu=4),
            running("ns/a1", "a", 0, cpu=2),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        pending={"ns/w": cpu_short(2)},
    ),
    Scenario(
        "borrowWithinCohort: reclaim below maxPriorityThreshold while borrowing",
        [
            cq("a")
            .cohort("c")
            .quota("default", "cpu", 4)
            .preemption(reclaim="LowerPriority", borrow="LowerPriority", threshold=5),
            cq("b").cohort("c").quota("default", "cpu", 0),
            cq("l").cohort("c").quota("default", "cpu", 8),
            running("ns/a1", "a", 0, cpu=4),
            running("ns/b1", "b", 3, at=10, cpu=4),
            running("ns/b2", "b", 7, at=20, cpu=4),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        preempted={"ns/b1": "InCohortReclaimWhileBorrowing"},
        pending={"ns/w": cpu_short(4) + PENDING_ONE},
    ),
    Scenario(
        "borrowWithinCohort: nothing at or below the threshold",
        [
            cq("a")
            .cohort("c")
            .quota("default", "cpu", 4)
            .preemption(reclaim="LowerPriority", borrow="LowerPriority", threshold=2),
            cq("b").cohort("c").quota("default", "cpu", 0),
            cq("l").cohort("c").quota("default", "cpu", 8),
            running("ns/a1", "a", 0, cpu=4),
            running("ns/b1", "b", 3, at=10, cpu=4),
            running("ns/b2", "b", 7, at=20, cpu=4),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        pending={"ns/w": cpu_short(4)},
    ),
    Scenario(
        "no borrowWithinCohort: a borrowing preemptor cannot reclaim",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="LowerPriority"),
            cq("b").cohort("c").quota("default", "cpu", 0),
            cq("l").cohort("c").quota("default", "cpu", 8),
            running("ns/a1", "a", 0, cpu=4),
            running("ns/b1", "b", 3, at=10, cpu=4),
            running("ns/b2", "b", 7, at=20, cpu=4),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        pending={"ns/w": cpu_short(4)},
    ),
    Scenario(
        "without borrowing first: reclaim and preempt in the own queue together",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(within="LowerPriority", reclaim="Any"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            running("ns/a1", "a", 0, cpu=2),
            running("ns/b1", "b", 0, at=10, cpu=2),
            running("ns/b2", "b", 0, at=20, cpu=4),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        preempted={"ns/b2": "InCohortReclamation", "ns/a1": "InClusterQueue"},
        pending={"ns/w": cpu_short(4) + ". Pending the preemption of 2 workload(s)"},
    ),
    Scenario(
        "hierarchical reclaim across sibling cohorts",
        [
            cohort("org"),
            cohort("t1").parent("org"),
            cohort("t2").parent("org"),
            cq("a").cohort("t1").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("b").cohort("t2").quota("default", "cpu", 4),
            running("ns/b1", "b", 10, cpu=6),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        preempted={"ns/b1": "InCohortReclamation"},
        pending={"ns/w": cpu_short(2) + PENDING_ONE},
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_preemption(scenario: Scenario) -> None:
    scenario.check()


def test_preemption_messages_name_preemptor_and_paths() -> None:
    result = Scenario(
        "messages",
        [
            cohort("org"),
            cohort("t1").parent("org"),
            cohort("t2").parent("org"),
            cq("a").cohort("t1").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("b").cohort("t2").quota("default", "cpu", 4),
            running("ns/b1", "b", 10, cpu=6),
            wl("ns/w").queue("a").uid("7f3c").pods(1, cpu=4),
        ],
        preempted={"ns/b1": "InCohortReclamation"},
        pending={"ns/w": cpu_short(2) + PENDING_ONE},
    ).check()
    (decision,) = result.preempted
    assert decision.preemptor == "ns/w"
    assert decision.message == (
        "Preempted to accommodate a workload (UID: 7f3c, JobUID: UNKNOWN) due to reclamation within the cohort; "
        "preemptor path: /org/t1/a; preemptee path: /org/t2/b"
    )


def test_in_cluster_queue_message_without_cohort() -> None:
    result = SCENARIOS[0].check()
    assert result.preempted[0].message == (
        "Preempted to accommodate a workload (UID: uid-high, JobUID: UNKNOWN) due to prioritization in the "
        "ClusterQueue; preemptor path: /a; preemptee path: /a"
    )


def test_reclaim_while_borrowing_message() -> None:
    result = SCENARIOS[11].check()
    assert "due to reclamation within the cohort while borrowing; preemptor path: /c/a; preemptee path: /c/b" in (
        result.preempted[0].message
    )
