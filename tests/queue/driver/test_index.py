"""The controller's indexes: pending queues and parking by group, and queue counts kept change by
change that must equal what `status.queue_view` computes from every Workload."""

from __future__ import annotations

import random
from typing import Any

import pytest

from flotilla.queue import workloads as wls
from flotilla.queue.build import ApiObjects, queue_snapshots
from flotilla.queue.driver import Park
from flotilla.queue.index import WorkloadIndex
from flotilla.queue.pending import PendingQueues
from flotilla.queue.status import QueueCounts, QueueView, queue_view
from flotilla.queue.types import QueueConfig

from .builders import GPU, cluster_queue, local_queue

JSON = dict[str, Any]
T0 = 1_700_000_000.0


# -- PendingQueues ------------------------------------------------------------------------------
def order(key: str, priority: int = 0, at: float = 0.0) -> tuple[int, float, str]:
    return (-priority, at, key)


def queues_with(*members: tuple[str, int, tuple[int, float, str]]) -> PendingQueues:
    """(LocalQueue, group, order) each."""
    pending = PendingQueues(retry_after=60)
    for queue, group, o in members:
        pending.add(queue, group, o, 0.0)
    return pending


def test_head_is_the_first_in_queue_order_over_all_groups() -> None:
    pending = queues_with(
        ("ns/lq", 1, order("ns/small-1", 50, 1)),
        ("ns/lq", 1, order("ns/small-0", 50, 2)),
        ("ns/lq", 2, order("ns/large-0", 200, 5)),
        ("ns/other", 3, order("ns/x", 0, 0)),
    )
    assert pending.head("ns/lq", T0) == "ns/large-0"
    assert pending.head("ns/other", T0) == "ns/x"
    assert pending.head("ns/none", T0) is None


def test_parking_a_head_parks_its_group_and_the_next_group_leads() -> None:
    pending = queues_with(
        ("ns/lq", 1, order("ns/large-0", 200, 1)),
        ("ns/lq", 1, order("ns/large-1", 200, 2)),
        ("ns/lq", 2, order("ns/small-0", 50, 0)),
    )
    pending.park(1, order("ns/large-0", 200, 1), Park(T0, True), whole_group=True)
    assert pending.parked_keys() == {"ns/large-0", "ns/large-1"}
    assert pending.head("ns/lq", T0) == "ns/small-0"
    pending.add("ns/lq", 1, order("ns/large-2", 200, 3), 0.0)  # a new arrival is tried, not parked
    assert pending.head("ns/lq", T0) == "ns/large-2"
    assert pending.counts(T0) == {"ns/lq": (4, 2)}
    assert pending.parked_queues == {"ns/lq"}
    pending.unpark_queues(["ns/lq"])
    assert pending.parked_keys() == frozenset()
    assert pending.head("ns/lq", T0) == "ns/large-0"


def test_timed_parks_come_back_after_retry_after_seconds() -> None:
    pending = queues_with(("ns/lq", 1, order("ns/a", 0, 1)), ("ns/lq", 2, order("ns/b", 0, 2)))
    pending.park(1, order("ns/a", 0, 1), Park(T0, True), whole_group=True)
    pending.park(2, order("ns/b", 0, 2), Park(T0 + 10, False), whole_group=True)  # "never": no timer
    assert pending.next_retry() == T0 + 60
    pending.retry_due(T0 + 59)
    assert pending.parked_keys() == {"ns/a", "ns/b"}
    pending.retry_due(T0 + 60)
    assert pending.parked_keys() == {"ns/b"}
    assert pending.next_retry() is None


def test_parking_the_same_class_again_restarts_its_retry_clock() -> None:
    pending = queues_with(("ns/lq", 1, order("ns/a", 0, 1)))
    pending.park(1, order("ns/a", 0, 1), Park(T0, True), whole_group=True)
    pending.add("ns/lq", 1, order("ns/b", 0, 2), 0.0)
    pending.park(1, order("ns/b", 0, 2), Park(T0 + 30, True), whole_group=True)  # tried again, no room
    assert pending.next_retry() == T0 + 90
    pending.retry_due(T0 + 60)
    assert pending.parked_keys() == {"ns/a", "ns/b"}


def test_a_workload_backing_off_is_skipped_and_counted_waiting() -> None:
    pending = PendingQueues(retry_after=60)
    pending.add("ns/lq", 1, order("ns/a", 10, 1), T0 + 5)
    pending.add("ns/lq", 2, order("ns/b", 0, 2), 0.0)
    assert pending.head("ns/lq", T0) == "ns/b"
    assert pending.counts(T0) == {"ns/lq": (2, 1)}
    assert pending.head("ns/lq", T0 + 5) == "ns/a"
    assert pending.remove(1, order("ns/a", 10, 1)) is None
    assert pending.counts(T0) == {"ns/lq": (1, 0)}


def test_removing_a_parked_workload_returns_its_park() -> None:
    park = Park(T0, True)
    pending = queues_with(("ns/lq", 1, order("ns/a")), ("ns/lq", 1, order("ns/b")))
    pending.park(1, order("ns/a"), park, whole_group=False)
    assert pending.is_parked(1, order("ns/a")) and not pending.is_parked(1, order("ns/b"))
    assert pending.remove(1, order("ns/a")) is park
    pending.add("ns/lq", 1, order("ns/a"), 0.0, park)  # a new version of it stays parked
    assert pending.park_of(1, order("ns/a")) is park


# -- WorkloadIndex against queue_view -------------------------------------------------------------
def workload(name: str, queue: str, gpus: int, priority: int = 0, namespace: str = "team") -> JSON:
    container = {"name": "c", "image": "x", "resources": {"requests": {GPU: str(gpus)}}}
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": wls.rfc3339(T0),
        },
        "spec": {
            "queueName": queue,
            "priority": priority,
            "podSets": [{"name": "main", "count": 1, "template": {"spec": {"containers": [container]}}}],
        },
    }


def transition(wl: JSON, rng: random.Random, now: float) -> JSON:
    """A random next state, as the controller or a user would write it."""
    wl = wls.copy_json(wl)
    state, gpus = wls.state(wl), wl["spec"]["podSets"][0]["template"]["spec"]["containers"][0]
    usage = gpus["resources"]["requests"][GPU]
    cq = rng.choice(["cq1", "cq2"])
    admission = {
        "clusterQueue": cq,
        "podSetAssignments": [{"name": "main", "flavors": {GPU: "default-flavor"}, "resourceUsage": {GPU: usage}}],
    }
    if state == "pending":
        choice = rng.choice(["admit", "reserve", "message", "deactivate", "backoff"])
        if choice == "admit":
            wls.set_quota_reservation(wl, admission, now)
        elif choice == "reserve":  # quota reserved, not (yet) admitted
            wls.set_quota_reservation(wl, admission, now)
            wls.set_condition(wl, wls.ADMITTED, False, "NoReservation", "", now)
        elif choice == "message":
            wls.unset_quota_reservation(wl, wls.PENDING, f"no room {rng.random()}", now)
        elif choice == "deactivate":
            wl["spec"]["active"] = False
            wl["metadata"]["generation"] += 1
        else:
            wl.setdefault("status", {})["requeueState"] = {"count": 1, "requeueAt": wls.rfc3339(now + 30)}
    elif state in ("admitted", "quotaReserved"):
        if rng.random() < 0.5:
            wls.set_finished(wl, wls.FINISHED_SUCCEEDED, "done", now)
        else:
            wls.set_evicted(wl, wls.EVICTED_BY_PREEMPTION, "preempted", now)
            wls.release_after_eviction(wl, now)
    else:
        wl["spec"]["active"] = True
        wl["metadata"]["generation"] += 1
    wl["metadata"]["resourceVersion"] = str(int(wl["metadata"]["resourceVersion"]) + 1)
    return wl


def normalized(view: QueueView) -> dict[str, Any]:
    def counts(c: QueueCounts) -> tuple[Any, ...]:
        nonzero = ({k: v for k, v in u.items() if v} for u in (c.reserved, c.used))
        return (c.pending_active, c.pending_inadmissible, c.reserving, c.admitted, *nonzero)

    empty = counts(QueueCounts())
    return {
        kind: {name: counts(c) for name, c in table.items() if counts(c) != empty}
        for kind, table in (("cq", view.cluster_queues), ("lq", view.local_queues))
    }


@pytest.mark.parametrize("seed", range(4))
def test_counts_kept_change_by_change_equal_counting_everything(seed: int) -> None:
    rng = random.Random(seed)
    objs = ApiObjects.from_lists(
        cluster_queues=[
            cluster_queue("cq1").quota(GPU, 4).obj(),
            cluster_queue("cq2").quota(GPU, 4).stop("Hold").obj(),  # inactive: its pending are inadmissible
        ],
        flavors=[{"metadata": {"name": "default-flavor"}}],
        local_queues=[local_queue("lq1", "cq1", "team").obj(), local_queue("lq2", "cq2", "team").obj()],
        workloads=[],
    )
    index = WorkloadIndex(objs, QueueConfig())
    index.rebuild()
    workloads: dict[str, JSON] = objs.workloads  # type: ignore[assignment]
    open_queues = queue_snapshots(objs).open_queues
    now = T0
    for step in range(400):
        now += rng.choice([0.0, 5.0, 20.0])
        key = f"team/w{rng.randrange(12)}"
        if key not in workloads:
            queue = rng.choice(["lq1", "lq2", "missing"])
            new = workload(key.split("/")[1], queue, rng.choice([1, 2]), rng.choice([0, 10]))
        elif rng.random() < 0.1:
            del workloads[key]
            index.update(key, None)
            continue
        else:
            new = transition(workloads[key], rng, now)
        workloads[key] = new
        index.update(key, new)
        if rng.random() < 0.2 and key in index.entries and index.entries[key].pending:
            index.park(key, Park(now, True), with_equivalents=rng.random() < 0.5)
        if rng.random() < 0.1:
            index.pending.unpark_queues(None)
        expected = queue_view(objs, index.pending.parked_keys(), now)
        assert normalized(index.view(now, open_queues)) == normalized(expected), f"step {step}"
        held = {k for k, w in workloads.items() if wls.holds_quota(w)}
        assert set(index.holding()) == held
    index.rebuild()  # from scratch: the same figures, parked workloads still parked
    expected = queue_view(objs, index.pending.parked_keys(), now)
    assert normalized(index.view(now, open_queues)) == normalized(expected)


def test_releases_are_capacity_events_even_when_the_holder_came_and_went() -> None:
    objs = ApiObjects.from_lists(
        cluster_queues=[cluster_queue("cq1").quota(GPU, 4).obj()],
        local_queues=[local_queue("lq1", "cq1", "team").obj()],
        workloads=[],
    )
    index = WorkloadIndex(objs, QueueConfig())
    wl = workload("a", "lq1", 2)
    index.update("team/a", wl)
    assert index.take_released() == set()
    admitted = wls.copy_json(wl)
    usage = {"name": "main", "flavors": {GPU: "default-flavor"}, "resourceUsage": {GPU: "2"}}
    wls.set_quota_reservation(admitted, {"clusterQueue": "cq1", "podSetAssignments": [usage]}, T0)
    index.update("team/a", admitted)
    finished = wls.copy_json(admitted)
    wls.set_finished(finished, wls.FINISHED_SUCCEEDED, "done", T0)
    index.update("team/a", finished)
    assert index.take_released() == {"cq1"}  # admitted and finished between two reads
    assert index.take_released() == set()
