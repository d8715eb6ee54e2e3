"""The batch scenario's objects and how polls become JobRecords (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotilla.api.catalog import build_registry
from flotilla.api.loader import decode
from flotilla.loadgen.batch import (
    JobTrack,
    Snapshot,
    covered_resources,
    job_manifest,
    observe,
    plan_jobs,
    queue_objects,
    queue_samples,
    refine,
)
from flotilla.loadgen.batchrun import demo_queue_docs, recordings

ORIGIN = 1_700_000_000.0  # the run's start, seconds since the epoch
AUDIO = [Path("/rec/a.flac"), Path("/rec/b.flac"), Path("/rec/c.flac")]
MODELS: Any = {"medium": "whisper-tiny.en", "large": "whisper-base"}


def stamp(t: float) -> str:
    """A Kubernetes timestamp (whole seconds) of run second t."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ORIGIN + t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_plan_alternates_sizes_and_round_robins_recordings() -> None:
    plans = plan_jobs("bench-x", 2, AUDIO, MODELS)
    assert [(p.name, p.queue, p.audio.name, p.model) for p in plans] == [
        ("bench-x-medium-0", "local-queue-medium", "a.flac", "whisper-tiny.en"),
        ("bench-x-large-0", "local-queue-large", "b.flac", "whisper-base"),
        ("bench-x-medium-1", "local-queue-medium", "c.flac", "whisper-tiny.en"),
        ("bench-x-large-1", "local-queue-large", "a.flac", "whisper-base"),
    ]


def test_the_shipped_recordings_are_found() -> None:
    assert [p.suffix for p in recordings()] == [".flac"] * len(recordings()) and len(recordings()) >= 2


@pytest.mark.parametrize(
    ("slices", "medium", "large"),
    [
        ("mig", "nvidia.com/mig-1g.5gb", "nvidia.com/mig-3g.20gb"),
        ("whole-gpu", "nvidia.com/gpu", "nvidia.com/gpu"),
    ],
)
def test_job_manifests_run_the_transcriber_and_validate(slices: Any, medium: str, large: str) -> None:
    registry = build_registry()
    med, lg = plan_jobs("bench-x", 1, AUDIO, MODELS)
    body = job_manifest(
        med, run_label="bench-x", recordings_dir=Path("/rec"), transcripts_dir=Path("/out/t"), slices=slices
    )
    decode(body, registry)  # a valid batch/v1 Job
    c = body["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] + c["args"] == [
        "flotilla",
        "asr",
        "transcribe",
        "/rec/a.flac",
        "--model",
        "whisper-tiny.en",
        "--output-dir",
        "/out/t/bench-x-medium-0",
    ]
    assert c["resources"]["limits"] == {"memory": "1Gi", medium: 1}
    assert body["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "local-queue-medium"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v["hostPath"]["path"] for v in body["spec"]["template"]["spec"]["volumes"]}
    assert mounts == volumes == {"recordings": "/rec", "transcripts": "/out/t"}  # mounted at their host paths
    large_body = job_manifest(lg, run_label="x", recordings_dir=Path("/rec"), transcripts_dir=Path("/o"), slices=slices)
    assert large_body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][large] == 1


def test_the_command_override_keeps_the_environment() -> None:
    (plan,) = plan_jobs("b", 1, AUDIO, MODELS)[:1]
    body = job_manifest(
        plan,
        run_label="b",
        recordings_dir=Path("/rec"),
        transcripts_dir=Path("/o"),
        command="python -c 'import time; time.sleep(0.2)'",
    )
    c = body["spec"]["template"]["spec"]["containers"][0]
    assert (c["command"], c["args"]) == (["python", "-c", "import time; time.sleep(0.2)"], [])
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env == {"ITERATION": "0", "AUDIO": "/rec/a.flac", "MODEL": "whisper-tiny.en", "OUTPUT_DIR": "/o/b-medium-0"}


def test_queue_objects_are_the_demos_and_cover_whole_gpus_when_asked() -> None:
    docs = demo_queue_docs()
    assert [d["kind"] for d in docs] == ["Namespace", "ResourceFlavor", "ClusterQueue", "LocalQueue", "LocalQueue"]
    mig = queue_objects(docs, "mig", gpus=2)
    assert mig == docs
    (cq,) = [o for o in queue_objects(docs, "whole-gpu", gpus=2) if o["kind"] == "ClusterQueue"]
    assert "nvidia.com/gpu" in covered_resources(cq)
    assert {"name": "nvidia.com/gpu", "nominalQuota": 2} in cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    assert "nvidia.com/gpu" not in covered_resources(next(d for d in docs if d["kind"] == "ClusterQueue"))
    registry = build_registry()
    for obj in queue_objects(docs, "whole-gpu", gpus=2):
        decode(obj, registry)


@pytest.mark.parametrize(
    ("stamp_at", "after", "by", "expected"),
    [
        (None, 2.0, 3.0, 2.5),  # no timestamp: the middle of the poll window
        (2.0, 1.6, 2.6, 2.3),  # overlap [2.0, 2.6]
        (1.0, 1.5, 2.5, 1.75),  # overlap [1.5, 2.0]
        (10.0, 1.0, 2.0, 1.5),  # a server clock that disagrees: the window alone
    ],
)
def test_refine(stamp_at: float | None, after: float, by: float, expected: float) -> None:
    assert refine(stamp_at, after, by) == pytest.approx(expected)


def workload(job: str, reserved_at: float, cq: str = "cluster-queue") -> dict[str, Any]:
    return {
        "metadata": {"name": f"job-{job}-abcde", "ownerReferences": [{"kind": "Job", "name": job}]},
        "status": {
            "conditions": [{"type": "QuotaReserved", "status": "True", "lastTransitionTime": stamp(reserved_at)}],
            "admission": {"clusterQueue": cq},
        },
    }


def pod(job: str, started_at: float, state: str = "running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{job}-0-xyz",
            "uid": f"uid-{job}",
            "labels": {"job-name": job},
            "annotations": {"flotilla.dev/devices": "GPU-1234:1g.5gb"},
        },
        "spec": {"nodeName": "gpu-node-0"},
        "status": {"containerStatuses": [{"state": {state: {"startedAt": stamp(started_at)}}}]},
    }


def claim(pod_name: str) -> dict[str, Any]:
    return {
        "spec": {
            "profile": "3g.20gb",
            "podRef": {"name": pod_name},
            "gpuUUID": "GPU-abcd",
            "nodename": "gpu-node-0",
            "migPlacement": {"start": 4, "size": 4},
        }
    }


def job(name: str, condition: str | None = None, at: float = 0.0, **status: int) -> dict[str, Any]:
    conds = [{"type": condition, "status": "True", "lastTransitionTime": stamp(at), "message": "BackoffLimitExceeded"}]
    return {"metadata": {"name": name}, "status": {**status, "conditions": conds if condition else []}}


def test_observe_follows_a_job_through_its_life() -> None:
    (plan,) = plan_jobs("b", 1, AUDIO, MODELS)[:1]
    tracks = {plan.name: JobTrack(plan, created_at=0.2)}
    name = plan.name
    # poll 1 in (0.0, 0.5]: admitted (stamp second 0)
    observe(tracks, Snapshot(jobs=[job(name)], workloads=[workload(name, 0.0)]), 0.0, 0.5, ORIGIN)
    t = tracks[name]
    assert (t.status, t.cluster_queue) == ("admitted", "cluster-queue")
    assert t.admitted_at == pytest.approx(0.35)  # the middle of [0.2 (created), 0.5]
    # poll 2 in (0.5, 1.5]: the pod started at second 1, holding a 3g.20gb slice
    snap = Snapshot(
        jobs=[job(name, active=1)],
        workloads=[workload(name, 0.0)],
        pods=[pod(name, 1.0)],
        claims=[claim(f"{name}-0-xyz")],
    )
    observe(tracks, snap, 0.5, 1.5, ORIGIN)
    assert t.status == "running" and t.started_at == pytest.approx(1.25)  # [1.0, 1.5]
    assert (t.node, t.gpu, t.slice, t.placement) == ("gpu-node-0", "GPU-abcd", "mig-3g.20gb", "4-7")
    # poll 3 in (1.5, 3.2]: complete at second 3; the claim is gone
    snap = Snapshot(jobs=[job(name, "Complete", 3.0, succeeded=1)], pods=[pod(name, 1.0, "terminated")])
    observe(tracks, snap, 1.5, 3.2, ORIGIN)
    r = t.record()
    assert (r.status, r.attempts) == ("succeeded", 1) and r.finished_at == pytest.approx(3.1)
    assert (r.name, r.queue, r.item, r.slice, r.placement) == (
        "whisper/b-medium-0",
        "local-queue-medium",
        "a",
        "mig-3g.20gb",
        "4-7",
    )
    assert r.queue_wait == pytest.approx(0.15) and r.completion_time == pytest.approx(2.9)


def test_a_job_whose_life_fits_one_poll_keeps_its_order_and_failures_say_why() -> None:
    (plan,) = plan_jobs("b", 1, AUDIO, MODELS)[:1]
    tracks = {plan.name: JobTrack(plan, created_at=0.0)}
    snap = Snapshot(
        jobs=[job(plan.name, "Failed", 0.0, failed=3)],
        workloads=[workload(plan.name, 0.0)],
        pods=[pod(plan.name, 0.0, "terminated")],
    )
    observe(tracks, snap, 0.0, 0.8, ORIGIN)
    r = tracks[plan.name].record()
    assert r.status == "failed" and r.message == "BackoffLimitExceeded" and r.attempts == 3
    assert r.admitted_at is not None and r.started_at is not None and r.finished_at is not None
    assert 0.0 <= r.admitted_at <= r.started_at <= r.finished_at <= 0.8
    assert (r.gpu, r.slice) == ("GPU-1234", "mig-1g.5gb")  # from the pod's annotation when no claim was seen


def test_other_objects_are_ignored_and_queue_samples_count_running_jobs() -> None:
    plans = plan_jobs("b", 1, AUDIO, MODELS)
    tracks = {p.name: JobTrack(p, created_at=0.0) for p in plans}
    snap = Snapshot(
        jobs=[job("someone-else", "Complete", 0.0)],
        workloads=[workload(plans[0].name, 0.0), workload("someone-else", 0.0, cq="other")],
        pods=[pod(plans[0].name, 0.0)],
        cluster_queues=[
            {"metadata": {"name": "cluster-queue"}, "status": {"pendingWorkloads": 3, "admittedWorkloads": 2}},
            {"metadata": {"name": "other"}, "status": {"pendingWorkloads": 9}},
        ],
    )
    observe(tracks, snap, 0.0, 1.0, ORIGIN)
    (sample,) = queue_samples(snap, tracks, 1.0)
    assert (sample.t, sample.queue, sample.pending, sample.admitted, sample.running) == (1.0, "cluster-queue", 3, 2, 1)
    assert tracks[plans[1].name].status == "pending"
