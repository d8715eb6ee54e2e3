"""The cycle: heads, StrictFIFO vs BestEffortFIFO, stop policies, missing queues, namespaceSelector,
priorities, ordering of entries, partial admission, one preemption per target, reservations."""

from __future__ import annotations

import pytest

from flotilla.queue.types import QueueConfig

from .builders import GPU, WL, Obj, cq, lq, snapshot, wl
from .scenarios import Scenario, run_cycles

MAIN = "couldn't assign flavors to pod set main: "
NO_LONGER_FITS = "Workload no longer fits after processing another workload"


def running(key: str, queue: str, priority: int = 0, at: float = 0.0, **requests: int | str) -> WL:
    return wl(key).queue(queue).priority(priority).pods(1, **requests).admitted_in(queue, at=at)


SCENARIOS = [
    Scenario(
        "one head per ClusterQueue per cycle",
        [
            cq("a").quota("default", "cpu", 10),
            wl("ns/w1").queue("a").pods(1, cpu=1),
            wl("ns/w2").queue("a").created(1).pods(1, cpu=1),
        ],
        admitted={"ns/w1": "default"},
    ),
    Scenario(
        "higher priority is the head even when queued later",
        [
            cq("a").quota("default", "cpu", 10),
            wl("ns/low").queue("a").pods(1, cpu=1),
            wl("ns/high").queue("a").priority(10).created(5).pods(1, cpu=1),
        ],
        admitted={"ns/high": "default"},
    ),
    Scenario(
        "workloads in backoff, parked or inactive are not heads",
        [
            cq("a").quota("default", "cpu", 10),
            wl("ns/backoff").queue("a").eligible_at(500).pods(1, cpu=1),
            wl("ns/parked").queue("a").created(1).parked().pods(1, cpu=1),
            wl("ns/off").queue("a").created(2).inactive().pods(1, cpu=1),
            wl("ns/next").queue("a").created(3).pods(1, cpu=1),
        ],
        admitted={"ns/next": "default"},
    ),
    Scenario(
        "StrictFIFO head that does not fit is requeued at once",
        [cq("a").quota("default", "cpu", 4).strategy("StrictFIFO"), wl("ns/big").queue("a").pods(1, cpu=5)],
        pending={
            "ns/big": MAIN
            + "insufficient quota for cpu in flavor default, previously considered podsets requests (0) + "
            "current podset request (5) > maximum capacity (4)"
        },
        requeue={"ns/big": "immediate"},
    ),
    Scenario(
        "ClusterQueue with stopPolicy Hold admits nothing and keeps what runs",
        [
            cq("a").quota("default", "cpu", 4).stop("Hold"),
            running("ns/run", "a", cpu=1),
            wl("ns/w").queue("a").pods(1, cpu=1),
        ],
        pending={"ns/w": "ClusterQueue a is inactive"},
        requeue={"ns/w": "never"},
    ),
    Scenario(
        "ClusterQueue with stopPolicy HoldAndDrain evicts what runs",
        [
            cq("a").quota("default", "cpu", 4).stop("HoldAndDrain"),
            running("ns/run", "a", cpu=1),
            wl("ns/w").queue("a").pods(1, cpu=1),
        ],
        pending={"ns/w": "ClusterQueue a is inactive"},
        evicted={"ns/run": "ClusterQueueStopped"},
    ),
    Scenario(
        "LocalQueue with stopPolicy Hold",
        [
            cq("a").quota("default", "cpu", 4),
            lq("ns/held", "a").stop("Hold"),
            wl("ns/w").queue("held").pods(1, cpu=1),
            wl("ns/other").queue("a").created(1).pods(1, cpu=1),
        ],
        admitted={"ns/other": "default"},
        pending={"ns/w": "LocalQueue held is inactive"},
        requeue={"ns/w": "never"},
    ),
    Scenario(
        "LocalQueue with stopPolicy HoldAndDrain evicts its workloads",
        [
            cq("a").quota("default", "cpu", 4),
            lq("ns/held", "a").stop("HoldAndDrain"),
            wl("ns/run").queue("held").pods(1, cpu=1).admitted_in("a"),
            running("ns/other", "a", cpu=1),
        ],
        evicted={"ns/run": "LocalQueueStopped"},
    ),
    Scenario(
        "unknown LocalQueue",
        [cq("a").quota("default", "cpu", 4), wl("ns/w").queue("nope").pods(1, cpu=1)],
        pending={"ns/w": "LocalQueue nope doesn't exist"},
        requeue={"ns/w": "never"},
    ),
    Scenario(
        "LocalQueue pointing to a missing ClusterQueue",
        [cq("a").quota("default", "cpu", 4), lq("ns/lq", "gone"), wl("ns/w").queue("lq").pods(1, cpu=1)],
        pending={"ns/w": "ClusterQueue gone doesn't exist"},
    ),
    Scenario(
        "inactive ClusterQueue",
        [cq("a").quota("default", "cpu", 4).inactive("flavor missing"), wl("ns/w").queue("a").pods(1, cpu=1)],
        pending={"ns/w": "ClusterQueue a is inactive"},
    ),
    Scenario(
        "stopped ClusterQueue still lends its quota to its cohort",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).stop("Hold"),
            cq("b").cohort("c").quota("default", "cpu", 0),
            wl("ns/w").queue("b").pods(1, cpu=4),
        ],
        admitted={"ns/w": "default"},
    ),
    Scenario(
        "nil namespaceSelector matches no namespace",
        [
            cq("a").quota("default", "cpu", 4).selector(None).strategy("StrictFIFO"),
            wl("ns/w").queue("a").pods(1, cpu=1),
        ],
        pending={"ns/w": "Workload namespace doesn't match ClusterQueue selector"},
        requeue={"ns/w": "on-capacity"},
    ),
    Scenario(
        "namespaceSelector matching the namespace's labels",
        [cq("a").quota("default", "cpu", 4).selector("team=ml"), wl("ml/w").queue("a").pods(1, cpu=1)],
        namespaces={"ml": {"team": "ml"}},
        admitted={"ml/w": "default"},
    ),
    Scenario(
        "namespaceSelector not matching",
        [cq("a").quota("default", "cpu", 4).selector("team=ml"), wl("web/w").queue("a").pods(1, cpu=1)],
        namespaces={"web": {"team": "web"}},
        pending={"web/w": "Workload namespace doesn't match ClusterQueue selector"},
    ),
    Scenario(
        "non-borrowing entries go before borrowing ones, whatever their priority",
        [
            cq("a").cohort("c").quota("default", "cpu", 4),
            cq("b").cohort("c").quota("default", "cpu", 4),
            wl("ns/wa").queue("a").priority(100).pods(1, cpu=6),
            wl("ns/wb").queue("b").pods(1, cpu=4),
        ],
        admitted={"ns/wb": "default"},
        pending={"ns/wa": NO_LONGER_FITS},
        requeue={"ns/wa": "immediate"},
    ),
    Scenario(
        "admissions earlier in the cycle count for later entries",
        [
            cq("a").cohort("c").quota("default", "cpu", 0),
            cq("b").cohort("c").quota("default", "cpu", 0),
            cq("l").cohort("c").quota("default", "cpu", 8),
            wl("ns/wa").queue("a").priority(10).pods(1, cpu=6),
            wl("ns/wb").queue("b").pods(1, cpu=4),
        ],
        admitted={"ns/wa": "default"},
        pending={"ns/wb": NO_LONGER_FITS},
    ),
    Scenario(
        "two preemptors with the same victim: the second waits",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("b").cohort("c").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("x").cohort("c").quota("default", "cpu", 0),
            running("ns/x1", "x", cpu=8),
            wl("ns/wa").queue("a").created(1).pods(1, cpu=4),
            wl("ns/wb").queue("b").created(2).pods(1, cpu=4),
        ],
        preempted={"ns/x1": "InCohortReclamation"},
        pending={
            "ns/wa": MAIN
            + "insufficient unused quota for cpu in flavor default, 4 more needed. Pending the preemption "
            "of 1 workload(s)",
            "ns/wb": "Workload has overlapping preemption targets with another workload",
        },
        requeue={"ns/wa": "immediate", "ns/wb": "immediate"},
    ),
    Scenario(
        "a preemptor without candidates reserves quota it cannot always reclaim",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="LowerPriority"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            running("ns/b1", "b", 10, cpu=6),
            wl("ns/wa").queue("a").pods(1, cpu=4),
            wl("ns/wb").queue("b").created(1).pods(1, cpu=1),
        ],
        pending={
            "ns/wa": MAIN + "insufficient unused quota for cpu in flavor default, 2 more needed",
            "ns/wb": NO_LONGER_FITS,
        },
        requeue={"ns/wa": "on-capacity"},
    ),
    Scenario(
        "a reclaiming preemptor's victims are gone for later entries",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).preemption(reclaim="Any"),
            cq("b").cohort("c").quota("default", "cpu", 4),
            running("ns/b1", "b", 10, cpu=6),
            wl("ns/wa").queue("a").pods(1, cpu=4),
            wl("ns/wb").queue("b").created(1).pods(1, cpu=1),
        ],
        admitted={"ns/wb": "default"},
        preempted={"ns/b1": "InCohortReclamation"},
        pending={
            "ns/wa": MAIN
            + "insufficient unused quota for cpu in flavor default, 2 more needed. Pending the preemption "
            "of 1 workload(s)"
        },
    ),
    Scenario(
        "partial admission: the largest count above minCount that fits",
        [
            cq("a").quota("default", "cpu", 10),
            running("ns/run", "a", cpu=4),
            wl("ns/w").queue("a").pod_set("main", 10, min_count=4, cpu=1),
        ],
        admitted={"ns/w": "default"},
        counts={"ns/w": (6,)},
    ),
    Scenario(
        "partial admission: counts of several pod sets shrink together",
        [
            cq("a").quota("default", "cpu", 7),
            wl("ns/w").queue("a").pod_set("driver", 4, min_count=2, cpu=1).pod_set("workers", 6, min_count=2, cpu=1),
        ],
        admitted={"ns/w": {"driver:cpu": "default", "workers:cpu": "default"}},
        counts={"ns/w": (3, 4)},
    ),
    Scenario(
        "partial admission: minCount does not fit either",
        [
            cq("a").quota("default", "cpu", 10),
            running("ns/run", "a", cpu=8),
            wl("ns/w").queue("a").pod_set("main", 10, min_count=4, cpu=1),
        ],
        pending={"ns/w": MAIN + "insufficient unused quota for cpu in flavor default, 8 more needed"},
    ),
    Scenario(
        "partial admission turned off",
        [
            cq("a").quota("default", "cpu", 10),
            running("ns/run", "a", cpu=4),
            wl("ns/w").queue("a").pod_set("main", 10, min_count=4, cpu=1),
        ],
        config=QueueConfig(partialAdmission=False),
        pending={"ns/w": MAIN + "insufficient unused quota for cpu in flavor default, 4 more needed"},
    ),
    Scenario(
        "admitted workloads of every queue count, in every flavor",
        [
            cq("a").quota("on-demand", GPU, 2).quota("spot", GPU, 2),
            wl("ns/x").queue("a").pods(2, gpu=1).admitted_in("a", flavor="on-demand"),
            wl("ns/y").queue("a").pods(1, gpu=1).admitted_in("a", flavor="spot"),
            wl("ns/w").queue("a").pods(1, gpu=1),
        ],
        admitted={"ns/w": "spot"},
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_cycle(scenario: Scenario) -> None:
    scenario.check()


def fifo_queue(strategy: str) -> list[Obj]:
    return [
        cq("a").quota("default", "cpu", 4).strategy(strategy),
        running("ns/run", "a", cpu=3),
        wl("ns/first").queue("a").created(1).pods(1, cpu=2),
        wl("ns/second").queue("a").created(2).pods(1, cpu=1),
    ]


def test_strict_fifo_head_blocks_the_queue() -> None:
    results = run_cycles(snapshot(*fifo_queue("StrictFIFO")), cycles=3)
    for result in results:
        assert result.admitted == ()
        assert [(d.workload, d.requeue) for d in result.pending] == [("ns/first", "immediate")]


def test_best_effort_fifo_tries_the_next_workload() -> None:
    results = run_cycles(snapshot(*fifo_queue("BestEffortFIFO")), cycles=3)
    assert [(d.workload, d.requeue) for d in results[0].pending] == [("ns/first", "on-capacity")]
    assert [d.workload for d in results[1].admitted] == ["ns/second"]
    assert results[2] == type(results[2])()  # nothing left to try until capacity frees up


def test_preemptor_is_admitted_once_its_victims_are_gone() -> None:
    snap = snapshot(
        cq("a").quota("default", "cpu", 4).preemption(within="LowerPriority"),
        running("ns/low", "a", 0, cpu=4),
        wl("ns/high").queue("a").priority(10).pods(1, cpu=4),
    )
    first, second = run_cycles(snap, cycles=2)
    assert [d.victim for d in first.preempted] == ["ns/low"] and first.admitted == ()
    assert [d.workload for d in second.admitted] == ["ns/high"]
    assert [(d.workload, d.message) for d in second.pending] == []
