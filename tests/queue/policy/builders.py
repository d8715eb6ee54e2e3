"""Small fluent builders for the admission policy's snapshot types, and a scenario runner.

    cq("a").cohort("c").quota("gpu-flavor", GPU, 8, borrowing_limit=4)
    wl("ns/w1").queue("a").priority(100).pods(2, gpu=1).admitted_in("a", flavor="gpu-flavor")
    snapshot(cq(...), wl(...), flavor("spot").taint("spot", "true"))

Amounts are written as Kubernetes quantities (8, "500m", "36Gi") and stored in milli-units.
Request keywords: `gpu` means nvidia.com/gpu; other keywords are resource names as written.
`snapshot()` creates a ResourceFlavor for every flavor a queue names (unless one is given) and a
LocalQueue `<namespace>/<cq name>` for every ClusterQueue and every namespace used by workloads
(unless given), so `wl("ns/w").queue("a")` reaches ClusterQueue "a".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from flotilla.api.base import Taint, Toleration
from flotilla.api.labels import Selector, parse_selector
from flotilla.api.quantity import Quantity
from flotilla.queue.types import (
    AdmissionRecord,
    ClusterQueueSnapshot,
    CohortSnapshot,
    FlavorSnapshot,
    LocalQueueSnapshot,
    PodSetAssignment,
    PodSetInfo,
    PreemptionPolicy,
    ResourceGroup,
    ResourceQuota,
    Snapshot,
    WorkloadInfo,
)

GPU = "nvidia.com/gpu"


def milli(value: int | str) -> int:
    return Quantity.parse(value).milli_value()


def resource_name(name: str) -> str:
    """`gpu` is shorthand for nvidia.com/gpu."""
    return GPU if name == "gpu" else name


def _requests(amounts: Mapping[str, int | str]) -> dict[str, int]:
    return {resource_name(k): milli(v) for k, v in amounts.items()}


# -- queues -----------------------------------------------------------------------------------
class _QuotaOwner:
    def __init__(self) -> None:
        self.groups: list[tuple[list[str], list[str]]] = []  # (covered, flavors)
        self.quotas: dict[tuple[str, str], ResourceQuota] = {}

    def _add_quota(
        self,
        flavor: str,
        resource: str,
        nominal: int | str,
        borrowing_limit: int | str | None,
        lending_limit: int | str | None,
    ) -> None:
        resource = resource_name(resource)
        group = next((g for g in self.groups if resource in g[0]), None)
        group = group or next((g for g in self.groups if flavor in g[1]), None)
        if group is None:
            group = ([], [])
            self.groups.append(group)
        if resource not in group[0]:
            group[0].append(resource)
        if flavor not in group[1]:
            group[1].append(flavor)
        self.quotas[(flavor, resource)] = ResourceQuota(
            milli(nominal),
            None if borrowing_limit is None else milli(borrowing_limit),
            None if lending_limit is None else milli(lending_limit),
        )

    def _groups(self) -> tuple[ResourceGroup, ...]:
        return tuple(ResourceGroup(tuple(c), tuple(f)) for c, f in self.groups)


class CQ(_QuotaOwner):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fields: dict[str, Any] = {"namespace_selector": Selector()}
        self.policy = PreemptionPolicy()

    def cohort(self, name: str) -> CQ:
        self.fields["cohort"] = name
        return self

    def quota(
        self,
        flavor: str,
        resource: str,
        nominal: int | str,
        borrowing_limit: int | str | None = None,
        lending_limit: int | str | None = None,
    ) -> CQ:
        self._add_quota(flavor, resource, nominal, borrowing_limit, lending_limit)
        return self

    def strategy(self, value: str) -> CQ:
        self.fields["queueing_strategy"] = value
        return self

    def preemption(
        self, within: str = "Never", reclaim: str = "Never", borrow: str = "Never", threshold: int | None = None
    ) -> CQ:
        self.policy = PreemptionPolicy(within, reclaim, borrow, threshold)  # type: ignore[arg-type]
        return self

    def fungibility(
        self, borrow: str = "MayStopSearch", preempt: str = "TryNextFlavor", preference: str | None = None
    ) -> CQ:
        self.fields.update(when_can_borrow=borrow, when_can_preempt=preempt, fungibility_preference=preference)
        return self

    def selector(self, text: str | None) -> CQ:
        self.fields["namespace_selector"] = None if text is None else parse_selector(text)
        return self

    def stop(self, policy: str) -> CQ:
        self.fields["stop_policy"] = policy
        return self

    def weight(self, value: float) -> CQ:
        self.fields["fair_weight"] = value
        return self

    def admission_fair_sharing(self) -> CQ:
        self.fields["admission_fair_sharing"] = True
        return self

    def inactive(self, reason: str) -> CQ:
        self.fields["inactive_reason"] = reason
        return self

    def build(self) -> ClusterQueueSnapshot:
        fields = {"cohort": None, **self.fields}
        return ClusterQueueSnapshot(
            name=self.name, resource_groups=self._groups(), quotas=dict(self.quotas), preemption=self.policy, **fields
        )


class Cohort(_QuotaOwner):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self._parent: str | None = None
        self._weight = 1.0

    def parent(self, name: str) -> Cohort:
        self._parent = name
        return self

    def quota(
        self,
        flavor: str,
        resource: str,
        nominal: int | str,
        borrowing_limit: int | str | None = None,
        lending_limit: int | str | None = None,
    ) -> Cohort:
        self._add_quota(flavor, resource, nominal, borrowing_limit, lending_limit)
        return self

    def weight(self, value: float) -> Cohort:
        self._weight = value
        return self

    def build(self) -> CohortSnapshot:
        return CohortSnapshot(self.name, self._parent, dict(self.quotas), self._groups(), self._weight)


class Flavor:
    def __init__(self, name: str) -> None:
        self.snapshot = FlavorSnapshot(name)

    def labels(self, **labels: str) -> Flavor:
        self.snapshot = replace(self.snapshot, node_labels={**self.snapshot.node_labels, **labels})
        return self

    def taint(self, key: str, value: str | None, effect: str = "NoSchedule") -> Flavor:
        taint = Taint(key=key, value=value, effect=effect)
        self.snapshot = replace(self.snapshot, node_taints=(*self.snapshot.node_taints, taint))
        return self

    def toleration(self, key: str, value: str | None = None, operator: str = "Equal") -> Flavor:
        toleration = Toleration(key=key, value=value, operator=operator)
        self.snapshot = replace(self.snapshot, tolerations=(*self.snapshot.tolerations, toleration))
        return self

    def build(self) -> FlavorSnapshot:
        return self.snapshot


class LQ:
    def __init__(self, key: str, cluster_queue: str) -> None:
        namespace, name = key.split("/")
        self.snapshot = LocalQueueSnapshot(namespace, name, cluster_queue)

    def stop(self, policy: str) -> LQ:
        self.snapshot = replace(self.snapshot, stop_policy=policy)  # type: ignore[arg-type]
        return self

    def weight(self, value: float) -> LQ:
        self.snapshot = replace(self.snapshot, fair_weight=value)
        return self

    def usage(self, **amounts: float) -> LQ:
        self.snapshot = replace(self.snapshot, usage={resource_name(k): float(v) for k, v in amounts.items()})
        return self

    def build(self) -> LocalQueueSnapshot:
        return self.snapshot


# -- workloads --------------------------------------------------------------------------------
class WL:
    def __init__(self, key: str) -> None:
        namespace, name = key.split("/")
        self.fields: dict[str, Any] = {"namespace": namespace, "name": name, "local_queue": "", "priority": 0}
        self.fields.update(created=0.0, uid=f"uid-{name}")
        self.pod_sets: list[PodSetInfo] = []
        self.admission: tuple[str, dict[str, str], list[int] | None] | None = None

    def queue(self, name: str) -> WL:
        self.fields["local_queue"] = name
        return self

    def priority(self, value: int) -> WL:
        self.fields["priority"] = value
        return self

    def created(self, at: float) -> WL:
        self.fields["created"] = at
        return self

    def uid(self, value: str) -> WL:
        self.fields["uid"] = value
        return self

    def pods(self, count: int, **requests: int | str) -> WL:
        return self._add_pod_set(PodSetInfo("main", count, _requests(requests)))

    def pod_set(
        self,
        name: str,
        count: int,
        min_count: int | None = None,
        selector: Mapping[str, str] | None = None,
        tolerations: tuple[Toleration, ...] = (),
        **requests: int | str,
    ) -> WL:
        return self._add_pod_set(
            PodSetInfo(name, count, _requests(requests), min_count, dict(selector or {}), tolerations)
        )

    def _add_pod_set(self, pod_set: PodSetInfo) -> WL:
        self.pod_sets.append(pod_set)
        return self

    def admitted_in(
        self,
        cq: str,
        flavor: str = "default",
        at: float = 0.0,
        flavors: Mapping[str, str] | None = None,
        counts: list[int] | None = None,
    ) -> WL:
        chosen = {resource_name(k): v for k, v in (flavors or {}).items()}
        self.admission = (cq, {"*": flavor, **chosen}, counts)
        self.fields["admitted_at"] = at
        return self

    def eligible_at(self, at: float) -> WL:
        self.fields["eligible_at"] = at
        return self

    def parked(self) -> WL:
        self.fields["parked"] = True
        return self

    def inactive(self) -> WL:
        self.fields["active"] = False
        return self

    def build(self) -> WorkloadInfo:
        return WorkloadInfo(pod_sets=tuple(self.pod_sets), admission=self._admission(), **self.fields)

    def _admission(self) -> AdmissionRecord | None:
        if self.admission is None:
            return None
        cq, flavors, counts = self.admission
        assignments = []
        for i, ps in enumerate(self.pod_sets):
            count = ps.count if counts is None else counts[i]
            assignments.append(
                PodSetAssignment(
                    ps.name,
                    {r: flavors.get(r, flavors["*"]) for r in ps.requests},
                    {r: v * count for r, v in ps.requests.items()},
                    count,
                )
            )
        return AdmissionRecord(cq, tuple(assignments))


Obj = CQ | Cohort | Flavor | LQ | WL


def cq(name: str) -> CQ:
    return CQ(name)


def cohort(name: str) -> Cohort:
    return Cohort(name)


def flavor(name: str) -> Flavor:
    return Flavor(name)


def lq(key: str, cluster_queue: str) -> LQ:
    return LQ(key, cluster_queue)


def wl(key: str) -> WL:
    return WL(key)


def snapshot(
    *objects: CQ | Cohort | Flavor | LQ | WL, namespaces: Mapping[str, Mapping[str, str]] | None = None
) -> Snapshot:
    cqs = {o.name: o.build() for o in objects if isinstance(o, CQ)}
    workloads = {w.key: w for w in (o.build() for o in objects if isinstance(o, WL))}
    flavors = {f.name: f for f in (o.build() for o in objects if isinstance(o, Flavor))}
    for spec in cqs.values():
        for group in spec.resource_groups:
            for name in group.flavors:
                flavors.setdefault(name, FlavorSnapshot(name))
    local_queues = {q.key: q for q in (o.build() for o in objects if isinstance(o, LQ))}
    for namespace in sorted({w.namespace for w in workloads.values()}):
        for name in cqs:
            local_queues.setdefault(f"{namespace}/{name}", LocalQueueSnapshot(namespace, name, name))
    return Snapshot(
        cluster_queues=cqs,
        cohorts={c.name: c.build() for c in objects if isinstance(c, Cohort)},
        flavors=flavors,
        local_queues=local_queues,
        workloads=workloads,
        namespace_labels=dict(namespaces or {}),
    )
