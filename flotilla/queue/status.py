"""Status as Kueue's controllers write it (pure functions over API objects): ClusterQueue and
LocalQueue status, the per-queue view behind the metrics, admission fair sharing's decayed
LocalQueue usage, and the workload controller's transitions (deactivation, backoff, stopped
queues, PodsReady timeouts, Inadmissible reasons)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from flotilla.queue import workloads as wls
from flotilla.queue.build import ApiObjects, cluster_queue_inactive, is_candidate
from flotilla.queue.fairsharing import decay_usage
from flotilla.queue.types import AdmissionFairSharingConfig, QueueConfig, WaitForPodsReadyConfig

JSON = dict[str, Any]
Usage = dict[tuple[str, str], int]  # (flavor, resource) -> milli-units

CQ_READY = ("Ready", "Can admit new workloads")
LQ_READY = ("Ready", "Can submit new workloads to localQueue")
LQ_STOPPED = ("Stopped", "LocalQueue is stopped")
LQ_NO_CQ = ("ClusterQueueDoesNotExist", "Can't submit new workloads to clusterQueue")
LQ_CQ_INACTIVE = ("ClusterQueueIsInactive", "Can't submit new workloads to clusterQueue")


@dataclass
class QueueCounts:
    pending_active: int = 0
    pending_inadmissible: int = 0
    reserving: int = 0
    admitted: int = 0
    reserved: Usage = field(default_factory=dict)  # quota-reserving workloads
    used: Usage = field(default_factory=dict)  # admitted workloads

    @property
    def pending(self) -> int:
        return self.pending_active + self.pending_inadmissible


@dataclass(frozen=True)
class QueueView:
    """Per-queue figures after a pass: what the status and the metrics report."""

    cluster_queues: Mapping[str, QueueCounts]
    local_queues: Mapping[str, QueueCounts]  # "namespace/name"


def _add(usage: Usage, wl: Mapping[str, Any]) -> None:
    for psa in ((wl.get("status") or {}).get("admission") or {}).get("podSetAssignments") or []:
        flavors = psa.get("flavors") or {}
        for resource, q in (psa.get("resourceUsage") or {}).items():
            fr = (flavors.get(resource, ""), resource)
            usage[fr] = usage.get(fr, 0) + wls.milli(q)


def queue_view(objs: ApiObjects, waiting: AbstractSet[str], now: float) -> QueueView:
    """Count workloads per queue. `waiting` are pending workloads the driver holds back (parked
    until a capacity event); those in backoff or whose queue cannot admit are inadmissible too."""
    cqs: dict[str, QueueCounts] = defaultdict(QueueCounts)
    lqs: dict[str, QueueCounts] = defaultdict(QueueCounts)
    for k, wl in objs.workloads.items():
        lq_key = f"{wl['metadata']['namespace']}/{(wl.get('spec') or {}).get('queueName')}"
        targets = [lqs[lq_key]] if lq_key in objs.local_queues else []
        if wls.holds_quota(wl):
            cq = wl["status"]["admission"]["clusterQueue"]
            targets.append(cqs[cq])
            for counts in targets:
                counts.reserving += 1
                _add(counts.reserved, wl)
                if wls.is_admitted(wl):
                    counts.admitted += 1
                    _add(counts.used, wl)
        elif wls.is_pending(wl):
            cq_name = objs.cluster_queue_name_of(wl)
            if cq_name is not None:
                targets.append(cqs[cq_name])
            active = is_candidate(wl, objs) and k not in waiting and wls.requeue_at(wl) <= now
            for counts in targets:
                if active:
                    counts.pending_active += 1
                else:
                    counts.pending_inadmissible += 1
    return QueueView(dict(cqs), dict(lqs))


def _flavor_usage(cq: Mapping[str, Any] | None, usage: Usage, with_borrowed: bool) -> list[JSON]:
    """FlavorUsage per flavor of the ClusterQueue, every covered resource listed (zeros too)."""
    out: list[JSON] = []
    for group in ((cq or {}).get("spec") or {}).get("resourceGroups") or []:
        for flavor in group["flavors"]:
            resources = []
            for quota in flavor["resources"]:
                total = usage.get((flavor["name"], quota["name"]), 0)
                entry: JSON = {"name": quota["name"], "total": wls.quantity(total, quota["name"])}
                if with_borrowed:
                    borrowed = max(0, total - wls.milli(quota["nominalQuota"]))
                    entry["borrowed"] = wls.quantity(borrowed, quota["name"])
                resources.append(entry)
            out.append({"name": flavor["name"], "resources": resources})
    return out


def cluster_queue_status(cq: Mapping[str, Any], counts: QueueCounts, objs: ApiObjects, now: float) -> JSON:
    """The ClusterQueue with its status recomputed (conditions keep their transition times)."""
    out: JSON = {**cq, "status": wls.copy_json(cq.get("status") or {})}  # only the status changes
    status = out["status"]
    status["pendingWorkloads"] = counts.pending
    status["reservingWorkloads"] = counts.reserving
    status["admittedWorkloads"] = counts.admitted
    status["flavorsReservation"] = _flavor_usage(cq, counts.reserved, True)
    status["flavorsUsage"] = _flavor_usage(cq, counts.used, True)
    inactive = cluster_queue_inactive(cq, objs.flavors)
    reason, message = inactive or CQ_READY
    wls.set_condition(out, "Active", inactive is None, reason, message, now)
    return out


def local_queue_active(lq: Mapping[str, Any], objs: ApiObjects) -> tuple[bool, str, str]:
    if ((lq.get("spec") or {}).get("stopPolicy") or "None") != "None":
        return (False, *LQ_STOPPED)
    cq = objs.cluster_queues.get(lq["spec"]["clusterQueue"])
    if cq is None:
        return (False, *LQ_NO_CQ)
    if cluster_queue_inactive(cq, objs.flavors) is not None:
        return (False, *LQ_CQ_INACTIVE)
    return (True, *LQ_READY)


def local_queue_status(
    lq: Mapping[str, Any], counts: QueueCounts, objs: ApiObjects, now: float, fair_sharing: JSON | None = None
) -> JSON:
    out: JSON = {**lq, "status": wls.copy_json(lq.get("status") or {})}
    status = out["status"]
    cq = objs.cluster_queues.get(lq["spec"]["clusterQueue"])
    status["pendingWorkloads"] = counts.pending
    status["reservingWorkloads"] = counts.reserving
    status["admittedWorkloads"] = counts.admitted
    status["flavorsReservation"] = _flavor_usage(cq, counts.reserved, False)
    status["flavorsUsage"] = _flavor_usage(cq, counts.used, False)
    if fair_sharing is not None:
        status["fairSharing"] = fair_sharing
    active, reason, message = local_queue_active(lq, objs)
    wls.set_condition(out, "Active", active, reason, message, now)
    return out


def queue_statuses(
    objs: ApiObjects,
    view: QueueView,
    config: QueueConfig,
    now: float,
    wakes: list[float],
    *,
    cluster_queues: Iterable[str] | None = None,
    local_queues: Iterable[str] | None = None,
) -> list[tuple[str, JSON, bool]]:
    """(kind, queue with its new status, fair-sharing usage resampled) for every ClusterQueue and
    LocalQueue whose status changed; the next fair-sharing sample times go to `wakes`.
    `cluster_queues` and `local_queues` ("namespace/name") limit which are looked at."""
    out: list[tuple[str, JSON, bool]] = []
    for name in objs.cluster_queues if cluster_queues is None else cluster_queues:
        cq = objs.cluster_queues[name]
        new = cluster_queue_status(cq, view.cluster_queues.get(name) or QueueCounts(), objs, now)
        if new.get("status") != cq.get("status"):
            out.append(("ClusterQueue", new, False))
    for k in objs.local_queues if local_queues is None else local_queues:
        lq = objs.local_queues[k]
        counts = view.local_queues.get(k) or QueueCounts()
        fair_sharing, resampled = None, False
        if config.admissionFairSharing is not None:
            fair_sharing, due = fair_sharing_status(lq, counts, config.admissionFairSharing, now)
            wakes.append(due)
            resampled = fair_sharing != (lq.get("status") or {}).get("fairSharing")
        new = local_queue_status(lq, counts, objs, now, fair_sharing)
        if new.get("status") != lq.get("status"):
            out.append(("LocalQueue", new, resampled))
    return out


# -- admission fair sharing ----------------------------------------------------------------------
def fair_sharing_status(
    lq: Mapping[str, Any], counts: QueueCounts, afs: AdmissionFairSharingConfig, now: float
) -> tuple[JSON, float]:
    """A LocalQueue's status.fairSharing, resampled once every usageSamplingInterval, and when
    it is next due. The sample is what its admitted workloads hold, summed over flavors; the decay
    is fairsharing.decay_usage (the policy's formula, so simulator and driver agree)."""
    current: dict[str, int] = {}
    for (_, resource), amount in counts.used.items():
        current[resource] = current.get(resource, 0) + amount
    previous = ((lq.get("status") or {}).get("fairSharing") or {}).get("admissionFairSharingStatus")
    if previous is not None:
        last = wls.parse_time(previous.get("lastUpdate"))
        if now < last + afs.usageSamplingInterval:
            return {"admissionFairSharingStatus": previous}, last + afs.usageSamplingInterval
        old = {r: float(wls.milli(q)) for r, q in (previous.get("consumedResources") or {}).items()}
        sample = {r: float(v) for r, v in current.items()}
        consumed = decay_usage(old, sample, now - last, afs.usageHalfLifeTime)
    else:
        consumed = {r: 0.0 for r in sorted(current)}
    status = {
        "consumedResources": {r: wls.quantity(math.ceil(v), r) for r, v in consumed.items()},
        "lastUpdate": wls.rfc3339(now),
    }
    return {"admissionFairSharingStatus": status}, now + afs.usageSamplingInterval


# -- the workload controller (Kueue's pkg/controller/core/workload_controller.go) ---------------
@dataclass
class WorkloadResult:
    workload: JSON
    spec_changed: bool = False
    status_changed: bool = False
    evicted: tuple[str, str] | None = None  # (ClusterQueue, reason) of an eviction made now
    wake_at: float | None = None  # when this workload needs another look


def _requeued_false(wl: Mapping[str, Any], reason: str) -> bool:
    c = wls.find_condition(wl, wls.REQUEUED)
    return c is not None and c.get("status") == "False" and str(c.get("reason") or "").startswith(reason)


def _evict(result: WorkloadResult, reason: str, message: str, cq: str | None, now: float) -> None:
    if wls.set_evicted(result.workload, reason, message, now):
        result.status_changed = True
        if cq:
            result.evicted = (cq, reason)


def _deactivate(result: WorkloadResult, now: float) -> None:
    wl = result.workload
    target = wls.find_condition(wl, wls.DEACTIVATION_TARGET)
    if not wls.is_evicted(wl):
        reason, message = wls.DEACTIVATED, wls.MSG_DEACTIVATED
        if target is not None:
            reason = f"{wls.DEACTIVATED}DueTo{target.get('reason')}"
            message = f"{wls.MSG_DEACTIVATED} due to {target.get('message')}"
        admission = (wl.get("status") or {}).get("admission") or {}
        _evict(result, reason, message, admission.get("clusterQueue"), now)
    if wls.remove_condition(wl, wls.DEACTIVATION_TARGET):
        result.status_changed = True
    if (wl.get("status") or {}).get("requeueState") is not None:
        wl["status"].pop("requeueState")
        result.status_changed = True


def _pods_ready_timeout(result: WorkloadResult, cfg: WaitForPodsReadyConfig, now: float) -> None:
    """Evict an admitted workload whose pods did not all become ready within the timeout;
    requeue it with backoff, or deactivate it past backoffLimitCount."""
    wl = result.workload
    if not cfg.enable or not wls.is_admitted(wl) or wls.is_evicted(wl) or not wls.is_active(wl):
        return
    ready = wls.find_condition(wl, wls.PODS_READY)
    if ready is not None and (ready.get("status") == "True" or ready.get("reason") == wls.PODS_READY_WAIT_FOR_RECOVERY):
        return
    admitted = wls.find_condition(wl, wls.ADMITTED) or {}
    deadline = wls.parse_time(admitted.get("lastTransitionTime")) + cfg.timeout
    if now < deadline:
        result.wake_at = deadline
        return
    strategy = cfg.requeuingStrategy
    limit = strategy.backoffLimitCount
    if limit is not None and wls.requeue_count(wl) + 1 > limit:
        wls.set_condition(wl, wls.DEACTIVATION_TARGET, True, wls.REQUEUING_LIMIT_EXCEEDED, wls.MSG_REQUEUING_LIMIT, now)
        wl.setdefault("spec", {})["active"] = False
        result.spec_changed = result.status_changed = True
        _deactivate(result, now)
        return
    wls.update_requeue_state(wl, strategy.backoffBaseSeconds, strategy.backoffMaxSeconds, now)
    message = f"Exceeded the PodsReady timeout {wls.key(wl)}"
    cq = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue")
    _evict(result, wls.EVICTED_BY_PODS_READY_TIMEOUT, message, cq, now)


def reconcile_workload(wl: JSON, queues: wls.QueueContext, config: QueueConfig, now: float) -> WorkloadResult:
    """One pass of Kueue's workload controller over a copy of `wl`: deactivation, end of backoff,
    queue restarts, HoldAndDrain and PodsReady-timeout evictions, and the Inadmissible reasons of
    a pending workload whose queue is missing or stopped."""
    result = WorkloadResult(wls.copy_json(wl))
    wl = result.workload
    if wls.is_finished(wl):
        return result
    if wls.is_true(wl, wls.DEACTIVATION_TARGET) and wls.is_active(wl):
        wl.setdefault("spec", {})["active"] = False
        result.spec_changed = True
    if not wls.is_active(wl):
        _deactivate(result, now)
        return result
    if _requeued_false(wl, wls.DEACTIVATED):
        result.status_changed |= wls.set_requeued(wl, wls.REACTIVATED, wls.MSG_REACTIVATED, True, now)
    elif _requeued_false(wl, wls.EVICTED_BY_PODS_READY_TIMEOUT):
        at = wls.requeue_at(wl)
        if at > now:
            result.wake_at = at
        else:
            wl["status"].get("requeueState", {}).pop("requeueAt", None)
            result.status_changed |= wls.set_requeued(wl, wls.BACKOFF_FINISHED, wls.MSG_BACKOFF_FINISHED, True, now)
    lq, cq = queues.local_queue, queues.cluster_queue
    if lq is not None and wls.stop_policy(lq) == "None" and _requeued_false(wl, wls.EVICTED_BY_LOCAL_QUEUE_STOPPED):
        result.status_changed |= wls.set_requeued(wl, wls.LOCAL_QUEUE_RESTARTED, wls.MSG_LQ_RESTARTED, True, now)
    if cq is not None and wls.stop_policy(cq) == "None" and _requeued_false(wl, wls.EVICTED_BY_CLUSTER_QUEUE_STOPPED):
        result.status_changed |= wls.set_requeued(wl, wls.CLUSTER_QUEUE_RESTARTED, wls.MSG_CQ_RESTARTED, True, now)
    if wls.has_quota_reservation(wl):
        if wls.is_admitted(wl) and not wls.is_evicted(wl):
            admitted_in = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue")
            if wls.stop_policy(lq) == "HoldAndDrain":
                _evict(result, wls.EVICTED_BY_LOCAL_QUEUE_STOPPED, wls.MSG_LQ_STOPPED, admitted_in, now)
            elif wls.stop_policy(cq) == "HoldAndDrain":
                _evict(result, wls.EVICTED_BY_CLUSTER_QUEUE_STOPPED, wls.MSG_CQ_STOPPED, admitted_in, now)
            else:
                _pods_ready_timeout(result, config.waitForPodsReady, now)
        return result
    blocker = wls.pending_blocker(wl, queues)
    if blocker is not None:
        result.status_changed |= wls.unset_quota_reservation(wl, wls.INADMISSIBLE, blocker, now)
    return result
