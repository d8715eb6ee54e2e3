"""The batch/v1 Job controller (kube-controller-manager's pkg/controller/job) as a pure function.

`reconcile_job(job, pods, ctx)` reads a Job and the pods it owns and returns a `JobPlan`: pods to
create, pods to stop, the Job's new status, whether to delete the Job, and when to look again.

Semantics kept from Kubernetes:
- NonIndexed with `completions` N: keep min(parallelism, N - succeeded) pods running until N pods
  succeeded. Without `completions` (a work queue): `parallelism` pods; done once one pod
  succeeded and none is running.
- Indexed: one success per index 0..N-1; pods carry the index (label and annotation
  `batch.kubernetes.io/job-completion-index`, env `JOB_COMPLETION_INDEX`, hostname
  `<job>-<index>`); `status.completedIndexes` in Kubernetes' interval form ("0-2,4").
- Failures: failed pods plus container restarts (restartPolicy OnFailure) count against
  `backoffLimit`; a replacement pod waits `backoff x 2^(failures-1)` (capped) after the last
  failure. Over the limit: condition Failed, reason BackoffLimitExceeded.
- `activeDeadlineSeconds` from `status.startTime`: Failed, reason DeadlineExceeded.
- `suspend`: running pods are stopped, condition Suspended; resuming resets `startTime`.
- `ttlSecondsAfterFinished`: the Job (and its pods) is deleted that long after it finished.
- A pod that failed with reason `UnsupportedDevice` (it asks for a device no node can ever
  offer) fails the Job at once: a replacement could not run either.
Finished pods are kept (their logs stay readable) until the Job is deleted.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.queue.workloads import copy_json, parse_time, rfc3339

JSON = dict[str, Any]
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
UNSUPPORTED_DEVICE = "UnsupportedDevice"
MANAGED_LABELS = ("job-name", "controller-uid", "batch.kubernetes.io/job-name", "batch.kubernetes.io/controller-uid")


@dataclass(frozen=True)
class JobContext:
    now: float
    rng: random.Random
    backoff_base: float = 10.0  # seconds; Kubernetes' DefaultJobPodFailureBackOff
    backoff_max: float = 360.0  # Kubernetes' MaxJobPodFailureBackOff


@dataclass
class JobPlan:
    create: list[JSON] = field(default_factory=list)
    stop: list[tuple[str, str]] = field(default_factory=list)  # (pod name, reason): delete these pods
    status: JSON | None = None  # the new status when it changed
    delete_job: bool = False
    wake_at: float | None = None


# -- reading pods ---------------------------------------------------------------------------------
def phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_finished_pod(pod: Mapping[str, Any]) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_terminating(pod: Mapping[str, Any]) -> bool:
    """Deleted, and held by the runtime's finalizer until its processes have stopped."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def restarts(pod: Mapping[str, Any]) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


def pod_index(pod: Mapping[str, Any]) -> int | None:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_KEY)
    return int(raw) if raw is not None and str(raw).isdigit() else None


def finished_at(pod: Mapping[str, Any]) -> float:
    stamps = [
        parse_time(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    return max(stamps, default=0.0)


def job_condition(job: Mapping[str, Any], ctype: str) -> bool:
    return any(
        c.get("type") == ctype and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or []
    )


def is_finished_job(job: Mapping[str, Any]) -> bool:
    return job_condition(job, "Complete") or job_condition(job, "Failed")


def format_indexes(indexes: Sequence[int]) -> str:
    """Kubernetes' completedIndexes form: sorted, runs collapsed ("0-2,4,6-7")."""
    out: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def _set_condition(status: JSON, ctype: str, value: bool, reason: str, message: str, now: float) -> None:
    conditions: list[JSON] = status.setdefault("conditions", [])
    wanted = "True" if value else "False"
    for c in conditions:
        if c.get("type") == ctype:
            if c.get("status") != wanted:
                c["lastTransitionTime"] = rfc3339(now)
            c.update(status=wanted, reason=reason, message=message, lastProbeTime=rfc3339(now))
            return
    conditions.append(
        {
            "type": ctype,
            "status": wanted,
            "reason": reason,
            "message": message,
            "lastProbeTime": rfc3339(now),
            "lastTransitionTime": rfc3339(now),
        }
    )


# -- making pods ----------------------------------------------------------------------------------
def new_pod(job: Mapping[str, Any], index: int | None, rng: random.Random) -> JSON:
    """A pod from the Job's template, owned by the Job, named as the Job controller names them."""
    meta = job["metadata"]
    name, uid = meta["name"], str(meta.get("uid", ""))
    template = copy_json(job["spec"]["template"])
    tmeta = template.get("metadata") or {}
    suffix = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    base = f"{name}-{index}" if index is not None else name
    labels = {
        **(tmeta.get("labels") or {}),
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    annotations = dict(tmeta.get("annotations") or {})
    spec = template["spec"]
    if index is not None:
        labels[INDEX_KEY] = str(index)
        annotations[INDEX_KEY] = str(index)
        spec.setdefault("hostname", f"{name}-{index}"[:63])
    pod_meta: JSON = {
        "name": f"{base[: 63 - 6]}-{suffix}",
        "namespace": meta["namespace"],
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": name,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


# -- the reconciler ---------------------------------------------------------------------------------
def _backoff_wait(failures: int, last_failure: float, ctx: JobContext) -> float | None:
    """When a replacement may start (None: now)."""
    if failures <= 0 or ctx.backoff_base <= 0:
        return None
    delay = min(ctx.backoff_base * 2 ** (failures - 1), ctx.backoff_max)
    at = last_failure + delay
    return at if at > ctx.now else None


def reconcile_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], ctx: JobContext) -> JobPlan:
    """What the Job controller does for `job` given its pods (see the module docstring)."""
    plan = JobPlan()
    spec = job["spec"]
    old_status: JSON = copy_json(job.get("status") or {})
    status: JSON = copy_json(old_status)
    now = ctx.now
    live = [p for p in pods if not is_finished_pod(p)]
    running = [p for p in live if not is_terminating(p)]
    succeeded = [p for p in pods if phase(p) == "Succeeded"]
    failed = [p for p in pods if phase(p) == "Failed"]
    failures = len(failed) + sum(restarts(p) for p in pods)
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1))

    def stop_all(reason: str) -> None:
        plan.stop.extend((p["metadata"]["name"], reason) for p in running)

    def counts(active: int) -> None:
        status["active"] = active
        status["ready"] = sum(1 for p in running if is_ready(p))
        status["succeeded"] = len(succeeded)
        status["failed"] = failures
        status["terminating"] = len(live) - len(running)
        if indexed:
            status["completedIndexes"] = format_indexes([i for p in succeeded if (i := pod_index(p)) is not None])

    def finish(ctype: str, reason: str, message: str) -> None:
        stop_all(reason)
        _set_condition(status, ctype, True, reason, message, now)
        if ctype == "Complete":
            status["completionTime"] = rfc3339(now)
        counts(0)

    if is_finished_job(job):
        stop_all("JobFinished")
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            done = max(
                (
                    parse_time(c.get("lastTransitionTime"))
                    for c in status.get("conditions") or []
                    if c.get("type") in ("Complete", "Failed")
                ),
                default=now,
            )
            if now >= done + int(ttl):
                plan.delete_job = True
            else:
                plan.wake_at = done + int(ttl)
        counts(0)
    elif spec.get("suspend"):
        stop_all("JobSuspended")
        if not job_condition(job, "Suspended"):
            _set_condition(status, "Suspended", True, "JobSuspended", "Job suspended", now)
        status.pop("startTime", None)
        counts(0)
    else:
        if job_condition(job, "Suspended"):
            _set_condition(status, "Suspended", False, "JobResumed", "Job resumed", now)
        start = status.get("startTime")
        if not start:
            status["startTime"] = start = rfc3339(now)
        deadline = spec.get("activeDeadlineSeconds")
        unsupported = next((p for p in failed if (p.get("status") or {}).get("reason") == UNSUPPORTED_DEVICE), None)
        done_indexes = {i for p in succeeded if (i := pod_index(p)) is not None}
        if unsupported is not None:
            message = (unsupported.get("status") or {}).get("message") or "a pod asks for a device no node offers"
            finish("Failed", UNSUPPORTED_DEVICE, f"pod {unsupported['metadata']['name']}: {message}")
        elif deadline is not None and now >= parse_time(start) + int(deadline):
            finish("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif failures > int(spec.get("backoffLimit", 6)):
            finish("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif (indexed and len(done_indexes) >= int(completions or 0)) or (
            not indexed
            and (
                (completions is not None and len(succeeded) >= int(completions))
                or (completions is None and succeeded and not running)
            )
        ):
            finish("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        else:
            if deadline is not None:
                plan.wake_at = parse_time(start) + int(deadline)
            _scale(job, running, succeeded, failed, failures, done_indexes, parallelism, plan, ctx)
            counts(len(running) + len(plan.create) - len(plan.stop))
    if status != old_status:
        plan.status = status
    return plan


def _scale(
    job: Mapping[str, Any],
    running: Sequence[Mapping[str, Any]],
    succeeded: Sequence[Mapping[str, Any]],
    failed: Sequence[Mapping[str, Any]],
    failures: int,
    done_indexes: set[int],
    parallelism: int,
    plan: JobPlan,
    ctx: JobContext,
) -> None:
    """Create or stop pods so that the right number run."""
    spec = job["spec"]
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed":
        active = {i for p in running if (i := pod_index(p)) is not None}
        missing = [i for i in range(int(completions or 0)) if i not in done_indexes and i not in active]
        wanted = min(parallelism, len(active) + len(missing))
        extra = sorted(running, key=lambda p: -(pod_index(p) or 0))[: max(len(running) - wanted, 0)]
        todo: list[int | None] = list(missing[: max(wanted - len(running), 0)])
    else:
        if completions is None:  # a work queue: after a success, running pods finish, none start
            wanted = len(running) if succeeded else parallelism
        else:
            wanted = min(parallelism, int(completions) - len(succeeded))
        extra = list(running)[wanted:]
        todo = [None] * max(wanted - len(running), 0)
    plan.stop.extend((p["metadata"]["name"], "ExcessPods") for p in extra)
    if not todo:
        return
    last_failure = max((finished_at(p) for p in failed), default=0.0)
    wait = _backoff_wait(failures, last_failure, ctx) if failed else None
    if wait is not None:
        plan.wake_at = wait if plan.wake_at is None else min(plan.wake_at, wait)
        return
    plan.create.extend(new_pod(job, index, ctx.rng) for index in todo)
