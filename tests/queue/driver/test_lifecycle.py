"""A Job's life through the embedded driver: admission, start, finish, deletion, status, metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from .builders import GPU, cluster_queue, flavor, job, local_queue
from .fakes import Env, conditions

JSON = dict[str, Any]


def setup(env: Env, gpus: int = 4) -> None:
    env.apply(
        flavor("a100").node_label("gpu", "a100").toleration("gpu", "a100").obj(),
        cluster_queue("cq").quota(GPU, gpus, flavor="a100").obj(),
        local_queue("lq", "cq").obj(),
    )


def test_admission_starts_the_job_with_the_flavor_and_admitted_count(env: Env) -> None:
    setup(env, gpus=3)
    env.apply(job("train").queue("lq").gpus(1).parallelism(5).min_parallelism(2).obj())
    report = env.step()
    assert report.admitted == ["default/" + env.workload_of("train")["metadata"]["name"]]
    wl = env.workload_of("train")
    assert conditions(wl, "QuotaReserved", "Admitted") == {
        "QuotaReserved": ("True", "QuotaReserved", "Quota reserved in ClusterQueue cq"),
        "Admitted": ("True", "Admitted", "The workload is admitted"),
    }
    assert wl["status"]["admission"] == {
        "clusterQueue": "cq",
        "podSetAssignments": [{"name": "main", "flavors": {GPU: "a100"}, "resourceUsage": {GPU: "3"}, "count": 3}],
    }
    spec = env.get("jobs", "train")["spec"]
    assert spec["suspend"] is False
    assert spec["parallelism"] == 3
    assert spec["template"]["spec"]["nodeSelector"] == {"gpu": "a100"}
    assert spec["template"]["spec"]["tolerations"] == [
        {"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}
    ]


def test_pending_workload_says_why_and_the_queue_counts_it(env: Env) -> None:
    setup(env, gpus=2)
    env.apply(job("big").queue("lq").gpus(4).obj())
    env.step()
    wl = env.workload_of("big")
    status, reason, message = conditions(wl, "QuotaReserved")["QuotaReserved"]
    assert (status, reason) == ("False", "Pending") and "insufficient quota" in message
    assert env.get("jobs", "big")["spec"]["suspend"] is True
    cq = env.get("clusterqueues", "cq", None)["status"]
    assert (cq["pendingWorkloads"], cq["reservingWorkloads"], cq["admittedWorkloads"]) == (1, 0, 0)
    assert env.controller.parked == {"default/" + wl["metadata"]["name"]}


def test_finished_job_frees_quota_for_the_next(env: Env) -> None:
    setup(env, gpus=2)
    env.apply(job("first").queue("lq").gpus(2).obj())
    env.step(1)
    env.apply(job("second").queue("lq").gpus(2).obj())
    env.step(1)
    assert env.get("jobs", "second")["spec"]["suspend"] is True
    env.finish_job("first", message="Reached expected number of succeeded pods")
    report = env.step(1)
    first = env.workload_of("first")
    assert conditions(first, "Finished")["Finished"] == (
        "True",
        "Succeeded",
        "Reached expected number of succeeded pods",
    )
    assert report.admitted == ["default/" + env.workload_of("second")["metadata"]["name"]]
    assert env.get("jobs", "second")["spec"]["suspend"] is False


def test_failed_job_finishes_its_workload(env: Env) -> None:
    setup(env)
    env.apply(job("bad").queue("lq").gpus(1).obj())
    env.step()
    env.finish_job("bad", failed=True, message="Job has reached the specified backoff limit")
    env.step()
    assert conditions(env.workload_of("bad"), "Finished")["Finished"] == (
        "True",
        "Failed",
        "Job has reached the specified backoff limit",
    )


def test_deleting_the_job_deletes_its_workload(env: Env) -> None:
    setup(env)
    env.apply(job("gone").queue("lq").gpus(1).obj())
    env.step()
    assert len(env.list("workloads")) == 1
    env.delete("jobs", "gone")
    env.step()
    assert env.list("workloads") == []
    cq = env.get("clusterqueues", "cq", None)["status"]
    assert cq["reservingWorkloads"] == 0


def test_status_counts_and_flavor_usage(env: Env) -> None:
    setup(env, gpus=4)
    env.apply(
        job("a").queue("lq").gpus(3).obj(),
        job("b").queue("lq").gpus(2).obj(),
        job("c").queue("missing").gpus(1).obj(),
    )
    env.step()
    cq = env.get("clusterqueues", "cq", None)["status"]
    assert (cq["pendingWorkloads"], cq["reservingWorkloads"], cq["admittedWorkloads"]) == (1, 1, 1)
    usage = [{"name": "a100", "resources": [{"name": GPU, "total": "3", "borrowed": "0"}]}]
    assert cq["flavorsReservation"] == usage and cq["flavorsUsage"] == usage
    assert conditions(env.get("clusterqueues", "cq", None), "Active")["Active"] == (
        "True",
        "Ready",
        "Can admit new workloads",
    )
    lq = env.get("localqueues", "lq")["status"]
    assert (lq["pendingWorkloads"], lq["reservingWorkloads"], lq["admittedWorkloads"]) == (1, 1, 1)
    assert lq["flavorsUsage"] == [{"name": "a100", "resources": [{"name": GPU, "total": "3"}]}]
    assert conditions(env.get("localqueues", "lq"), "Active")["Active"] == (
        "True",
        "Ready",
        "Can submit new workloads to localQueue",
    )
    orphan = env.workload_of("c")
    assert conditions(orphan, "QuotaReserved")["QuotaReserved"] == (
        "False",
        "Inadmissible",
        "LocalQueue missing doesn't exist",
    )


def test_missing_flavor_makes_the_cluster_queue_inactive(env: Env) -> None:
    env.apply(cluster_queue("cq").quota(GPU, 4, flavor="ghost").obj(), local_queue("lq", "cq").obj())
    env.apply(job("j").queue("lq").gpus(1).obj())
    env.step()
    cq = env.get("clusterqueues", "cq", None)
    assert conditions(cq, "Active")["Active"] == (
        "False",
        "FlavorNotFound",
        "Can't admit new workloads: references missing ResourceFlavor(s): [ghost].",
    )
    assert conditions(env.get("localqueues", "lq"), "Active")["Active"] == (
        "False",
        "ClusterQueueIsInactive",
        "Can't submit new workloads to clusterQueue",
    )
    assert conditions(env.workload_of("j"), "QuotaReserved")["QuotaReserved"] == (
        "False",
        "Inadmissible",
        "ClusterQueue cq is inactive",
    )
    env.apply(flavor("ghost").obj())
    env.step()
    assert conditions(env.workload_of("j"), "Admitted")["Admitted"][0] == "True"


def test_a_settled_system_writes_nothing(env: Env) -> None:
    setup(env, gpus=2)
    env.apply(job("a").queue("lq").gpus(2).obj(), job("b").queue("lq").gpus(2).obj())
    env.settle()
    revision = env.store.revision()
    report = env.step(1)
    assert (report.writes, env.store.revision()) == (0, revision)


def test_metrics_have_kueues_names(env: Env) -> None:
    setup(env, gpus=2)
    env.apply(job("a").queue("lq").gpus(2).obj())
    env.step(5)
    env.apply(job("b").queue("lq").gpus(2).obj())
    env.step()
    registry = CollectorRegistry()
    registry.register(env.controller.metrics)
    text = generate_latest(registry).decode()
    for line in (
        'kueue_pending_workloads{cluster_queue="cq",status="active"} 0.0',
        'kueue_pending_workloads{cluster_queue="cq",status="inadmissible"} 1.0',
        'kueue_reserving_active_workloads{cluster_queue="cq"} 1.0',
        'kueue_admitted_active_workloads{cluster_queue="cq"} 1.0',
        'kueue_quota_reserved_workloads_total{cluster_queue="cq"} 1.0',
        'kueue_admitted_workloads_total{cluster_queue="cq"} 1.0',
        'kueue_admission_wait_time_seconds_count{cluster_queue="cq"} 1.0',
        'kueue_cluster_queue_resource_usage{cluster_queue="cq",cohort="",flavor="a100",resource="nvidia.com/gpu"} 2.0',
        'kueue_cluster_queue_nominal_quota{cluster_queue="cq",cohort="",flavor="a100",resource="nvidia.com/gpu"} 2.0',
        'kueue_cluster_queue_status{cluster_queue="cq",status="active"} 1.0',
        'kueue_cluster_queue_status{cluster_queue="cq",status="pending"} 0.0',
    ):
        assert line in text, line
