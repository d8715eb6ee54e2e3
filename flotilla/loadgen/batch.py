"""The study's batch scenario, pure: its Jobs, its queues, and how a run's observations become records.

Each iteration creates one "medium" and one "large" Whisper transcription Job (batch/v1, labelled
`kueue.x-k8s.io/queue-name`), as the study's kube-burner config does (jobIterations x {medium, large}).
MIG slices (DAS variant, the default): medium asks `nvidia.com/mig-1g.5gb`, large `nvidia.com/mig-3g.20gb`;
`whole-gpu` (the Kueue variant): both ask `nvidia.com/gpu: 1`. Requests (250m CPU, 1Gi) are the demo's.
Recordings and transcripts are hostPath volumes mounted at their own absolute host path, so the
absolute paths in the command mean the same in Flotilla's local runtime and on Kubernetes.

Times: the poller sees each event (quota reserved, first container started, Job finished) in the poll
window (previous poll, this poll]; Kubernetes timestamps have whole seconds, so the event is also in
[stamp, stamp + 1). `refine` takes the middle of the overlap of the two (the poll window alone when
the server's clock disagrees), so a time is good to about half the poll interval or better.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from flotilla.runs.records import JobRecord, QueueSample

JSON = dict[str, Any]
Size = Literal["medium", "large"]
Slices = Literal["mig", "whole-gpu"]
NAMESPACE = "whisper"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
RUN_LABEL = "flotilla.dev/bench-run"
LOCAL_QUEUES: dict[Size, str] = {"medium": "local-queue-medium", "large": "local-queue-large"}
RESOURCES: dict[Slices, dict[Size, str]] = {
    "mig": {"medium": "nvidia.com/mig-1g.5gb", "large": "nvidia.com/mig-3g.20gb"},
    "whole-gpu": {"medium": "nvidia.com/gpu", "large": "nvidia.com/gpu"},
}
DEFAULT_MODELS: dict[Size, str] = {"medium": "whisper-tiny.en", "large": "whisper-base"}
TRANSCRIBE = ["flotilla", "asr", "transcribe"]


@dataclass(frozen=True)
class JobPlan:
    """One Job of the scenario."""

    name: str
    size: Size
    iteration: int
    audio: Path
    model: str

    @property
    def queue(self) -> str:
        return LOCAL_QUEUES[self.size]


def plan_jobs(prefix: str, iterations: int, recordings: Sequence[Path], models: Mapping[Size, str]) -> list[JobPlan]:
    """medium-0, large-0, medium-1, ...: recordings taken round-robin in creation order."""
    if not recordings:
        raise ValueError("no recordings to transcribe")
    out: list[JobPlan] = []
    for i in range(iterations):
        for size in ("medium", "large"):
            audio = recordings[len(out) % len(recordings)]
            out.append(JobPlan(f"{prefix}-{size}-{i}", size, i, audio, models[size]))
    return out


def job_manifest(
    plan: JobPlan,
    *,
    run_label: str,
    recordings_dir: Path,
    transcripts_dir: Path,
    slices: Slices = "mig",
    command: str | None = None,
    namespace: str = NAMESPACE,
) -> JSON:
    """The Job for `plan`: `flotilla asr transcribe AUDIO --model M --output-dir DIR/<job>` (or `command`,
    split like a shell would, with AUDIO, MODEL and OUTPUT_DIR in its environment)."""
    output_dir = transcripts_dir / plan.name
    if command is None:
        argv, args = list(TRANSCRIBE), [str(plan.audio), "--model", plan.model, "--output-dir", str(output_dir)]
    else:
        argv, args = shlex.split(command), []
    env = {
        "ITERATION": str(plan.iteration),
        "AUDIO": str(plan.audio),
        "MODEL": plan.model,
        "OUTPUT_DIR": str(output_dir),
    }
    container: JSON = {
        "name": "whisper-transcriber",
        "image": "flotilla/asr:latest",  # recorded, never pulled by the local runtime
        "command": argv,
        "args": args,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {
            "requests": {"cpu": "250m", "memory": "1Gi"},
            "limits": {"memory": "1Gi", RESOURCES[slices][plan.size]: 1},
        },
        "volumeMounts": [
            {"name": "recordings", "mountPath": str(recordings_dir), "readOnly": True},
            {"name": "transcripts", "mountPath": str(transcripts_dir)},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": plan.name,
            "namespace": namespace,
            "labels": {QUEUE_LABEL: plan.queue, "app.kubernetes.io/part-of": "speech-to-summary", RUN_LABEL: run_label},
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "completionMode": "Indexed",
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": {RUN_LABEL: run_label}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [
                        {"name": "recordings", "hostPath": {"path": str(recordings_dir), "type": "Directory"}},
                        {
                            "name": "transcripts",
                            "hostPath": {"path": str(transcripts_dir), "type": "DirectoryOrCreate"},
                        },
                    ],
                },
            },
        },
    }


def queue_objects(demo_docs: Sequence[JSON], slices: Slices, gpus: int) -> list[JSON]:
    """The demo's Namespace, ResourceFlavor, ClusterQueue and LocalQueues; for whole GPUs the
    ClusterQueue also covers `nvidia.com/gpu` (nominalQuota = `gpus`), or no Job could be admitted."""
    out = [_copy(d) for d in demo_docs]
    if slices == "whole-gpu":
        for obj in out:
            if obj.get("kind") == "ClusterQueue":
                group = obj["spec"]["resourceGroups"][0]
                if "nvidia.com/gpu" not in group["coveredResources"]:
                    group["coveredResources"].append("nvidia.com/gpu")
                    group["flavors"][0]["resources"].append({"name": "nvidia.com/gpu", "nominalQuota": gpus})
    return out


def covered_resources(cluster_queue: JSON) -> set[str]:
    return {r for g in (cluster_queue.get("spec") or {}).get("resourceGroups") or [] for r in g["coveredResources"]}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# -- observing ------------------------------------------------------------------------------------------
def epoch(stamp: str | None) -> float | None:
    """A Kubernetes timestamp as seconds since the epoch (None when absent or unreadable)."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def refine(stamp: float | None, seen_after: float, seen_by: float) -> float:
    """When an event happened: the middle of (poll window) overlap [stamp, stamp + 1), or of the window."""
    lo, hi = seen_after, max(seen_after, seen_by)
    if stamp is not None:
        a, b = max(lo, stamp), min(hi, stamp + 1)
        if a <= b:
            lo, hi = a, b
    return (lo + hi) / 2


@dataclass
class JobTrack:
    """What is known of one Job so far (times in run seconds)."""

    plan: JobPlan
    created_at: float
    admitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    status: Literal["pending", "admitted", "running", "succeeded", "failed"] = "pending"
    pods: set[str] = field(default_factory=set)
    attempts: int = 0
    cluster_queue: str = ""
    node: str = ""
    gpu: str = ""
    slice: str = ""
    placement: str = ""
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")

    def record(self, namespace: str = NAMESPACE) -> JobRecord:
        return JobRecord(
            name=f"{namespace}/{self.plan.name}",
            queue=self.plan.queue,
            cluster_queue=self.cluster_queue,
            item=self.plan.audio.stem,
            created_at=self.created_at,
            admitted_at=self.admitted_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            status=self.status,
            attempts=max(self.attempts, len(self.pods), 1),
            node=self.node,
            gpu=self.gpu,
            slice=self.slice,
            placement=self.placement,
            message=self.message,
        )


@dataclass(frozen=True)
class Snapshot:
    """One poll: the namespace's Jobs, Workloads, Pods and AllocationClaims, and the ClusterQueues."""

    jobs: Sequence[JSON] = ()
    workloads: Sequence[JSON] = ()
    pods: Sequence[JSON] = ()
    claims: Sequence[JSON] = ()
    cluster_queues: Sequence[JSON] = ()


def _condition(obj: JSON, kind: str) -> JSON | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return dict(c)
    return None


def _owner_job(wl: JSON) -> str | None:
    for ref in (wl.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Job":
            return str(ref.get("name"))
    return None


def _container_started(pod: JSON) -> str | None:
    """The earliest startedAt of the pod's containers (running or terminated), or None if none started."""
    stamps = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        for phase in ("running", "terminated"):
            if (state.get(phase) or {}).get("startedAt"):
                stamps.append(str(state[phase]["startedAt"]))
    return min(stamps) if stamps else None


def _slice_name(profile: str | None) -> str:
    return "" if not profile else "gpu" if profile == "gpu" else f"mig-{profile}"


def observe(tracks: Mapping[str, JobTrack], snap: Snapshot, seen_after: float, seen_by: float, origin: float) -> None:
    """Update `tracks` (by Job name) from one poll taken in (seen_after, seen_by] (run seconds);
    `origin` is the run's start as seconds since the epoch (to read the server's timestamps)."""

    def when(stamp: str | None, floor: float) -> float:
        """The event's time: seen in (seen_after, seen_by], not before `floor` (the previous event)."""
        at = epoch(stamp)
        return refine(None if at is None else at - origin, max(seen_after, floor), seen_by)

    for wl in snap.workloads:
        track = tracks.get(_owner_job(wl) or "")
        if track is None:
            continue
        status = wl.get("status") or {}
        reserved = _condition(wl, "QuotaReserved")
        if track.admitted_at is None and (reserved or status.get("admission")):
            track.admitted_at = when((reserved or {}).get("lastTransitionTime"), track.created_at)
            if track.status == "pending":
                track.status = "admitted"
        queue = (status.get("admission") or {}).get("clusterQueue")
        if queue:
            track.cluster_queue = str(queue)
    pod_job: dict[str, JobTrack] = {}
    for pod in snap.pods:
        meta = pod.get("metadata") or {}
        track = tracks.get(str((meta.get("labels") or {}).get("job-name", "")))
        if track is None:
            continue
        pod_job[str(meta.get("name"))] = track
        track.pods.add(str(meta.get("uid") or meta.get("name")))
        track.node = str((pod.get("spec") or {}).get("nodeName") or track.node)
        devices = str((meta.get("annotations") or {}).get("flotilla.dev/devices") or "")
        if devices and not track.placement:  # a claim, once seen, says more (the slots too)
            gpu, _, profile = devices.split(",")[0].partition(":")
            track.gpu, track.slice = gpu, _slice_name(profile)
        started = _container_started(pod)
        if started and track.started_at is None:
            track.started_at = when(started, track.created_at if track.admitted_at is None else track.admitted_at)
            if not track.finished:
                track.status = "running"
    for claim in snap.claims:
        spec = claim.get("spec") or {}
        track = pod_job.get(str((spec.get("podRef") or {}).get("name", "")))
        if track is None:
            continue
        placement = spec.get("migPlacement") or {}
        start, size = int(placement.get("start", 0)), int(placement.get("size", 1))
        track.placement = f"{start}-{start + size - 1}"
        track.gpu = str(spec.get("gpuUUID") or track.gpu)
        track.slice = _slice_name(spec.get("profile")) or track.slice
        track.node = str(spec.get("nodename") or track.node)
    for job in snap.jobs:
        track = tracks.get(str((job.get("metadata") or {}).get("name", "")))
        if track is None or track.finished:
            continue
        status = job.get("status") or {}
        track.attempts = max(track.attempts, sum(int(status.get(k) or 0) for k in ("active", "succeeded", "failed")))
        for kind, outcome in (("Complete", "succeeded"), ("Failed", "failed")):
            cond = _condition(job, kind)
            if cond:
                floor = max(t for t in (track.created_at, track.admitted_at, track.started_at) if t is not None)
                track.finished_at = when(cond.get("lastTransitionTime"), floor)
                track.status = outcome  # type: ignore[assignment]
                if kind == "Failed":
                    track.message = str(cond.get("message") or cond.get("reason") or "failed")
                break


def queue_samples(snap: Snapshot, tracks: Mapping[str, JobTrack], t: float) -> list[QueueSample]:
    """A QueueSample per ClusterQueue the scenario's LocalQueues use (running: the scenario's Jobs there)."""
    used = {tr.cluster_queue for tr in tracks.values() if tr.cluster_queue} or {"cluster-queue"}
    out = []
    for cq in snap.cluster_queues:
        name = str((cq.get("metadata") or {}).get("name"))
        if name not in used:
            continue
        status = cq.get("status") or {}
        running = sum(1 for tr in tracks.values() if tr.cluster_queue == name and tr.status == "running")
        out.append(
            QueueSample(
                t=t,
                queue=name,
                pending=int(status.get("pendingWorkloads") or 0),
                admitted=int(status.get("admittedWorkloads") or 0),
                running=running,
            )
        )
    return out
