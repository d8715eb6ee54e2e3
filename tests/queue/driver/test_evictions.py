"""Evictions: preemption, HoldAndDrain, WaitForPodsReady timeouts with backoff and deactivation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotilla.queue.types import QueueConfig, RequeuingStrategy, WaitForPodsReadyConfig
from flotilla.queue.workloads import backoff_seconds, rfc3339

from .builders import GPU, cluster_queue, flavor, job, local_queue, priority_class
from .fakes import START, Env, conditions, fits_by_count, preempting

JSON = dict[str, Any]


def setup(env: Env, gpus: int = 2, stop: str | None = None) -> None:
    cq = cluster_queue("cq").quota(GPU, gpus, flavor="a100").preempt_within("LowerPriority")
    if stop:
        cq.stop(stop)
    env.apply(
        flavor("a100").node_label("gpu", "a100").obj(),
        cq.obj(),
        local_queue("lq", "cq").obj(),
        priority_class("low", 10),
        priority_class("high", 1000),
    )


def test_preemption_evicts_suspends_and_requeues_the_victim(tmp_path: Path) -> None:
    env = Env(tmp_path / "s.db", policy=preempting)
    try:
        setup(env)
        env.apply(job("low").queue("lq").priority_class("low").gpus(2).obj())
        env.step(1)
        assert env.get("jobs", "low")["spec"]["suspend"] is False
        env.apply(job("high").queue("lq").priority_class("high").gpus(2).obj())
        report = env.step(1)
        victim = env.workload_of("low")
        assert report.preempted == ["default/" + victim["metadata"]["name"]]
        message = conditions(victim, "Evicted")["Evicted"][2]
        assert message.startswith("Preempted to accommodate a workload")
        assert conditions(victim, "Evicted", "Preempted", "Requeued", "Admitted") == {
            "Evicted": ("True", "Preempted", message),
            "Preempted": ("True", "InClusterQueue", message),
            "Requeued": ("True", "Preempted", message),
            "Admitted": ("False", "NoReservation", "The workload has no reservation"),
        }
        # Back in the queue at once: the next cycle of the pass already said why it waits.
        assert conditions(victim, "QuotaReserved")["QuotaReserved"][:2] == ("False", "Pending")
        assert "admission" not in victim["status"]
        low = env.get("jobs", "low")
        assert low["spec"]["suspend"] is True
        assert "nodeSelector" not in low["spec"]["template"]["spec"]
        # The preemptor took the quota in a later cycle of the same pass.
        assert env.get("jobs", "high")["spec"]["suspend"] is False
        assert conditions(env.workload_of("high"), "Admitted")["Admitted"][0] == "True"
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry()
        registry.register(env.controller.metrics)
        text = generate_latest(registry).decode()
        assert 'kueue_evicted_workloads_total{cluster_queue="cq",reason="Preempted"} 1.0' in text
        assert 'kueue_preempted_workloads_total{preempting_cluster_queue="cq",reason="InClusterQueue"} 1.0' in text
    finally:
        env.close()


@pytest.mark.parametrize(
    ("plural", "name", "ns", "reason", "message"),
    [
        ("clusterqueues", "cq", None, "ClusterQueueStopped", "The ClusterQueue is stopped"),
        ("localqueues", "lq", "default", "LocalQueueStopped", "The LocalQueue is stopped"),
    ],
)
def test_hold_and_drain_evicts_admitted_workloads_until_resumed(
    env: Env, plural: str, name: str, ns: str | None, reason: str, message: str
) -> None:
    setup(env)
    env.apply(job("running").queue("lq").gpus(1).obj())
    env.step(1)
    env.patch(plural, name, {"spec": {"stopPolicy": "HoldAndDrain"}}, ns)
    env.step(1)
    wl = env.workload_of("running")
    kind = "ClusterQueue cq" if plural == "clusterqueues" else "LocalQueue lq"
    assert conditions(wl, "Evicted", "Requeued", "QuotaReserved") == {
        "Evicted": ("True", reason, message),
        "Requeued": ("False", reason, message),
        # released with the eviction message, then (as Kueue's workload controller does) Inadmissible
        "QuotaReserved": ("False", "Inadmissible", f"{kind} is inactive"),
    }
    assert env.get("jobs", "running")["spec"]["suspend"] is True
    env.step(1)  # while held, nothing is admitted again
    assert "admission" not in env.workload_of("running")["status"]
    env.patch(plural, name, {"spec": {"stopPolicy": "None"}}, ns)
    env.step(1)
    wl = env.workload_of("running")
    restarted = "ClusterQueueRestarted" if plural == "clusterqueues" else "LocalQueueRestarted"
    assert conditions(wl, "Requeued")["Requeued"][:2] == ("True", restarted)
    assert conditions(wl, "Admitted")["Admitted"][0] == "True"
    assert env.get("jobs", "running")["spec"]["suspend"] is False


def test_hold_keeps_admitted_workloads_and_admits_nothing_new(env: Env) -> None:
    setup(env, gpus=4)
    env.apply(job("running").queue("lq").gpus(1).obj())
    env.step(1)
    env.patch("clusterqueues", "cq", {"spec": {"stopPolicy": "Hold"}}, None)
    env.apply(job("waiting").queue("lq").gpus(1).obj())
    env.step(1)
    assert env.get("jobs", "running")["spec"]["suspend"] is False
    assert conditions(env.workload_of("waiting"), "QuotaReserved")["QuotaReserved"] == (
        "False",
        "Inadmissible",
        "ClusterQueue cq is inactive",
    )
    assert conditions(env.get("clusterqueues", "cq", None), "Active")["Active"] == (
        "False",
        "Stopped",
        "Can't admit new workloads: is stopped.",
    )


def pods_ready_env(tmp_path: Path, limit: int | None = 2, block: bool = False) -> Env:
    strategy = RequeuingStrategy(backoffBaseSeconds=10, backoffMaxSeconds=25, backoffLimitCount=limit)
    config = QueueConfig(
        waitForPodsReady=WaitForPodsReadyConfig(
            enable=True, timeout=60, blockAdmission=block, requeuingStrategy=strategy
        )
    )
    return Env(tmp_path / "s.db", config, fits_by_count)


def test_pods_ready_timeout_evicts_with_backoff_then_deactivates(tmp_path: Path) -> None:
    env = pods_ready_env(tmp_path, limit=2)
    try:
        setup(env)
        env.apply(job("slow").queue("lq").gpus(1).obj())
        env.step()
        wl = env.workload_of("slow")
        assert conditions(wl, "PodsReady")["PodsReady"] == (
            "False",
            "WaitForStart",
            "Not all pods are ready or succeeded",
        )
        admitted_at = env.clock.now
        assert env.controller.next_wakeup == admitted_at + 60
        env.step(59)
        assert conditions(env.workload_of("slow"), "Admitted")["Admitted"][0] == "True"
        for attempt, expected_backoff in ((1, 10), (2, 20)):
            env.step(env.controller.next_wakeup - env.clock.now)  # the PodsReady deadline
            wl = env.workload_of("slow")
            key = f"default/{wl['metadata']['name']}"
            evicted = ("True", "PodsReadyTimeout", f"Exceeded the PodsReady timeout {key}")
            assert conditions(wl, "Evicted")["Evicted"] == evicted
            assert conditions(wl, "Requeued")["Requeued"][:2] == ("False", "PodsReadyTimeout")
            assert wl["status"]["requeueState"] == {
                "count": attempt,
                "requeueAt": rfc3339(env.clock.now + expected_backoff),
            }
            assert env.get("jobs", "slow")["spec"]["suspend"] is True
            assert env.controller.next_wakeup == env.clock.now + expected_backoff
            env.step(expected_backoff)  # backoff over: requeued and admitted again
            wl = env.workload_of("slow")
            assert conditions(wl, "Requeued")["Requeued"] == (
                "True",
                "BackoffFinished",
                "The workload backoff was finished",
            )
            assert conditions(wl, "Admitted")["Admitted"][0] == "True"
        env.step(env.controller.next_wakeup - env.clock.now)  # third timeout: past backoffLimitCount
        wl = env.workload_of("slow")
        message = "The workload is deactivated due to exceeding the maximum number of re-queuing retries"
        assert wl["spec"]["active"] is False
        assert conditions(wl, "Evicted", "QuotaReserved", "DeactivationTarget") == {
            "Evicted": ("True", "DeactivatedDueToRequeuingLimitExceeded", message),
            "QuotaReserved": ("False", "Pending", message),
        }
        assert "requeueState" not in wl["status"]
        assert env.get("jobs", "slow")["spec"]["suspend"] is True
        env.step(1000)
        assert "admission" not in env.workload_of("slow")["status"]
    finally:
        env.close()


def test_ready_pods_stop_the_timeout(tmp_path: Path) -> None:
    env = pods_ready_env(tmp_path)
    try:
        setup(env)
        env.apply(job("fast").queue("lq").gpus(1).obj())
        env.step()
        env.job_status("fast", active=1, ready=1)
        env.step(10)
        assert conditions(env.workload_of("fast"), "PodsReady")["PodsReady"] == (
            "True",
            "Started",
            "All pods reached readiness and the workload is running",
        )
        env.step(1000)
        assert conditions(env.workload_of("fast"), "Admitted")["Admitted"][0] == "True"
    finally:
        env.close()


def test_block_admission_waits_for_pods_ready(tmp_path: Path) -> None:
    env = pods_ready_env(tmp_path, block=True)
    try:
        setup(env, gpus=4)
        env.apply(job("first").queue("lq").gpus(1).obj(), job("second").queue("lq").gpus(1).obj())
        report = env.step()
        assert len(report.admitted) == 1
        waiting = next(j for j in ("first", "second") if env.get("jobs", j)["spec"]["suspend"])
        assert conditions(env.workload_of(waiting), "QuotaReserved")["QuotaReserved"] == (
            "False",
            "Waiting",
            "waiting for all admitted workloads to be in PodsReady condition",
        )
        started = "second" if waiting == "first" else "first"
        env.job_status(started, active=1, ready=1)
        report = env.step(1)
        assert report.admitted == ["default/" + env.workload_of(waiting)["metadata"]["name"]]
    finally:
        env.close()


@pytest.mark.parametrize(
    ("count", "seconds"),
    [(1, 10), (2, 20), (3, 25), (10, 25)],
)
def test_backoff_is_exponential_and_capped(count: int, seconds: float) -> None:
    assert backoff_seconds(count, 10, 25) == seconds


def test_requeue_time_is_never_early() -> None:
    assert rfc3339(START + 0.4) == rfc3339(START)


def test_deactivating_and_reactivating_a_workload(env: Env) -> None:
    setup(env)
    env.apply(job("j").queue("lq").gpus(1).obj())
    env.step(1)
    name = env.workload_of("j")["metadata"]["name"]
    env.patch("workloads", name, {"spec": {"active": False}})
    env.step(1)
    wl = env.workload_of("j")
    assert conditions(wl, "Evicted", "Requeued") == {
        "Evicted": ("True", "Deactivated", "The workload is deactivated"),
        "Requeued": ("False", "Deactivated", "The workload is deactivated"),
    }
    assert env.get("jobs", "j")["spec"]["suspend"] is True
    env.patch("workloads", name, {"spec": {"active": True}})
    env.step(1)
    wl = env.workload_of("j")
    assert conditions(wl, "Requeued")["Requeued"] == ("True", "Reactivated", "The workload was reactivated")
    assert conditions(wl, "Evicted")["Evicted"] == ("False", "QuotaReserved", "Previously: The workload is deactivated")
    assert env.get("jobs", "j")["spec"]["suspend"] is False


def test_a_workload_without_a_job_is_admitted_and_released(tmp_path: Path) -> None:
    env = Env(tmp_path / "s.db", policy=preempting)
    try:
        setup(env, gpus=1)
        template = job("x").gpus(1).obj()["spec"]["template"]
        for name, prio in (("low", 1), ("high", 100)):
            env.create(
                {
                    "apiVersion": "kueue.x-k8s.io/v1beta2",
                    "kind": "Workload",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {
                        "queueName": "lq",
                        "priority": prio,
                        "podSets": [{"name": "main", "count": 1, "template": template}],
                    },
                }
            )
            env.step(1)
        low, high = env.get("workloads", "low"), env.get("workloads", "high")
        assert conditions(low, "Evicted")["Evicted"][:2] == ("True", "Preempted")
        assert "admission" not in low["status"]
        assert conditions(high, "Admitted")["Admitted"][0] == "True"
    finally:
        env.close()
