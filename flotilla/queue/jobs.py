"""Kueue's batch/v1 Job integration: the mutating hook, the Workload of a Job, and the job
reconciler (pkg/controller/jobframework/reconciler.go, pkg/controller/jobs/job) as pure functions.

A Job is *managed* when it has the `kueue.x-k8s.io/queue-name` label, or when
`manageJobsWithoutQueueName` is set. A managed Job is suspended when created and runs only while
its Workload is admitted. Jobs that are not managed are left alone.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.api.batch import MIN_PARALLELISM_ANNOTATION, PRIORITY_CLASS_LABEL, QUEUE_NAME_LABEL
from flotilla.queue import workloads as wls
from flotilla.queue.types import QueueConfig

JSON = dict[str, Any]
COMPLETIONS_EQUAL_PARALLELISM_ANNOTATION = "kueue.x-k8s.io/job-completions-equal-parallelism"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
DEFAULT_LOCAL_QUEUE = "default"  # LocalQueueDefaulting: unlabelled Jobs go to a LocalQueue named "default"
# Labels the Job controller manages on pod templates: never copied into the Workload.
MANAGED_POD_LABELS = (
    "job-name",
    "controller-uid",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/controller-uid",
)
_HASH_LENGTH = 5
_MAX_NAME = 253


# -- reading a Job -------------------------------------------------------------------------------
def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def queue_name(job: Mapping[str, Any]) -> str | None:
    return _labels(job).get(QUEUE_NAME_LABEL) or None


def is_managed(job: Mapping[str, Any], config: QueueConfig) -> bool:
    return queue_name(job) is not None or config.manageJobsWithoutQueueName


def is_suspended(job: Mapping[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def is_active(job: Mapping[str, Any]) -> bool:
    """Pods still running (status.active); a suspended Job stops once its runtime reports 0."""
    return int((job.get("status") or {}).get("active") or 0) > 0


def finished(job: Mapping[str, Any]) -> tuple[str, bool, bool]:
    """(message, succeeded, finished) from the Job's Complete/Failed condition."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            ok = c["type"] == "Complete"
            return str(c.get("message") or ("Job finished successfully" if ok else "Job failed")), ok, True
    return "", True, False


def pods_count(job: Mapping[str, Any]) -> int:
    spec = job.get("spec") or {}
    count = int(spec.get("parallelism", 1))
    completions = spec.get("completions")
    return min(count, int(completions)) if completions is not None else count


def min_pods_count(job: Mapping[str, Any]) -> int | None:
    raw = _annotations(job).get(MIN_PARALLELISM_ANNOTATION)
    return int(raw) if raw is not None and raw.isdigit() else None


def pods_ready(job: Mapping[str, Any]) -> bool:
    """Kueue's Job.PodsReady: ready + succeeded pods reach the pod count."""
    status = job.get("status") or {}
    return int(status.get("ready") or 0) + int(status.get("succeeded") or 0) >= pods_count(job)


def workload_name(job: Mapping[str, Any]) -> str:
    """`job-<name>-<5 hex>`, the hash over kind, group, name and uid (jobframework's naming)."""
    meta = job["metadata"]
    digest = hashlib.sha1(f"Job\nbatch\n{meta['name']}\n{meta.get('uid', '')}".encode()).hexdigest()
    prefix = f"job-{meta['name']}"[: _MAX_NAME - 1 - _HASH_LENGTH]
    return f"{prefix}-{digest[:_HASH_LENGTH]}"


# -- the Workload of a Job -----------------------------------------------------------------------
def pod_sets(job: Mapping[str, Any], config: QueueConfig) -> list[JSON]:
    """One pod set `main`: count = min(parallelism, completions), minCount from the annotation."""
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        for managed in MANAGED_POD_LABELS:
            labels.pop(managed, None)
    pod_set: JSON = {"name": "main", "count": pods_count(job), "template": template}
    minimum = min_pods_count(job)
    if minimum is not None and config.partialAdmission:
        pod_set["minCount"] = minimum
    return [pod_set]


def build_workload(job: Mapping[str, Any], priority_classes: Mapping[str, Any], config: QueueConfig) -> JSON:
    """The Workload Kueue creates for a Job: same namespace, owned by the Job, priority from the
    `kueue.x-k8s.io/priority-class` label (the class's value copied into spec.priority)."""
    meta = job["metadata"]
    spec: JSON = {"podSets": pod_sets(job, config)}
    if queue_name(job):
        spec["queueName"] = queue_name(job)
    priority_class = _labels(job).get(PRIORITY_CLASS_LABEL)
    if priority_class:
        spec["priorityClassRef"] = {
            "group": "kueue.x-k8s.io",
            "kind": "WorkloadPriorityClass",
            "name": priority_class,
        }
        if priority_class in priority_classes:
            spec["priority"] = int(priority_classes[priority_class].get("value", 0))
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": workload_name(job),
            "namespace": meta["namespace"],
            "labels": {JOB_UID_LABEL: meta.get("uid", "")},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def owner_uid(wl: Mapping[str, Any]) -> str | None:
    """The uid of the Job that owns a Workload, or None for a Workload without a Job."""
    for ref in (wl.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("apiVersion") == "batch/v1":
            return str(ref.get("uid"))
    return None


# -- running and stopping ------------------------------------------------------------------------
class StartError(ValueError):
    """The admission cannot be applied to the Job (a permanent error: the Workload fails)."""


def start(job: Mapping[str, Any], wl: Mapping[str, Any], flavors: Mapping[str, Any]) -> JSON:
    """Kueue's RunWithPodSetsInfo: unsuspend, set parallelism to the admitted count when partial
    admission applies, and add the assigned flavors' nodeLabels and tolerations to the template."""
    out = copy.deepcopy(dict(job))
    spec = out["spec"]
    assignment = ((wl.get("status") or {}).get("admission") or {}).get("podSetAssignments") or [{}]
    psa = assignment[0]
    spec["suspend"] = False
    if min_pods_count(job) is not None and psa.get("count") is not None:
        spec["parallelism"] = int(psa["count"])
        if _annotations(job).get(COMPLETIONS_EQUAL_PARALLELISM_ANNOTATION, "").lower() == "true":
            spec["completions"] = spec["parallelism"]
    pod = spec["template"].setdefault("spec", {})
    selector = dict(pod.get("nodeSelector") or {})
    tolerations = list(pod.get("tolerations") or [])
    for name in sorted(set((psa.get("flavors") or {}).values())):
        flavor = (flavors.get(name) or {}).get("spec") or {}
        for k, v in (flavor.get("nodeLabels") or {}).items():
            if selector.get(k, v) != v:
                raise StartError(f"conflict for nodeSelector: conflict for key={k}, value1={selector[k]}, value2={v}")
            selector[k] = v
        tolerations += [t for t in flavor.get("tolerations") or [] if t not in tolerations]
    if selector:
        pod["nodeSelector"] = selector
    if tolerations:
        pod["tolerations"] = tolerations
    return out


def stop(job: Mapping[str, Any], wl: Mapping[str, Any] | None) -> JSON:
    """Kueue's Stop + RestorePodSetsInfo: suspend, and put back the template's nodeSelector and
    tolerations (and the parallelism) the Workload recorded before admission."""
    out = copy.deepcopy(dict(job))
    out["spec"]["suspend"] = True
    pod_sets_ = ((wl or {}).get("spec") or {}).get("podSets") or []
    if not pod_sets_:
        return out
    original = (pod_sets_[0].get("template") or {}).get("spec") or {}
    pod = out["spec"]["template"].setdefault("spec", {})
    for f in ("nodeSelector", "tolerations"):
        if original.get(f):
            pod[f] = copy.deepcopy(original[f])
        else:
            pod.pop(f, None)
    if min_pods_count(job) is not None:
        out["spec"]["parallelism"] = int(pod_sets_[0].get("count", 1))
        if _annotations(job).get(COMPLETIONS_EQUAL_PARALLELISM_ANNOTATION, "").lower() == "true":
            out["spec"]["completions"] = out["spec"]["parallelism"]
    return out


# -- the job reconciler --------------------------------------------------------------------------
@dataclass(frozen=True)
class JobContext:
    config: QueueConfig
    now: float
    flavors: Mapping[str, Any] = field(default_factory=dict)
    priority_classes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class JobResult:
    """What to write: a new Job body, a Workload to create, a Workload spec or status update."""

    job: JSON | None = None
    create_workload: JSON | None = None
    workload_spec: JSON | None = None
    workload_status: JSON | None = None


def _spec_differs(job: Mapping[str, Any], wl: Mapping[str, Any], ctx: JobContext) -> bool:
    """Whether the Job changed since its Workload was made (queue name or pod set)."""
    have = wl.get("spec") or {}
    if have.get("queueName") != queue_name(job):
        return True
    pod_sets_ = have.get("podSets") or []
    if len(pod_sets_) != 1:
        return True
    (have_ps,) = pod_sets_
    minimum = min_pods_count(job) if ctx.config.partialAdmission else None
    if (have_ps.get("count"), have_ps.get("minCount")) != (pods_count(job), minimum):
        return True
    template = (job.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if any(label in labels for label in MANAGED_POD_LABELS):
        return bool(have_ps.get("template") != pod_sets(job, ctx.config)[0]["template"])
    return bool(have_ps.get("template") != template)


def _pods_ready_condition(job: Mapping[str, Any], wl: JSON, now: float) -> bool:
    """Kueue's generatePodsReadyCondition; only a change of status is written."""
    current = wls.find_condition(wl, wls.PODS_READY)
    if not wls.is_admitted(wl):
        status, reason, message = False, wls.PODS_READY_WAIT_FOR_START, wls.MSG_PODS_NOT_READY
    elif pods_ready(job):
        recovering = current is not None and current.get("reason") in (
            wls.PODS_READY_WAIT_FOR_RECOVERY,
            wls.PODS_READY_RECOVERED,
        )
        status, message = True, wls.MSG_PODS_READY
        reason = wls.PODS_READY_RECOVERED if recovering else wls.PODS_READY_STARTED
    elif current is not None and current.get("status") == "True":
        status, reason, message = False, wls.PODS_READY_WAIT_FOR_RECOVERY, wls.MSG_PODS_RECOVERING
    else:
        status, reason, message = False, wls.PODS_READY_WAIT_FOR_START, wls.MSG_PODS_NOT_READY
    if current is not None and current.get("status") == ("True" if status else "False"):
        return False
    return wls.set_condition(wl, wls.PODS_READY, status, reason, message, now)


def reconcile(job: Mapping[str, Any], wl: Mapping[str, Any] | None, ctx: JobContext) -> JobResult:
    """One pass of Kueue's job reconciler for a managed Job and its Workload (or None)."""
    result = JobResult()
    done_message, succeeded, done = finished(job)
    if wl is None:
        if done:
            return result
        if not is_suspended(job):
            result.job = stop(job, None)  # no Workload yet: it must not run
        if not is_active(job):
            result.create_workload = build_workload(job, ctx.priority_classes, ctx.config)
        return result
    status = copy.deepcopy(dict(wl))
    if wls.is_finished(status):
        return result
    if done:
        wls.set_finished(status, wls.FINISHED_SUCCEEDED if succeeded else wls.FINISHED_FAILED, done_message, ctx.now)
        result.workload_status = status
        return result
    changed = ctx.config.waitForPodsReady.enable and _pods_ready_condition(job, status, ctx.now)
    if wls.is_evicted(status):
        if not is_suspended(job):
            result.job = stop(job, wl)
        if wls.has_quota_reservation(status) and not is_active(result.job or job):
            changed |= wls.release_after_eviction(status, ctx.now)
    elif is_suspended(job):
        if wls.is_admitted(status):
            try:
                result.job = start(job, status, ctx.flavors)
            except StartError as exc:
                changed |= wls.set_finished(status, wls.FAILED_TO_START, str(exc), ctx.now)
        elif not wls.has_quota_reservation(status) and _spec_differs(job, wl, ctx):
            spec = copy.deepcopy(dict(wl))
            spec["spec"] = {**spec["spec"], **build_workload(job, ctx.priority_classes, ctx.config)["spec"]}
            result.workload_spec = spec
    elif not wls.is_admitted(status):
        result.job = stop(job, wl)  # running without admission: Kueue suspends it
    if changed:
        result.workload_status = status
    return result


# -- the mutating hook ---------------------------------------------------------------------------
class JobDefaulter:
    """Kueue's Job webhook for ResourceService writes (create, update, patch, apply).

    On create: a Job without the queue-name label gets `default` when its namespace has a
    LocalQueue named `default` (LocalQueueDefaulting); a managed Job is suspended. On update of a
    managed Job: the fields the controller owns are kept (suspend; and, while the Job runs,
    parallelism, completions and the template, which Kubernetes makes immutable anyway)."""

    kinds = frozenset({"Job"})

    def __init__(self, config: QueueConfig, local_queue_exists: Callable[[str, str], bool]) -> None:
        self._config = config
        self._local_queue_exists = local_queue_exists

    def mutate(self, obj: JSON, old: JSON | None) -> None:
        meta = obj.setdefault("metadata", {})
        spec = obj.setdefault("spec", {})
        if old is None:
            namespace = meta.get("namespace") or "default"
            if not queue_name(obj) and self._local_queue_exists(namespace, DEFAULT_LOCAL_QUEUE):
                meta.setdefault("labels", {})[QUEUE_NAME_LABEL] = DEFAULT_LOCAL_QUEUE
            if is_managed(obj, self._config) and not finished(obj)[2]:
                spec["suspend"] = True
            return
        if not is_managed(old, self._config):
            return
        old_spec = old.get("spec") or {}
        spec["suspend"] = bool(old_spec.get("suspend"))
        if not old_spec.get("suspend"):
            for f in ("parallelism", "completions", "template"):
                if f in old_spec:
                    spec[f] = copy.deepcopy(old_spec[f])


# -- all Jobs of a pass --------------------------------------------------------------------------
@dataclass(frozen=True)
class Write:
    """One store write the driver carries out. For "status", only `obj["status"]` counts: it is
    written onto the object as the driver last saw it."""

    op: str  # "create", "update", "status" or "delete"
    kind: str
    obj: JSON


def plan(
    jobs: Iterable[Mapping[str, Any]],
    workloads: Iterable[Mapping[str, Any]],
    ctx: JobContext,
    delete_orphans: bool = True,
) -> list[Write]:
    """The writes that reconcile every managed Job with its Workload, and (given every Job) delete
    the Workloads whose Job is gone (Kueue leaves that to the garbage collector)."""
    workloads = list(workloads)
    owned = {(w["metadata"]["namespace"], owner_uid(w)): w for w in workloads if owner_uid(w)}
    live = set()
    writes: list[Write] = []
    for job in jobs:
        meta = job["metadata"]
        live.add((meta["namespace"], meta.get("uid")))
        if meta.get("deletionTimestamp") or not is_managed(job, ctx.config):
            continue
        result = reconcile(job, owned.get((meta["namespace"], meta.get("uid"))), ctx)
        if result.job is not None:
            writes.append(Write("update", "Job", result.job))
        if result.create_workload is not None:
            writes.append(Write("create", "Workload", result.create_workload))
        if result.workload_spec is not None:
            writes.append(Write("update", "Workload", result.workload_spec))
        if result.workload_status is not None:
            writes.append(Write("status", "Workload", result.workload_status))
    for wl in workloads if delete_orphans else ():
        uid = owner_uid(wl)
        if uid is not None and (wl["metadata"]["namespace"], uid) not in live:
            writes.append(Write("delete", "Workload", dict(wl)))
    return writes
