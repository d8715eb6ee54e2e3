"""Workload status as Kueue writes it: conditions, reasons, messages, admission and requeue state.

Pure functions over the JSON form of objects (internal version). Each `set_*` changes the object
it is given and returns whether anything changed, so callers write only real changes. Condition
semantics are Kubernetes' `meta.SetStatusCondition`: `lastTransitionTime` moves only when the
status flips; reason, message and observedGeneration are updated in place.

The names below are Kueue's (apis/kueue/v1beta2 workload_types.go, pkg/workload/workload.go).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flotilla.api.quantity import Quantity, QuantityFormat
from flotilla.queue.types import AdmissionRecord

JSON = dict[str, Any]

# Condition types.
QUOTA_RESERVED = "QuotaReserved"
ADMITTED = "Admitted"
EVICTED = "Evicted"
PREEMPTED = "Preempted"
REQUEUED = "Requeued"
PODS_READY = "PodsReady"
FINISHED = "Finished"
DEACTIVATION_TARGET = "DeactivationTarget"

# Reasons.
PENDING = "Pending"  # QuotaReserved=False while waiting in a queue
INADMISSIBLE = "Inadmissible"  # QuotaReserved=False: the LocalQueue/ClusterQueue is missing or inactive
WAITING = "Waiting"  # QuotaReserved=False: blockAdmission waits for PodsReady of admitted workloads
EVICTED_BY_PREEMPTION = "Preempted"
EVICTED_BY_PODS_READY_TIMEOUT = "PodsReadyTimeout"
EVICTED_BY_CLUSTER_QUEUE_STOPPED = "ClusterQueueStopped"
EVICTED_BY_LOCAL_QUEUE_STOPPED = "LocalQueueStopped"
DEACTIVATED = "Deactivated"
REACTIVATED = "Reactivated"
BACKOFF_FINISHED = "BackoffFinished"
CLUSTER_QUEUE_RESTARTED = "ClusterQueueRestarted"
LOCAL_QUEUE_RESTARTED = "LocalQueueRestarted"
REQUEUING_LIMIT_EXCEEDED = "RequeuingLimitExceeded"
FINISHED_SUCCEEDED = "Succeeded"
FINISHED_FAILED = "Failed"
FAILED_TO_START = "FailedToStart"
PODS_READY_STARTED = "Started"
PODS_READY_RECOVERED = "Recovered"
PODS_READY_WAIT_FOR_START = "WaitForStart"
PODS_READY_WAIT_FOR_RECOVERY = "WaitForRecovery"

# Messages.
MSG_ADMITTED = "The workload is admitted"
MSG_NO_RESERVATION = "The workload has no reservation"
MSG_WAITING_PODS_READY = "waiting for all admitted workloads to be in PodsReady condition"
MSG_PODS_NOT_READY = "Not all pods are ready or succeeded"
MSG_PODS_READY = "All pods reached readiness and the workload is running"
MSG_PODS_RECOVERING = "At least one pod has failed, waiting for recovery"
MSG_DEACTIVATED = "The workload is deactivated"
MSG_REACTIVATED = "The workload was reactivated"
MSG_BACKOFF_FINISHED = "The workload backoff was finished"
MSG_CQ_STOPPED = "The ClusterQueue is stopped"
MSG_LQ_STOPPED = "The LocalQueue is stopped"
MSG_CQ_RESTARTED = "The ClusterQueue was restarted after being stopped"
MSG_LQ_RESTARTED = "The LocalQueue was restarted after being stopped"
MSG_REQUEUING_LIMIT = "exceeding the maximum number of re-queuing retries"

# Evictions after which the workload goes straight back to its queue (Requeued=True);
# the others wait for a backoff, a restart or a reactivation (Requeued=False).
REQUEUE_AT_ONCE = frozenset({EVICTED_BY_PREEMPTION, "AdmissionCheck"})
_BINARY_RESOURCES = ("memory", "ephemeral-storage")


# -- time ----------------------------------------------------------------------------------------
def rfc3339(seconds: float) -> str:
    """Seconds since the epoch as a Kubernetes timestamp (UTC, second precision)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(stamp: str | None, default: float = 0.0) -> float:
    """A Kubernetes timestamp as seconds since the epoch (`default` when absent)."""
    if not stamp:
        return default
    moment = datetime.fromisoformat(stamp)  # "...Z" included (Python 3.11)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON tree (dicts, lists, scalars): copy.deepcopy's result, several times faster."""
    if type(value) is dict:
        return {k: copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [copy_json(v) for v in value]
    return value


# -- quantities ----------------------------------------------------------------------------------
def quantity(milli: int, resource: str = "") -> str:
    """Milli-units back to a canonical quantity string (`500m`, `2`, `8Gi` for memory)."""
    value = Decimal(milli) / 1000
    binary = (resource in _BINARY_RESOURCES or resource.startswith("hugepages-")) and value == value.to_integral_value()
    return str(Quantity(value, QuantityFormat.BINARY_SI if binary else QuantityFormat.DECIMAL_SI))


def milli(value: Any) -> int:
    """A quantity (string or number) in milli-units."""
    return Quantity.parse(value).milli_value()


# -- conditions ----------------------------------------------------------------------------------
def find_condition(obj: Mapping[str, Any], ctype: str) -> JSON | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def is_true(obj: Mapping[str, Any], ctype: str) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return bool(c.get("status") == "True")
    return False


def set_condition(obj: JSON, ctype: str, status: bool, reason: str, message: str, now: float) -> bool:
    """Kubernetes' SetStatusCondition on `obj.status.conditions`; True if anything changed."""
    conditions: list[JSON] = obj.setdefault("status", {}).setdefault("conditions", [])
    value = "True" if status else "False"
    generation = (obj.get("metadata") or {}).get("generation")
    wanted: JSON = {"type": ctype, "status": value, "reason": reason, "message": message}
    if generation is not None:
        wanted["observedGeneration"] = generation
    for i, c in enumerate(conditions):
        if c.get("type") != ctype:
            continue
        new = {**c, **wanted}
        if c.get("status") != value or not c.get("lastTransitionTime"):
            new["lastTransitionTime"] = rfc3339(now)
        if new == c:
            return False
        conditions[i] = new
        return True
    conditions.append({**wanted, "lastTransitionTime": rfc3339(now)})
    return True


def remove_condition(obj: JSON, ctype: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    kept = [c for c in conditions if c.get("type") != ctype]
    if len(kept) == len(conditions):
        return False
    obj["status"]["conditions"] = kept
    return True


# -- state ---------------------------------------------------------------------------------------
def has_quota_reservation(wl: Mapping[str, Any]) -> bool:
    return is_true(wl, QUOTA_RESERVED)


def is_admitted(wl: Mapping[str, Any]) -> bool:
    return is_true(wl, ADMITTED)


def is_finished(wl: Mapping[str, Any]) -> bool:
    return is_true(wl, FINISHED)


def is_evicted(wl: Mapping[str, Any]) -> bool:
    return is_true(wl, EVICTED)


def is_active(wl: Mapping[str, Any]) -> bool:
    return bool((wl.get("spec") or {}).get("active", True))


def holds_quota(wl: Mapping[str, Any]) -> bool:
    """Counts against its ClusterQueue: reserving quota, not finished (Kueue's HasActiveQuotaReservation,
    except that a deactivated workload keeps counting until its Job is stopped)."""
    return has_quota_reservation(wl) and not is_finished(wl) and bool((wl.get("status") or {}).get("admission"))


def is_pending(wl: Mapping[str, Any]) -> bool:
    """Waiting for quota: active, not finished, no reservation."""
    return is_active(wl) and not is_finished(wl) and not has_quota_reservation(wl)


def state(wl: Mapping[str, Any]) -> str:
    """Kueue's workload.Status: finished, admitted, quotaReserved or pending."""
    if is_finished(wl):
        return "finished"
    if is_admitted(wl):
        return "admitted"
    if has_quota_reservation(wl):
        return "quotaReserved"
    return "pending"


def key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def requeue_at(wl: Mapping[str, Any]) -> float:
    """When a backed-off workload may be admitted again (0 when it is not backing off)."""
    rs = (wl.get("status") or {}).get("requeueState") or {}
    return parse_time(rs.get("requeueAt"))


def requeue_count(wl: Mapping[str, Any]) -> int:
    return int(((wl.get("status") or {}).get("requeueState") or {}).get("count") or 0)


def queued_since(wl: Mapping[str, Any]) -> float:
    """Start of the current wait (Kueue's QueuedWaitTime): the last Requeued transition, else creation."""
    requeued = find_condition(wl, REQUEUED)
    if requeued is not None:
        return parse_time(requeued.get("lastTransitionTime"))
    return parse_time((wl.get("metadata") or {}).get("creationTimestamp"))


# -- transitions ---------------------------------------------------------------------------------
def admission_json(record: AdmissionRecord) -> JSON:
    """status.admission for an admission decided by the policy."""
    return {
        "clusterQueue": record.cluster_queue,
        "podSetAssignments": [
            {
                "name": ps.name,
                "flavors": dict(ps.flavors),
                "resourceUsage": {r: quantity(v, r) for r, v in ps.resource_usage.items()},
                "count": ps.count,
            }
            for ps in record.pod_sets
        ],
    }


def sync_admitted(wl: JSON, now: float) -> bool:
    """Admitted follows QuotaReserved (Flotilla has no admission checks)."""
    reserved = has_quota_reservation(wl)
    if is_admitted(wl) == reserved:
        return False
    if reserved:
        return set_condition(wl, ADMITTED, True, ADMITTED, MSG_ADMITTED, now)
    return set_condition(wl, ADMITTED, False, "NoReservation", MSG_NO_RESERVATION, now)


def _reset_active(wl: JSON, ctype: str, reason: str, now: float) -> bool:
    prev = find_condition(wl, ctype)
    if prev is None or prev.get("status") != "True":
        return False
    return set_condition(wl, ctype, False, reason, "Previously: " + str(prev.get("message") or ""), now)


def set_quota_reservation(wl: JSON, admission: JSON, now: float) -> bool:
    """Kueue's SetQuotaReservation plus SyncAdmittedCondition."""
    status = wl.setdefault("status", {})
    changed = bool(status.get("admission") != admission)
    status["admission"] = admission
    message = f"Quota reserved in ClusterQueue {admission['clusterQueue']}"
    changed |= set_condition(wl, QUOTA_RESERVED, True, QUOTA_RESERVED, message, now)
    changed |= _reset_active(wl, EVICTED, QUOTA_RESERVED, now)
    changed |= _reset_active(wl, PREEMPTED, QUOTA_RESERVED, now)
    changed |= sync_admitted(wl, now)
    return changed


def unset_quota_reservation(wl: JSON, reason: str, message: str, now: float) -> bool:
    """Kueue's UnsetQuotaReservationWithCondition: QuotaReserved=False, admission cleared."""
    changed = set_condition(wl, QUOTA_RESERVED, False, reason, message, now)
    status = wl.setdefault("status", {})
    if status.get("admission") is not None:
        status.pop("admission")
        changed = True
    changed |= sync_admitted(wl, now)
    return changed


def set_evicted(wl: JSON, reason: str, message: str, now: float) -> bool:
    return set_condition(wl, EVICTED, True, reason, message, now)


def set_preempted(wl: JSON, reason: str, message: str, now: float) -> bool:
    return set_condition(wl, PREEMPTED, True, reason, message, now)


def set_requeued(wl: JSON, reason: str, message: str, requeued: bool, now: float) -> bool:
    return set_condition(wl, REQUEUED, requeued, reason, message, now)


def set_finished(wl: JSON, reason: str, message: str, now: float) -> bool:
    return set_condition(wl, FINISHED, True, reason, message, now)


def release_after_eviction(wl: JSON, now: float) -> bool:
    """Once the Job is stopped: Requeued, then QuotaReserved=False with the eviction message.

    Requeued is True (back in the queue) after a preemption; after a PodsReady timeout, a stopped
    queue or a deactivation it is False with the eviction reason until backoff, restart or
    reactivation (the job reconciler in Kueue's jobframework)."""
    evicted = find_condition(wl, EVICTED) or {}
    reason = str(evicted.get("reason") or "")
    message = str(evicted.get("message") or "")
    changed = set_requeued(wl, reason, message, reason in REQUEUE_AT_ONCE, now)
    changed |= unset_quota_reservation(wl, PENDING, message, now)
    return changed


def backoff_seconds(count: int, base: float, maximum: float) -> float:
    """Kueue's requeue backoff: base * 2^(count-1), capped at maximum (no jitter: deterministic)."""
    return float(min(base * 2 ** max(count - 1, 0), maximum))


def update_requeue_state(wl: JSON, base: float, maximum: float, now: float) -> None:
    """Increment requeueState.count and push requeueAt out by the backoff (never earlier)."""
    state_ = wl.setdefault("status", {}).setdefault("requeueState", {})
    count = int(state_.get("count") or 0) + 1
    state_["count"] = count
    # Timestamps have second precision: round up so a workload never comes back early.
    at = math.ceil(now + backoff_seconds(count, base, maximum))
    if parse_time(state_.get("requeueAt")) < at:
        state_["requeueAt"] = rfc3339(at)


# -- queues a pending workload depends on -------------------------------------------------------
def stop_policy(queue: Mapping[str, Any] | None) -> str:
    """A ClusterQueue's or LocalQueue's spec.stopPolicy ("None" when absent)."""
    return str(((queue or {}).get("spec") or {}).get("stopPolicy") or "None")


@dataclass(frozen=True)
class QueueContext:
    """What the workload controller needs to know about a workload's queues."""

    local_queue: Mapping[str, Any] | None
    cluster_queue: Mapping[str, Any] | None
    cluster_queue_name: str | None
    cluster_queue_active: bool


def pending_blocker(wl: Mapping[str, Any], queues: QueueContext) -> str | None:
    """Why a pending workload cannot even be considered (Kueue's Inadmissible messages), or None."""
    queue = (wl.get("spec") or {}).get("queueName")
    if not queue:
        return "the Workload has no queueName: label its Job with kueue.x-k8s.io/queue-name"
    if queues.local_queue is None:
        return f"LocalQueue {queue} doesn't exist"
    if stop_policy(queues.local_queue) != "None":
        return f"LocalQueue {queue} is inactive"
    if queues.cluster_queue is None:
        return f"ClusterQueue {queues.cluster_queue_name} doesn't exist"
    if not queues.cluster_queue_active:
        return f"ClusterQueue {queues.cluster_queue_name} is inactive"
    return None
