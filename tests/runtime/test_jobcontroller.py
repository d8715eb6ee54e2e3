"""The Job controller as a pure function: which pods to create or stop, and the Job's status."""

from __future__ import annotations

import random
from typing import Any

import pytest

from flotilla.queue.workloads import rfc3339
from flotilla.runtime.jobs import INDEX_KEY, JobContext, format_indexes, new_pod, reconcile_job

NOW = 1_800_000_000.0
JSON = dict[str, Any]


def job(**spec: Any) -> JSON:
    status = spec.pop("status", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}, **spec},
        "status": status,
    }


def pod(phase: str, index: int | None = None, finished: float | None = None, restarts: int = 0, **meta: Any) -> JSON:
    annotations = {INDEX_KEY: str(index)} if index is not None else {}
    state: JSON = {"running": {}}
    if phase in ("Succeeded", "Failed"):
        state = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": rfc3339(finished or NOW)}}
    return {
        "metadata": {"name": f"p{random.random()}", "annotations": annotations, **meta},
        "status": {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts, "state": state}]},
    }


def ctx(backoff: float = 10.0) -> JobContext:
    return JobContext(NOW, random.Random(1), backoff_base=backoff)


@pytest.mark.parametrize(
    ("spec", "pods", "create", "stop"),
    [
        ({"parallelism": 2, "completions": 5}, [], 2, 0),
        ({"parallelism": 3, "completions": 2}, [], 2, 0),  # never more than what is left
        ({"parallelism": 2, "completions": 3}, [pod("Succeeded"), pod("Succeeded")], 1, 0),
        ({"parallelism": 2, "completions": 3}, [pod("Running"), pod("Succeeded")], 1, 0),
        ({"parallelism": 1, "completions": 3}, [pod("Running"), pod("Running")], 0, 1),  # scaled down
        ({"parallelism": 2}, [], 2, 0),  # work queue
        ({"parallelism": 2}, [pod("Succeeded"), pod("Running")], 0, 0),  # one succeeded: no more pods
        ({"parallelism": 0, "completions": 2}, [], 0, 0),
    ],
)
def test_non_indexed_scaling(spec: JSON, pods: list[JSON], create: int, stop: int) -> None:
    plan = reconcile_job(job(**spec), pods, ctx())
    assert (len(plan.create), len(plan.stop)) == (create, stop)


def test_indexed_creates_the_lowest_missing_indexes() -> None:
    j = job(parallelism=2, completions=5, completionMode="Indexed")
    plan = reconcile_job(j, [pod("Succeeded", 0), pod("Running", 2)], ctx())
    assert [p["metadata"]["annotations"][INDEX_KEY] for p in plan.create] == ["1"]
    created = plan.create[0]
    assert created["metadata"]["labels"][INDEX_KEY] == "1" and created["spec"]["hostname"] == "j-1"
    assert created["metadata"]["name"].startswith("j-1-")
    assert plan.status is not None and plan.status["completedIndexes"] == "0" and plan.status["active"] == 2


def test_pods_are_owned_by_the_job_and_labelled_as_kubernetes_does() -> None:
    p = new_pod(job(), None, random.Random(0))
    ref = p["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "Job" and ref["uid"] == "u1" and ref["controller"] is True
    labels = p["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "j" and labels["controller-uid"] == "u1"
    assert p["metadata"]["namespace"] == "ns" and len(p["metadata"]["name"]) == len("j-xxxxx")


@pytest.mark.parametrize(
    ("spec", "pods", "condition"),
    [
        ({"completions": 2}, [pod("Succeeded"), pod("Succeeded")], "Complete:CompletionsReached"),
        (
            {"completionMode": "Indexed", "completions": 2},
            [pod("Succeeded", 0), pod("Succeeded", 1)],
            "Complete:CompletionsReached",
        ),
        ({"backoffLimit": 1}, [pod("Failed"), pod("Failed")], "Failed:BackoffLimitExceeded"),
        ({"backoffLimit": 1}, [pod("Running", restarts=2)], "Failed:BackoffLimitExceeded"),  # OnFailure restarts count
        ({"backoffLimit": 0}, [pod("Failed")], "Failed:BackoffLimitExceeded"),
        ({"backoffLimit": 1}, [pod("Failed")], None),
        (
            {"activeDeadlineSeconds": 10, "status": {"startTime": rfc3339(NOW - 11)}},
            [pod("Running")],
            "Failed:DeadlineExceeded",
        ),
        ({"activeDeadlineSeconds": 10, "status": {"startTime": rfc3339(NOW - 5)}}, [pod("Running")], None),
    ],
)
def test_terminal_conditions(spec: JSON, pods: list[JSON], condition: str | None) -> None:
    plan = reconcile_job(job(**spec), pods, ctx(backoff=0))
    conditions = [c for c in (plan.status or {}).get("conditions") or [] if c["status"] == "True"]
    got = f"{conditions[0]['type']}:{conditions[0]['reason']}" if conditions else None
    assert got == condition
    if condition and condition.startswith("Failed"):
        assert len(plan.stop) == sum(1 for p in pods if p["status"]["phase"] == "Running") and not plan.create


def test_an_unsupported_device_fails_the_job_at_once() -> None:
    failed = pod("Failed")
    failed["status"].update(reason="UnsupportedDevice", message="no GPU offers mig-7g.80gb")
    plan = reconcile_job(job(backoffLimit=6), [failed], ctx())
    (cond,) = plan.status["conditions"]  # type: ignore[index]
    assert (cond["type"], cond["reason"]) == ("Failed", "UnsupportedDevice") and "7g.80gb" in cond["message"]


def test_replacement_waits_for_the_failure_backoff() -> None:
    j = job(backoffLimit=6, completions=1)
    plan = reconcile_job(j, [pod("Failed", finished=NOW - 5)], ctx(backoff=10))
    assert not plan.create and plan.wake_at == NOW + 5  # 10 s after the failure
    plan = reconcile_job(j, [pod("Failed", finished=NOW - 30), pod("Failed", finished=NOW - 15)], ctx(backoff=10))
    assert not plan.create and plan.wake_at == NOW + 5  # two failures: 20 s after the last
    plan = reconcile_job(j, [pod("Failed", finished=NOW - 11)], ctx(backoff=10))
    assert len(plan.create) == 1


def test_suspend_stops_running_pods_and_resume_resets_the_start_time() -> None:
    j = job(suspend=True, status={"startTime": rfc3339(NOW - 100)})
    plan = reconcile_job(j, [pod("Running"), pod("Succeeded")], ctx())
    assert len(plan.stop) == 1 and not plan.create
    assert plan.status is not None and "startTime" not in plan.status
    assert [(c["type"], c["status"]) for c in plan.status["conditions"]] == [("Suspended", "True")]
    resumed = job(status=plan.status)
    plan = reconcile_job(resumed, [], ctx())
    assert plan.status is not None and plan.status["startTime"] == rfc3339(NOW)
    assert [(c["type"], c["status"], c["reason"]) for c in plan.status["conditions"]] == [
        ("Suspended", "False", "JobResumed")
    ]
    assert len(plan.create) == 1


def test_ttl_after_finished() -> None:
    done = {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": rfc3339(NOW - 30)}]}
    assert reconcile_job(job(ttlSecondsAfterFinished=60, status=done), [], ctx()).wake_at == NOW + 30
    assert reconcile_job(job(ttlSecondsAfterFinished=10, status=done), [], ctx()).delete_job
    assert not reconcile_job(job(status=done), [], ctx()).delete_job  # no TTL: kept


def test_status_unchanged_means_no_write() -> None:
    j = job(completions=1)
    plan = reconcile_job(j, [pod("Running")], ctx())
    again = reconcile_job({**j, "status": plan.status}, [pod("Running")], ctx())
    assert again.status is None and not again.create


@pytest.mark.parametrize(
    ("indexes", "text"), [([], ""), ([0], "0"), ([0, 1, 2, 4], "0-2,4"), ([5, 3, 4, 9, 7, 8], "3-5,7-9")]
)
def test_completed_indexes_format(indexes: list[int], text: str) -> None:
    assert format_indexes(indexes) == text
