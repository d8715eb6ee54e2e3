"""Build the policy's `Snapshot` from API objects (pure: dicts in, frozen dataclasses out).

Objects are the JSON form of the kinds' internal versions (Kueue v1beta2), as the store holds
them. Quotas and requests become integer milli-units (`Quantity.milli_value()`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from flotilla.api.base import LabelSelector, Taint, Toleration
from flotilla.api.pod import PodSpec
from flotilla.api.quantity import Quantity
from flotilla.queue import workloads as wls
from flotilla.queue.types import (
    AdmissionRecord,
    ClusterQueueSnapshot,
    CohortSnapshot,
    FlavorResource,
    FlavorSnapshot,
    LocalQueueSnapshot,
    PodSetAssignment,
    PodSetInfo,
    PreemptionPolicy,
    QueueConfig,
    ResourceGroup,
    ResourceQuota,
    Snapshot,
    WorkloadInfo,
)

JSON = dict[str, Any]
AFS_MODE = "UsageBasedAdmissionFairSharing"


@dataclass(frozen=True)
class ApiObjects:
    """Everything admission reads, keyed by name ("namespace/name" for namespaced kinds)."""

    cluster_queues: Mapping[str, JSON] = field(default_factory=dict)
    cohorts: Mapping[str, JSON] = field(default_factory=dict)
    flavors: Mapping[str, JSON] = field(default_factory=dict)
    local_queues: Mapping[str, JSON] = field(default_factory=dict)
    workloads: Mapping[str, JSON] = field(default_factory=dict)
    priority_classes: Mapping[str, JSON] = field(default_factory=dict)
    namespaces: Mapping[str, JSON] = field(default_factory=dict)

    @classmethod
    def from_lists(cls, **lists: Iterable[JSON]) -> ApiObjects:
        """Key lists of objects by name (namespaced kinds by "namespace/name")."""
        keyed = {}
        for kind, items in lists.items():
            namespaced = kind in ("local_queues", "workloads")
            keyed[kind] = {(wls.key(o) if namespaced else o["metadata"]["name"]): o for o in items}
        return cls(**keyed)

    def local_queue_of(self, wl: Mapping[str, Any]) -> JSON | None:
        queue = (wl.get("spec") or {}).get("queueName")
        return self.local_queues.get(f"{wl['metadata'].get('namespace')}/{queue}") if queue else None

    def cluster_queue_name_of(self, wl: Mapping[str, Any]) -> str | None:
        lq = self.local_queue_of(wl)
        return None if lq is None else str(lq["spec"]["clusterQueue"])

    def queue_context(self, wl: Mapping[str, Any]) -> wls.QueueContext:
        lq = self.local_queue_of(wl)
        name = None if lq is None else str(lq["spec"]["clusterQueue"])
        cq = self.cluster_queues.get(name) if name else None
        active = cq is not None and cluster_queue_inactive(cq, self.flavors) is None
        return wls.QueueContext(lq, cq, name, active)


# -- ClusterQueues and cohorts -------------------------------------------------------------------
Quotas = dict[FlavorResource, ResourceQuota]


def _groups_and_quotas(spec: Mapping[str, Any]) -> tuple[tuple[ResourceGroup, ...], Quotas]:
    groups: list[ResourceGroup] = []
    quotas: dict[FlavorResource, ResourceQuota] = {}
    for group in spec.get("resourceGroups") or []:
        groups.append(ResourceGroup(tuple(group["coveredResources"]), tuple(f["name"] for f in group["flavors"])))
        for flavor in group["flavors"]:
            for r in flavor["resources"]:
                quotas[(flavor["name"], r["name"])] = ResourceQuota(
                    nominal=wls.milli(r["nominalQuota"]),
                    borrowing_limit=None if r.get("borrowingLimit") is None else wls.milli(r["borrowingLimit"]),
                    lending_limit=None if r.get("lendingLimit") is None else wls.milli(r["lendingLimit"]),
                )
    return tuple(groups), quotas


def _weight(spec: Mapping[str, Any]) -> float:
    weight = (spec.get("fairSharing") or {}).get("weight")
    return 1.0 if weight is None else float(Quantity.parse(weight).value)


def missing_flavors(cq: Mapping[str, Any], flavors: Mapping[str, Any]) -> list[str]:
    names = [f["name"] for g in (cq.get("spec") or {}).get("resourceGroups") or [] for f in g["flavors"]]
    return [n for n in names if n not in flavors]


def cluster_queue_inactive(cq: Mapping[str, Any], flavors: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of the Active=False condition, as Kueue's cache reports it, or None."""
    if (cq.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating", "Can't admit new workloads; clusterQueue is terminating"
    reasons, messages = [], []
    if ((cq.get("spec") or {}).get("stopPolicy") or "None") != "None":
        reasons.append("Stopped")
        messages.append("is stopped")
    missing = missing_flavors(cq, flavors)
    if missing:
        reasons.append("FlavorNotFound")
        messages.append(f"references missing ResourceFlavor(s): [{' '.join(missing)}]")
    if not reasons:
        return None
    return reasons[0], "Can't admit new workloads: " + ", ".join(messages) + "."


def cluster_queue_snapshot(cq: Mapping[str, Any], flavors: Mapping[str, Any]) -> ClusterQueueSnapshot:
    spec = cq.get("spec") or {}
    groups, quotas = _groups_and_quotas(spec)
    preemption = spec.get("preemption") or {}
    borrow = preemption.get("borrowWithinCohort") or {}
    fungibility = spec.get("flavorFungibility") or {}
    selector = spec.get("namespaceSelector")
    missing = missing_flavors(cq, flavors)
    return ClusterQueueSnapshot(
        name=cq["metadata"]["name"],
        cohort=spec.get("cohortName"),
        resource_groups=groups,
        quotas=quotas,
        queueing_strategy=spec.get("queueingStrategy", "BestEffortFIFO"),
        preemption=PreemptionPolicy(
            within_cluster_queue=preemption.get("withinClusterQueue", "Never"),
            reclaim_within_cohort=preemption.get("reclaimWithinCohort", "Never"),
            borrow_within_cohort=borrow.get("policy", "Never"),
            max_priority_threshold=borrow.get("maxPriorityThreshold"),
        ),
        when_can_borrow=fungibility.get("whenCanBorrow", "MayStopSearch"),
        when_can_preempt=fungibility.get("whenCanPreempt", "TryNextFlavor"),
        namespace_selector=None if selector is None else LabelSelector.model_validate(selector).to_selector(),
        stop_policy=spec.get("stopPolicy", "None"),
        fair_weight=_weight(spec),
        admission_fair_sharing=(spec.get("admissionScope") or {}).get("admissionMode") == AFS_MODE,
        # Stopping is stop_policy's business; inactive_reason is for queues that cannot work at all.
        inactive_reason=(None if not missing else f"references missing ResourceFlavor(s): [{' '.join(missing)}]"),
    )


def cohort_snapshots(objs: ApiObjects) -> dict[str, CohortSnapshot]:
    """Cohort objects, plus implicit cohorts named by a ClusterQueue or a parent but not created."""
    out: dict[str, CohortSnapshot] = {}
    for name, co in objs.cohorts.items():
        spec = co.get("spec") or {}
        groups, quotas = _groups_and_quotas(spec)
        out[name] = CohortSnapshot(name, spec.get("parentName"), quotas, groups, _weight(spec))
    named = [(cq.get("spec") or {}).get("cohortName") for cq in objs.cluster_queues.values()]
    named += [c.parent for c in list(out.values())]
    for implicit in named:
        if implicit and implicit not in out:
            out[implicit] = CohortSnapshot(implicit)
    return out


def cohort_root(cq_name: str, objs: ApiObjects) -> str:
    """The top of a ClusterQueue's cohort tree ("cq:<name>" for a queue without a cohort)."""
    cq = objs.cluster_queues.get(cq_name) or {}
    cohort = (cq.get("spec") or {}).get("cohortName")
    if not cohort:
        return f"cq:{cq_name}"
    seen = {cohort}
    while True:
        parent = ((objs.cohorts.get(cohort) or {}).get("spec") or {}).get("parentName")
        if not parent or parent in seen:
            return f"cohort:{cohort}"
        seen.add(parent)
        cohort = parent


def flavor_snapshot(rf: Mapping[str, Any]) -> FlavorSnapshot:
    spec = rf.get("spec") or {}
    return FlavorSnapshot(
        name=rf["metadata"]["name"],
        node_labels=dict(spec.get("nodeLabels") or {}),
        node_taints=tuple(Taint.model_validate(t) for t in spec.get("nodeTaints") or []),
        tolerations=tuple(Toleration.model_validate(t) for t in spec.get("tolerations") or []),
    )


# -- workloads -----------------------------------------------------------------------------------
def workload_priority(wl: Mapping[str, Any], priority_classes: Mapping[str, Any]) -> int:
    """spec.priority, else the value of the WorkloadPriorityClass in spec.priorityClassRef, else 0."""
    spec = wl.get("spec") or {}
    if spec.get("priority") is not None:
        return int(spec["priority"])
    ref = spec.get("priorityClassRef") or {}
    if ref.get("kind") == "WorkloadPriorityClass" and ref.get("name") in priority_classes:
        return int(priority_classes[ref["name"]].get("value", 0))
    return 0


def pod_set_infos(wl: Mapping[str, Any]) -> tuple[PodSetInfo, ...]:
    out = []
    for ps in (wl.get("spec") or {}).get("podSets") or []:
        pod = PodSpec.model_validate(ps["template"]["spec"])
        out.append(
            PodSetInfo(
                name=ps.get("name", "main"),
                count=int(ps.get("count", 1)),
                requests={r: q.milli_value() for r, q in pod.pod_requests().items()},
                min_count=ps.get("minCount"),
                node_selector=dict(pod.nodeSelector or {}),
                tolerations=tuple(pod.tolerations or ()),
            )
        )
    return tuple(out)


def admission_record(wl: Mapping[str, Any]) -> AdmissionRecord | None:
    admission = (wl.get("status") or {}).get("admission")
    if not admission or not wls.has_quota_reservation(wl):
        return None
    counts = {ps.get("name", "main"): ps.get("count", 1) for ps in (wl.get("spec") or {}).get("podSets") or []}
    return AdmissionRecord(
        cluster_queue=admission["clusterQueue"],
        pod_sets=tuple(
            PodSetAssignment(
                name=psa.get("name", "main"),
                flavors=dict(psa.get("flavors") or {}),
                resource_usage={r: wls.milli(q) for r, q in (psa.get("resourceUsage") or {}).items()},
                count=int(psa.get("count", counts.get(psa.get("name", "main"), 1))),
            )
            for psa in admission.get("podSetAssignments") or []
        ),
    )


def queue_order_timestamp(wl: Mapping[str, Any], config: QueueConfig) -> float:
    """Kueue's GetQueueOrderTimestamp: eviction time after a PodsReady timeout (requeuingStrategy
    timestamp Eviction), just after the preemption for InCohortReclaimWhileBorrowing, else creation."""
    evicted = wls.find_condition(wl, wls.EVICTED)
    timestamp = config.waitForPodsReady.requeuingStrategy.timestamp
    if (
        timestamp == "Eviction"
        and evicted is not None
        and evicted.get("status") == "True"
        and evicted.get("reason") == wls.EVICTED_BY_PODS_READY_TIMEOUT
    ):
        return wls.parse_time(evicted.get("lastTransitionTime"))
    preempted = wls.find_condition(wl, wls.PREEMPTED)
    if (
        preempted is not None
        and preempted.get("status") == "True"
        and preempted.get("reason") == "InCohortReclaimWhileBorrowing"
    ):
        return wls.parse_time(preempted.get("lastTransitionTime")) + 0.001
    return wls.parse_time(wl["metadata"].get("creationTimestamp"))


def workload_info(wl: Mapping[str, Any], objs: ApiObjects, config: QueueConfig, parked: bool) -> WorkloadInfo:
    meta = wl["metadata"]
    admitted = wls.find_condition(wl, wls.ADMITTED)
    return WorkloadInfo(
        namespace=meta["namespace"],
        name=meta["name"],
        local_queue=(wl.get("spec") or {}).get("queueName") or "",
        priority=workload_priority(wl, objs.priority_classes),
        created=queue_order_timestamp(wl, config),
        pod_sets=pod_set_infos(wl),
        uid=meta.get("uid", ""),
        admission=admission_record(wl),
        admitted_at=(
            wls.parse_time(admitted.get("lastTransitionTime"))
            if admitted and admitted.get("status") == "True"
            else None
        ),
        eligible_at=wls.requeue_at(wl),
        parked=parked,
        active=wls.is_active(wl),
    )


def is_candidate(wl: Mapping[str, Any], objs: ApiObjects) -> bool:
    """A pending workload the policy may admit: its LocalQueue and ClusterQueue exist and work."""
    return wls.is_pending(wl) and wls.pending_blocker(wl, objs.queue_context(wl)) is None


def local_queue_usage(lq: Mapping[str, Any], penalty: Mapping[str, float] | None = None) -> dict[str, float]:
    """Admission fair sharing: the decayed usage recorded in the LocalQueue's status plus the
    penalty of workloads admitted since that sample (milli-units)."""
    afs = ((lq.get("status") or {}).get("fairSharing") or {}).get("admissionFairSharingStatus") or {}
    usage = {r: float(wls.milli(q)) for r, q in (afs.get("consumedResources") or {}).items()}
    for r, v in (penalty or {}).items():
        usage[r] = usage.get(r, 0.0) + v
    return usage


InfoCache = dict[tuple[str, str, str, bool], WorkloadInfo]


@dataclass(frozen=True)
class QueueSnapshots:
    """The parts of a snapshot that change only when queues, cohorts, flavors or namespaces do."""

    cluster_queues: Mapping[str, ClusterQueueSnapshot]
    cohorts: Mapping[str, CohortSnapshot]
    flavors: Mapping[str, FlavorSnapshot]
    namespace_labels: Mapping[str, Mapping[str, str]]
    # Every LocalQueue -> whether a pending workload may be admitted through it (not stopped, its
    # ClusterQueue exists and is active).
    open_queues: Mapping[str, bool]


def queue_snapshots(objs: ApiObjects) -> QueueSnapshots:
    active = {n: cluster_queue_inactive(cq, objs.flavors) is None for n, cq in objs.cluster_queues.items()}
    return QueueSnapshots(
        cluster_queues={n: cluster_queue_snapshot(cq, objs.flavors) for n, cq in objs.cluster_queues.items()},
        cohorts=cohort_snapshots(objs),
        flavors={n: flavor_snapshot(rf) for n, rf in objs.flavors.items()},
        namespace_labels={n: dict(ns["metadata"].get("labels") or {}) for n, ns in objs.namespaces.items()},
        open_queues={
            k: wls.stop_policy(lq) == "None" and bool(active.get(lq["spec"]["clusterQueue"]))
            for k, lq in objs.local_queues.items()
        },
    )


def local_queue_snapshots(
    objs: ApiObjects, penalties: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, LocalQueueSnapshot]:
    """LocalQueues with their fair-sharing usage (status plus `penalties`, "namespace/name" ->
    resource -> milli-units)."""
    penalties = penalties or {}
    return {
        k: LocalQueueSnapshot(
            namespace=lq["metadata"]["namespace"],
            name=lq["metadata"]["name"],
            cluster_queue=lq["spec"]["clusterQueue"],
            stop_policy=lq["spec"].get("stopPolicy", "None"),
            fair_weight=_weight(lq["spec"]),
            usage=local_queue_usage(lq, penalties.get(k)),
        )
        for k, lq in objs.local_queues.items()
    }


def build_snapshot(
    objs: ApiObjects,
    config: QueueConfig,
    parked: AbstractSet[str] = frozenset(),
    penalties: Mapping[str, Mapping[str, float]] | None = None,
    cache: InfoCache | None = None,
) -> Snapshot:
    """The policy's view: queues, cohorts, flavors, and the workloads that are pending (candidates)
    or hold quota. Workloads whose queue is missing, stopped or inactive are left out: the driver
    reports them Inadmissible itself. `parked` workloads are marked so; `penalties` add to the
    LocalQueues' fair-sharing usage ("namespace/name" -> resource -> milli-units). `cache` keeps
    WorkloadInfos by resourceVersion between calls."""
    cache = {} if cache is None else cache
    classes = _text(sorted((n, c.get("value")) for n, c in objs.priority_classes.items()))
    queues = queue_snapshots(objs)
    workloads: dict[str, WorkloadInfo] = {}
    for k, wl in objs.workloads.items():
        cache_key = (k, str(wl["metadata"].get("resourceVersion")), classes, k in parked)
        info = cache.get(cache_key)
        if info is None:
            if not wls.holds_quota(wl) and not wls.is_pending(wl):
                continue
            info = cache[cache_key] = workload_info(wl, objs, config, k in parked)
        if info.admission is not None or queues.open_queues.get(f"{info.namespace}/{info.local_queue}"):
            workloads[k] = info
    return Snapshot(
        cluster_queues=queues.cluster_queues,
        cohorts=queues.cohorts,
        flavors=queues.flavors,
        local_queues=local_queue_snapshots(objs, penalties),
        workloads=workloads,
        namespace_labels=queues.namespace_labels,
    )


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
