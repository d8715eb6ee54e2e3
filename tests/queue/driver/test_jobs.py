"""The Job integration: the hook on writes, the Workload of a Job, start and stop."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from flotilla.queue import jobs
from flotilla.queue.types import QueueConfig

from .builders import GPU, flavor, job, local_queue, priority_class
from .fakes import Env, conditions, fits_by_count

JSON = dict[str, Any]


def test_workload_name_is_kueues() -> None:
    body = job("train").obj()
    body["metadata"]["uid"] = "1234-abcd"
    digest = hashlib.sha1(b"Job\nbatch\ntrain\n1234-abcd").hexdigest()[:5]
    assert jobs.workload_name(body) == f"job-train-{digest}"
    long = job("x" * 250).obj()
    assert len(jobs.workload_name(long)) == 253


@pytest.mark.parametrize(
    ("builder", "count", "min_count"),
    [
        (job("a"), 1, None),
        (job("a").parallelism(4), 4, None),
        (job("a").parallelism(4, completions=2), 2, None),
        (job("a").parallelism(4).min_parallelism(2), 4, 2),
    ],
)
def test_pod_set_count_and_min_count(builder: Any, count: int, min_count: int | None) -> None:
    (pod_set,) = jobs.pod_sets(builder.obj(), QueueConfig())
    assert (pod_set["name"], pod_set["count"], pod_set.get("minCount")) == ("main", count, min_count)


def test_min_count_dropped_without_partial_admission() -> None:
    (pod_set,) = jobs.pod_sets(job("a").parallelism(4).min_parallelism(2).obj(), QueueConfig(partialAdmission=False))
    assert "minCount" not in pod_set


def test_managed_job_is_suspended_and_gets_its_workload(env: Env) -> None:
    env.apply(priority_class("high", 1000), local_queue("lq", "cq").obj())
    created = env.create(
        job("train").queue("lq").priority_class("high").gpus(1).parallelism(3).min_parallelism(2).obj()
    )
    assert created["spec"]["suspend"] is True
    env.step()
    wl = env.workload_of("train")
    assert wl["metadata"]["name"] == jobs.workload_name(created)
    assert wl["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "train",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = wl["spec"]
    assert spec["queueName"] == "lq"
    assert spec["priority"] == 1000
    assert spec["priorityClassRef"] == {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass", "name": "high"}
    (pod_set,) = spec["podSets"]
    assert (pod_set["name"], pod_set["count"], pod_set["minCount"]) == ("main", 3, 2)
    assert pod_set["template"]["spec"]["containers"][0]["resources"]["limits"] == {GPU: "1"}


def test_unlabelled_job_is_left_alone(env: Env) -> None:
    created = env.create(job("plain").obj())
    env.step()
    assert created["spec"]["suspend"] is False
    assert env.list("workloads") == []


def test_unlabelled_job_goes_to_the_default_local_queue(env: Env) -> None:
    env.apply(local_queue("default", "cq").obj())
    created = env.create(job("plain").obj())
    assert created["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "default"
    assert created["spec"]["suspend"] is True


def test_manage_jobs_without_queue_name(tmp_path: Any) -> None:
    env = Env(tmp_path / "s.db", QueueConfig(manageJobsWithoutQueueName=True), fits_by_count)
    try:
        created = env.create(job("plain").gpus(1).obj())
        assert created["spec"]["suspend"] is True
        env.step()
        wl = env.workload_of("plain")
        assert "queueName" not in wl["spec"]
        assert conditions(wl, "QuotaReserved")["QuotaReserved"][:2] == ("False", "Inadmissible")
        assert env.get("jobs", "plain")["spec"]["suspend"] is True
    finally:
        env.close()


def test_reapplying_a_managed_job_keeps_what_the_controller_owns(env: Env) -> None:
    env.apply(flavor("default-flavor").node_label("gpu", "yes").obj(), local_queue("lq", "cq").obj())
    from .builders import cluster_queue

    env.apply(cluster_queue("cq").quota(GPU, 4).obj())
    manifest = job("train").queue("lq").gpus(1).obj()
    env.apply(manifest)
    env.settle()
    running = env.get("jobs", "train")
    assert running["spec"]["suspend"] is False
    results = env.service.apply_many([("again", 1, manifest)])
    assert results[0].action == "unchanged"
    assert env.get("jobs", "train")["spec"] == running["spec"]


@pytest.mark.parametrize(
    ("flavor_spec", "template_selector", "want_selector", "want_tolerations"),
    [
        ({}, None, None, None),
        ({"nodeLabels": {"gpu": "a100"}}, None, {"gpu": "a100"}, None),
        ({"nodeLabels": {"gpu": "a100"}}, {"zone": "z1"}, {"zone": "z1", "gpu": "a100"}, None),
        (
            {"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]},
            None,
            None,
            [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
    ],
)
def test_start_and_stop_restore_the_template(
    flavor_spec: JSON, template_selector: dict[str, str] | None, want_selector: Any, want_tolerations: Any
) -> None:
    builder = job("j").queue("lq").gpus(1).parallelism(4).min_parallelism(2)
    if template_selector:
        builder.node_selector(**template_selector)
    body = builder.obj()
    body["spec"]["suspend"] = True
    wl = {
        "spec": {"podSets": jobs.pod_sets(body, QueueConfig())},
        "status": {
            "admission": {
                "clusterQueue": "cq",
                "podSetAssignments": [{"name": "main", "flavors": {GPU: "f"}, "count": 3}],
            }
        },
    }
    started = jobs.start(body, wl, {"f": {"spec": flavor_spec}})
    pod = started["spec"]["template"]["spec"]
    assert started["spec"]["suspend"] is False and started["spec"]["parallelism"] == 3
    assert pod.get("nodeSelector") == want_selector
    assert pod.get("tolerations") == want_tolerations
    stopped = jobs.stop(started, wl)
    assert stopped["spec"]["suspend"] is True and stopped["spec"]["parallelism"] == 4
    assert stopped["spec"]["template"] == body["spec"]["template"]


def test_conflicting_node_selector_fails_the_start() -> None:
    body = job("j").node_selector(gpu="h100").obj()
    wl = {"status": {"admission": {"podSetAssignments": [{"name": "main", "flavors": {GPU: "f"}}]}}}
    with pytest.raises(jobs.StartError, match="conflict for nodeSelector"):
        jobs.start(body, wl, {"f": {"spec": {"nodeLabels": {"gpu": "a100"}}}})


@pytest.mark.parametrize(
    ("status", "want"),
    [
        ({}, ("", True, False)),
        ({"conditions": [{"type": "Complete", "status": "True"}]}, ("Job finished successfully", True, True)),
        (
            {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]},
            ("BackoffLimitExceeded", False, True),
        ),
        ({"conditions": [{"type": "Complete", "status": "False"}]}, ("", True, False)),
    ],
)
def test_job_finished(status: JSON, want: tuple[str, bool, bool]) -> None:
    assert jobs.finished({"status": status}) == want


@pytest.mark.parametrize(
    ("spec", "status", "ready"),
    [
        ({"parallelism": 2}, {"ready": 1}, False),
        ({"parallelism": 2}, {"ready": 1, "succeeded": 1}, True),
        ({"parallelism": 4, "completions": 2}, {"ready": 2}, True),
    ],
)
def test_pods_ready(spec: JSON, status: JSON, ready: bool) -> None:
    assert jobs.pods_ready({"spec": spec, "status": status}) is ready
