"""The quota tree: available / potential available / borrowing, as Kueue's resource_node.go computes
them, on flat and hierarchical cohorts with borrowing and lending limits."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from flotilla.queue import quota as q
from flotilla.queue.quota import QuotaTree

from .builders import WL, Obj, cohort, cq, milli, snapshot, wl

CPU = ("default", "cpu")


@dataclass
class TreeCase:
    name: str
    objects: list[Obj]
    queue: str
    available: int | str
    potential: int | str
    borrowing: bool = False

    def __str__(self) -> str:
        return self.name


def used(key: str, queue: str, cpu: int | str) -> WL:
    return wl(key).queue(queue).pods(1, cpu=cpu).admitted_in(queue)


CASES = [
    TreeCase("no cohort: nominal minus usage", [cq("a").quota("default", "cpu", 10), used("ns/x", "a", 4)], "a", 6, 10),
    TreeCase(
        "flat cohort: own unused plus what others do not use",
        [
            cq("a").cohort("c").quota("default", "cpu", 10),
            cq("b").cohort("c").quota("default", "cpu", 6),
            used("ns/x", "b", 4),
        ],
        "a",
        12,
        16,
    ),
    TreeCase(
        "borrowing limit caps what comes from the cohort",
        [
            cq("a").cohort("c").quota("default", "cpu", 4, borrowing_limit=2),
            cq("b").cohort("c").quota("default", "cpu", 10),
        ],
        "a",
        6,
        6,
    ),
    TreeCase(
        "borrowing limit counts what is already borrowed",
        [
            cq("a").cohort("c").quota("default", "cpu", 4, borrowing_limit=2),
            cq("b").cohort("c").quota("default", "cpu", 10),
            used("ns/x", "a", 5),
        ],
        "a",
        1,
        6,
        True,
    ),
    TreeCase(
        "lending limit keeps part of a lender's quota out of the cohort",
        [
            cq("a").cohort("c").quota("default", "cpu", 10, lending_limit=4),
            cq("b").cohort("c").quota("default", "cpu", 2),
        ],
        "b",
        6,
        6,
    ),
    TreeCase(
        "the lender itself still reaches all its quota",
        [
            cq("a").cohort("c").quota("default", "cpu", 10, lending_limit=4),
            cq("b").cohort("c").quota("default", "cpu", 2),
            used("ns/x", "b", 6),
        ],
        "a",
        6,
        12,
    ),
    TreeCase(
        "usage within the guaranteed part does not reach the cohort",
        [
            cq("a").cohort("c").quota("default", "cpu", 10, lending_limit=4),
            cq("b").cohort("c").quota("default", "cpu", 2),
            used("ns/x", "a", 6),
        ],
        "b",
        6,
        6,
    ),
    TreeCase(
        "hierarchical cohorts: a parent cohort's own quota is reachable",
        [
            cohort("org").quota("default", "cpu", 4),
            cohort("team").parent("org"),
            cq("a").cohort("team").quota("default", "cpu", 2),
            used("ns/x", "a", 3),
        ],
        "a",
        3,
        6,
        True,
    ),
    TreeCase(
        "hierarchical cohorts: a cohort's lending limit holds quota back for its subtree",
        [
            cohort("org"),
            cohort("team").parent("org").quota("default", "cpu", 6, lending_limit=2),
            cq("a").cohort("team").quota("default", "cpu", 0),
            cq("b").cohort("org").quota("default", "cpu", 1),
        ],
        "b",
        3,
        3,
    ),
    TreeCase(
        "implicit cohort (no Cohort object) shares its members' quota",
        [cq("a").cohort("implicit").quota("default", "cpu", 3), cq("b").cohort("implicit").quota("default", "cpu", 3)],
        "a",
        6,
        6,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_quota_tree(case: TreeCase) -> None:
    tree = QuotaTree.from_snapshot(snapshot(*case.objects))
    node = tree.cqs[case.queue]
    assert q.cq_available(node, CPU) == milli(case.available)
    assert q.potential_available(node, CPU) == milli(case.potential)
    assert q.is_borrowing(node, CPU) is case.borrowing


def test_usage_above_guaranteed_propagates_and_restores_exactly() -> None:
    snap = snapshot(
        cq("a").cohort("c").quota("default", "cpu", 10, lending_limit=4),
        cq("b").cohort("c").quota("default", "cpu", 2),
        used("ns/x", "a", 8),
        used("ns/y", "b", 1),
    )
    tree = QuotaTree.from_snapshot(snap)
    root = tree.cohorts["c"]
    # a keeps 6 guaranteed: 8 - 6 = 2 reaches the cohort, plus b's 1.
    assert root.usage[CPU] == milli(3)
    before = {n.name: dict(n.usage) for n in [*tree.cqs.values(), root]}
    with tree.without_usage_of([snap.workloads["ns/x"]]):
        assert root.usage[CPU] == milli(1)
        assert tree.cqs["a"].usage[CPU] == 0
    assert {n.name: dict(n.usage) for n in [*tree.cqs.values(), root]} == before
    assert snap.workloads["ns/x"].admission is not None  # the snapshot itself is untouched


def test_borrowing_level_is_height_of_lowest_subtree_that_fits() -> None:
    tree = QuotaTree.from_snapshot(
        snapshot(
            cohort("org").quota("default", "cpu", 4),
            cohort("team").parent("org"),
            cq("a").cohort("team").quota("default", "cpu", 2),
            cq("b").cohort("team").quota("default", "cpu", 2),
        )
    )
    a = tree.cqs["a"]
    assert q.lowest_subtree_that_fits(a, CPU, milli(2)) == (0, True)
    assert q.lowest_subtree_that_fits(a, CPU, milli(4)) == (1, True)
    assert q.lowest_subtree_that_fits(a, CPU, milli(7)) == (2, False)


def test_cohort_cycle_makes_its_queues_inactive() -> None:
    tree = QuotaTree.from_snapshot(
        snapshot(cohort("x").parent("y"), cohort("y").parent("x"), cq("a").cohort("x").quota("default", "cpu", 1))
    )
    assert tree.cqs["a"].active is False
