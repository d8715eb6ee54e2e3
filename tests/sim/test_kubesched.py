"""kube-scheduler's scheduling queue on simulated time: order, backoff, requeueing on events, the flushes;
and the same behaviour seen from the batch simulator (Jobs without Kueue)."""

from __future__ import annotations

import pytest

from flotilla.sim.batch import FixedRuntime, SimJob, inventories
from flotilla.sim.cluster import BatchSimulation
from flotilla.sim.kubesched import SchedulingQueue
from flotilla.sim.perfdata import KubeSchedulerParams
from flotilla.slicer.inventory import parse_gpu_spec
from tests.builders import job


@pytest.mark.parametrize(("attempts", "backoff"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)])
def test_backoff_doubles_from_one_second_up_to_ten(attempts: int, backoff: float) -> None:
    assert KubeSchedulerParams().backoff(attempts) == backoff


def test_active_queue_pops_by_priority_then_timestamp() -> None:
    q = SchedulingQueue()
    q.add("ns/old", 0, now=1.0)
    q.add("ns/new", 0, now=2.0)
    q.add("ns/vip", 100, now=3.0)
    order = [p.key for p in iter(q.pop, None)]
    assert order == ["ns/vip", "ns/old", "ns/new"]


def test_a_failed_pod_waits_for_an_event_and_backs_off_if_it_comes_early() -> None:
    q = SchedulingQueue()
    q.add("ns/a", 0, now=0.0)
    pod = q.pop()
    assert pod is not None and pod.attempts == 1
    q.failed(pod, now=0.0)  # unschedulable: nothing happens without an event
    assert q.pop() is None and q.count("unschedulable") == 1
    q.move_all(now=0.5)  # a pod ended 0.5 s later: backoff (1 s) not over -> backoffQ
    assert q.pop() is None and q.count("backoff") == 1
    assert q.next_wakeup() == 1.0  # the backoff flush tick at the expiry
    q.flush(now=1.0)
    again = q.pop()
    assert again is not None and again.key == "ns/a" and again.attempts == 2


def test_an_event_after_the_backoff_moves_the_pod_straight_to_active() -> None:
    q = SchedulingQueue()
    q.add("ns/a", 0, now=0.0)
    first = q.pop()
    assert first is not None
    q.failed(first, now=0.0)
    q.move_all(now=5.0)
    assert q.count("active") == 1
    popped = q.pop()
    assert popped is not None and popped.timestamp == 0.0  # the queue timestamp is the failure's


def test_backoff_flush_runs_on_whole_second_ticks() -> None:
    q = SchedulingQueue()
    q.add("ns/a", 0, now=0.3)
    pod = q.pop()
    assert pod is not None
    q.failed(pod, now=0.3)
    q.move_all(now=0.4)  # backoff until 1.3 s: moved at the 2 s tick
    assert q.next_wakeup() == 2.0
    q.flush(now=1.0)
    assert q.pop() is None
    q.flush(now=2.0)
    assert q.pop() is not None


def test_unschedulable_pods_are_retried_after_five_minutes_without_events() -> None:
    q = SchedulingQueue()
    q.add("ns/a", 0, now=10.0)
    pod = q.pop()
    assert pod is not None
    q.failed(pod, now=10.0)
    # unschedulable for more than 300 s, seen by the 30 s flush: at 330 s
    assert q.next_wakeup() == 330.0
    q.flush(now=300.0)
    assert q.pop() is None
    q.flush(now=330.0)
    assert q.pop() is not None


def test_a_deleted_pod_is_never_popped() -> None:
    q = SchedulingQueue()
    q.add("ns/a", 0, now=0.0)
    q.delete("ns/a")
    assert q.pop() is None and not q.pods


def gpu_job(name: str) -> SimJob:
    return SimJob(job(name, "ns").gpus(1).obj(), created=0.0)


def test_without_kueue_a_pod_waits_out_its_backoff_after_a_gpu_frees() -> None:
    """Six one-GPU Jobs on two GPUs, straight to kube-scheduler: the last one has failed four times when
    a GPU frees at 25 s, so it waits out its 8 s backoff (to 30 s) before it is tried again."""
    sim = BatchSimulation(inventories(parse_gpu_spec("1x2xA100-40GB")), FixedRuntime())
    for i in range(6):
        sim.submit(SimJob(job(f"j{i}", "ns").gpus(1).obj(), created=float(i), work_s=10.0 + i))
    result = sim.run()
    started = {r.name: r.started_at for r in result.records}
    assert started == {
        "ns/j0": 0.0,
        "ns/j1": 1.0,
        "ns/j2": 10.0,  # j0 ended: every waiting pod moved, j2 (oldest) first
        "ns/j3": 12.0,
        "ns/j4": 22.0,
        "ns/j5": 30.0,  # j3 ended at 25 s, but j5 backs off until 22 + 8 s
    }
    assert result.makespan == 45.0


def test_a_pod_that_can_never_fit_fails_at_once() -> None:
    sim = BatchSimulation(inventories(parse_gpu_spec("1x2xA100-40GB")), FixedRuntime())
    sim.submit(SimJob(job("big", "ns").gpus(3).obj(), created=0.0, work_s=1.0))
    (record,) = sim.run().records
    assert record.status == "failed" and "Insufficient nvidia.com/gpu" in record.message


def test_a_pod_that_fits_nowhere_now_waits_and_the_run_ends() -> None:
    """A 2-GPU pod behind a 1-GPU pod on 2 GPUs waits; it runs once the first ends."""
    sim = BatchSimulation(inventories(parse_gpu_spec("1x2xA100-40GB")), FixedRuntime())
    sim.submit(SimJob(job("one", "ns").gpus(1).obj(), created=0.0, work_s=5.0))
    sim.submit(SimJob(job("two", "ns").gpus(2).obj(), created=1.0, work_s=5.0))
    records = {r.name: r for r in sim.run().records}
    assert records["ns/two"].started_at == 5.0 and records["ns/two"].status == "succeeded"
