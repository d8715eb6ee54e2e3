"""Flavor assignment scenarios: fit, no fit, flavor order, fungibility, borrowing and lending
limits, hierarchical cohorts, node labels, taints, multiple pod sets; Kueue's messages."""

from __future__ import annotations

import pytest

from flotilla.api.base import Toleration

from .builders import CQ, GPU, cohort, cq, flavor, wl
from .scenarios import Scenario

MAIN = "couldn't assign flavors to pod set main: "


def gpu_cq(name: str = "a") -> CQ:
    return cq(name).quota("gpu-flavor", GPU, 8)


SCENARIOS = [
    Scenario(
        "fits in nominal quota",
        [cq("a").quota("default", "cpu", 10), wl("ns/w").queue("a").pods(2, cpu=3)],
        admitted={"ns/w": "default"},
    ),
    Scenario(
        "request larger than the maximum capacity",
        [gpu_cq(), wl("ns/w").queue("a").pods(1, gpu=10)],
        pending={
            "ns/w": MAIN + "insufficient quota for nvidia.com/gpu in flavor gpu-flavor, previously considered podsets "
            "requests (0) + current podset request (10) > maximum capacity (8)"
        },
        requeue={"ns/w": "on-capacity"},
    ),
    Scenario(
        "insufficient unused quota and no preemption policy",
        [
            cq("a").quota("default-flavor", "cpu", 10),
            wl("ns/old").queue("a").pods(1, cpu=8).admitted_in("a", flavor="default-flavor"),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        pending={"ns/w": MAIN + "insufficient unused quota for cpu in flavor default-flavor, 2 more needed"},
    ),
    Scenario(
        "milli-cpu amounts print as quantities",
        [
            cq("a").quota("default", "cpu", 1),
            wl("ns/old").queue("a").pods(1, cpu="700m").admitted_in("a"),
            wl("ns/w").queue("a").pods(1, cpu="800m"),
        ],
        pending={"ns/w": MAIN + "insufficient unused quota for cpu in flavor default, 500m more needed"},
    ),
    Scenario(
        "memory prints in binary SI",
        [
            cq("a").quota("default", "cpu", 10).quota("default", "memory", "36Gi"),
            wl("ns/w").queue("a").pods(2, memory="20Gi"),
        ],
        pending={
            "ns/w": MAIN
            + "insufficient quota for memory in flavor default, previously considered podsets requests (0) "
            "+ current podset request (40Gi) > maximum capacity (36Gi)"
        },
    ),
    Scenario(
        "resource no resource group covers",
        [cq("a").quota("default", "cpu", 10), wl("ns/w").queue("a").pods(1, cpu=1, gpu=1)],
        pending={"ns/w": MAIN + "resource nvidia.com/gpu unavailable in ClusterQueue"},
    ),
    Scenario(
        "zero requests of uncovered resources are ignored",
        [cq("a").quota("default", "cpu", 10), wl("ns/w").queue("a").pods(1, cpu=1, gpu=0)],
        admitted={"ns/w": {"cpu": "default"}},
    ),
    Scenario(
        "a pod set without requests is admitted without flavors",
        [cq("a").quota("default", "cpu", 10), wl("ns/w").queue("a").pods(2)],
        admitted={"ns/w": {}},
    ),
    Scenario(
        "first flavor full, second flavor fits",
        [
            cq("a").quota("on-demand", GPU, 4).quota("spot", GPU, 4),
            wl("ns/old").queue("a").pods(1, gpu=4).admitted_in("a", flavor="on-demand"),
            wl("ns/w").queue("a").pods(1, gpu=2),
        ],
        admitted={"ns/w": "spot"},
    ),
    Scenario(
        "every flavor full: reasons of all flavors, sorted",
        [
            cq("a").quota("on-demand", GPU, 4).quota("spot", GPU, 2),
            wl("ns/old").queue("a").pods(1, gpu=4).admitted_in("a", flavor="on-demand"),
            wl("ns/w").queue("a").pods(1, gpu=3),
        ],
        pending={
            "ns/w": MAIN
            + "insufficient quota for nvidia.com/gpu in flavor spot, previously considered podsets requests "
            "(0) + current podset request (3) > maximum capacity (2), insufficient unused quota for nvidia.com/gpu in "
            "flavor on-demand, 3 more needed"
        },
    ),
    Scenario(
        "nodeSelector picks the flavor whose labels agree",
        [
            cq("a").quota("on-demand", "cpu", 4).quota("spot", "cpu", 4),
            flavor("on-demand").labels(instance="on-demand"),
            flavor("spot").labels(instance="spot"),
            wl("ns/w").queue("a").pod_set("main", 1, selector={"instance": "spot"}, cpu=1),
        ],
        admitted={"ns/w": "spot"},
    ),
    Scenario(
        "nodeSelector matching no flavor",
        [
            cq("a").quota("on-demand", "cpu", 4).quota("spot", "cpu", 4),
            flavor("on-demand").labels(instance="on-demand"),
            flavor("spot").labels(instance="spot"),
            wl("ns/w").queue("a").pod_set("main", 1, selector={"instance": "reserved"}, cpu=1),
        ],
        pending={
            "ns/w": MAIN + "flavor on-demand doesn't match node affinity, flavor spot doesn't match node affinity"
        },
    ),
    Scenario(
        "nodeSelector keys a flavor does not label are ignored",
        [
            cq("a").quota("default", "cpu", 4),
            wl("ns/w").queue("a").pod_set("main", 1, selector={"zone": "z1"}, cpu=1),
        ],
        admitted={"ns/w": "default"},
    ),
    Scenario(
        "untolerated NoSchedule taint",
        [cq("a").quota("spot", "cpu", 4), flavor("spot").taint("spot", "true"), wl("ns/w").queue("a").pods(1, cpu=1)],
        pending={"ns/w": MAIN + "untolerated taint {spot true NoSchedule <nil>} in flavor spot"},
    ),
    Scenario(
        "tainted flavor skipped for the next one",
        [
            cq("a").quota("spot", "cpu", 4).quota("on-demand", "cpu", 4),
            flavor("spot").taint("spot", "true", "NoExecute"),
            wl("ns/w").queue("a").pods(1, cpu=1),
        ],
        admitted={"ns/w": "on-demand"},
    ),
    Scenario(
        "pod set tolerates the taint",
        [
            cq("a").quota("spot", "cpu", 4),
            flavor("spot").taint("spot", "true"),
            wl("ns/w").queue("a").pod_set("main", 1, tolerations=(Toleration(key="spot", operator="Exists"),), cpu=1),
        ],
        admitted={"ns/w": "spot"},
    ),
    Scenario(
        "flavor tolerations are added to the pod's",
        [
            cq("a").quota("spot", "cpu", 4),
            flavor("spot").taint("spot", "true").toleration("spot", "true"),
            wl("ns/w").queue("a").pods(1, cpu=1),
        ],
        admitted={"ns/w": "spot"},
    ),
    Scenario(
        "PreferNoSchedule taints do not block",
        [
            cq("a").quota("spot", "cpu", 4),
            flavor("spot").taint("spot", "true", "PreferNoSchedule"),
            wl("ns/w").queue("a").pods(1, cpu=1),
        ],
        admitted={"ns/w": "spot"},
    ),
    Scenario(
        "whenCanBorrow MayStopSearch: borrow in the first flavor",
        [
            cq("a").cohort("c").quota("f1", "cpu", 2).quota("f2", "cpu", 10),
            cq("b").cohort("c").quota("f1", "cpu", 10),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        admitted={"ns/w": "f1"},
    ),
    Scenario(
        "whenCanBorrow TryNextFlavor: the next flavor fits without borrowing",
        [
            cq("a").cohort("c").quota("f1", "cpu", 2).quota("f2", "cpu", 10).fungibility(borrow="TryNextFlavor"),
            cq("b").cohort("c").quota("f1", "cpu", 10),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        admitted={"ns/w": "f2"},
    ),
    Scenario(
        "whenCanBorrow TryNextFlavor: no better flavor, borrow in the first",
        [
            cq("a").cohort("c").quota("f1", "cpu", 2).quota("f2", "cpu", 1).fungibility(borrow="TryNextFlavor"),
            cq("b").cohort("c").quota("f1", "cpu", 10).quota("f2", "cpu", 10),
            wl("ns/w").queue("a").pods(1, cpu=4),
        ],
        admitted={"ns/w": "f1"},
    ),
    Scenario(
        "whenCanPreempt TryNextFlavor (default): a free flavor beats preemption",
        [
            cq("a").quota("f1", "cpu", 4).quota("f2", "cpu", 4).preemption(within="LowerPriority"),
            wl("ns/low").queue("a").pods(1, cpu=4).admitted_in("a", flavor="f1"),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        admitted={"ns/w": "f2"},
    ),
    Scenario(
        "whenCanPreempt MayStopSearch: preempt in the first flavor",
        [
            cq("a")
            .quota("f1", "cpu", 4)
            .quota("f2", "cpu", 4)
            .preemption(within="LowerPriority")
            .fungibility(preempt="MayStopSearch"),
            wl("ns/low").queue("a").pods(1, cpu=4).admitted_in("a", flavor="f1"),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        preempted={"ns/low": "InClusterQueue"},
        pending={
            "ns/w": MAIN
            + "insufficient unused quota for cpu in flavor f1, 4 more needed. Pending the preemption of 1 workload(s)"
        },
        requeue={"ns/w": "immediate"},
    ),
    Scenario(
        "both flavors need preemption: the first one is kept",
        [
            cq("a").quota("f1", "cpu", 4).quota("f2", "cpu", 4).preemption(within="LowerPriority"),
            wl("ns/low1").queue("a").pods(1, cpu=4).admitted_in("a", flavor="f1"),
            wl("ns/low2").queue("a").pods(1, cpu=4).admitted_in("a", flavor="f2"),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        preempted={"ns/low1": "InClusterQueue"},
        pending={
            "ns/w": MAIN
            + "insufficient unused quota for cpu in flavor f1, 4 more needed, insufficient unused quota for "
            "cpu in flavor f2, 4 more needed. Pending the preemption of 1 workload(s)"
        },
    ),
    Scenario(
        "preference BorrowingOverPreemption (default): borrow rather than preempt",
        [
            cq("a")
            .cohort("c")
            .quota("f1", "cpu", 4)
            .quota("f2", "cpu", 0)
            .preemption(within="LowerPriority")
            .fungibility(borrow="TryNextFlavor", preempt="TryNextFlavor"),
            cq("b").cohort("c").quota("f2", "cpu", 8),
            wl("ns/low").queue("a").pods(1, cpu=4).admitted_in("a", flavor="f1"),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        admitted={"ns/w": "f2"},
    ),
    Scenario(
        "preference PreemptionOverBorrowing: preempt rather than borrow",
        [
            cq("a")
            .cohort("c")
            .quota("f1", "cpu", 4)
            .quota("f2", "cpu", 0)
            .preemption(within="LowerPriority")
            .fungibility(borrow="TryNextFlavor", preempt="TryNextFlavor", preference="PreemptionOverBorrowing"),
            cq("b").cohort("c").quota("f2", "cpu", 8),
            wl("ns/low").queue("a").pods(1, cpu=4).admitted_in("a", flavor="f1"),
            wl("ns/w").queue("a").priority(10).pods(1, cpu=4),
        ],
        preempted={"ns/low": "InClusterQueue"},
        pending={
            "ns/w": MAIN
            + "insufficient unused quota for cpu in flavor f1, 4 more needed. Pending the preemption of 1 workload(s)"
        },
    ),
    Scenario(
        "borrowing within borrowingLimit",
        [
            cq("a").cohort("c").quota("default", "cpu", 4, borrowing_limit=2),
            cq("b").cohort("c").quota("default", "cpu", 10),
            wl("ns/w").queue("a").pods(1, cpu=6),
        ],
        admitted={"ns/w": "default"},
    ),
    Scenario(
        "borrowing beyond borrowingLimit",
        [
            cq("a").cohort("c").quota("default", "cpu", 4, borrowing_limit=2),
            cq("b").cohort("c").quota("default", "cpu", 10),
            wl("ns/w").queue("a").pods(1, cpu=7),
        ],
        pending={
            "ns/w": MAIN + "insufficient quota for cpu in flavor default, previously considered podsets requests (0) + "
            "current podset request (7) > maximum capacity (6)"
        },
    ),
    Scenario(
        "lendingLimit bounds what a borrower can get",
        [
            cq("a").cohort("c").quota("default", "cpu", 10, lending_limit=4),
            cq("b").cohort("c").quota("default", "cpu", 2),
            wl("ns/w").queue("b").pods(1, cpu=7),
        ],
        pending={
            "ns/w": MAIN + "insufficient quota for cpu in flavor default, previously considered podsets requests (0) + "
            "current podset request (7) > maximum capacity (6)"
        },
    ),
    Scenario(
        "hierarchical cohort's own quota is borrowed",
        [
            cohort("org").quota("default", "cpu", 4),
            cohort("team").parent("org"),
            cq("a").cohort("team").quota("default", "cpu", 2),
            wl("ns/w").queue("a").pods(1, cpu=6),
        ],
        admitted={"ns/w": "default"},
    ),
    Scenario(
        "two pod sets share the quota",
        [
            cq("a").quota("default", "cpu", 10),
            wl("ns/w").queue("a").pod_set("driver", 1, cpu=2).pod_set("workers", 4, cpu=2),
        ],
        admitted={"ns/w": {"driver:cpu": "default", "workers:cpu": "default"}},
    ),
    Scenario(
        "earlier pod sets count against later ones",
        [
            cq("a").quota("default", "cpu", 10),
            wl("ns/w").queue("a").pod_set("driver", 1, cpu=2).pod_set("workers", 5, cpu=2),
        ],
        pending={
            "ns/w": "couldn't assign flavors to pod set workers: insufficient quota for cpu in flavor default, "
            "previously considered podsets requests (2) + current podset request (10) > maximum capacity (10)"
        },
    ),
    Scenario(
        "a later pod set moves to the next flavor",
        [
            cq("a").quota("f1", "cpu", 4).quota("f2", "cpu", 4),
            wl("ns/w").queue("a").pod_set("driver", 1, cpu=3).pod_set("workers", 2, cpu=1),
        ],
        admitted={"ns/w": {"driver:cpu": "f1", "workers:cpu": "f2"}},
    ),
    Scenario(
        "pods is a quota resource when a group covers it",
        [cq("a").quota("default", "cpu", 10).quota("default", "pods", 2), wl("ns/w").queue("a").pods(3, cpu=1)],
        pending={
            "ns/w": MAIN
            + "insufficient quota for pods in flavor default, previously considered podsets requests (0) + "
            "current podset request (3) > maximum capacity (2)"
        },
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_flavor_assignment(scenario: Scenario) -> None:
    scenario.check()


def test_admission_records_flavors_usage_and_borrowing() -> None:
    result = Scenario(
        "borrowing admission record",
        [
            cq("a").cohort("c").quota("default", "cpu", 4).quota("default", "memory", "4Gi"),
            cq("b").cohort("c").quota("default", "cpu", 10).quota("default", "memory", "4Gi"),
            wl("ns/w").queue("a").pods(3, cpu=2, memory="1Gi"),
        ],
        admitted={"ns/w": "default"},
    ).check()
    decision = result.admitted[0]
    assert decision.borrowing is True
    (pod_set,) = decision.admission.pod_sets
    assert (pod_set.count, pod_set.resource_usage) == (3, {"cpu": 6000, "memory": 3 * 1024**3 * 1000})
