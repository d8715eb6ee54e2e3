"""Kueue's scheduler-performance scenarios (test/performance/scheduler), read from its files.

A generator file declares cohorts x ClusterQueues x workload sets; Kueue's runner creates, per
ClusterQueue, a namespace and a LocalQueue of the same name, one ResourceFlavor `rf`, quotas on
`cpu` (nominalQuota, borrowingLimit) and the preemption policies given, then creates each
workload set's workloads one every `creationIntervalMs` (the first after one interval; sets of a
queue run concurrently). Each workload requests `request` cpu in one pod, runs `runtimeMs` after
admission and finishes. A range-spec file holds the thresholds Kueue's CI checks.

Kueue reports, per ClusterQueue class, the average usage as a share of nominal quota between the
first and the last event, and, per workload class, the average time from creation to admission.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from flotilla.api.labels import Selector
from flotilla.api.quantity import Quantity
from flotilla.queue.types import (
    ClusterQueueSnapshot,
    CohortSnapshot,
    FlavorSnapshot,
    LocalQueueSnapshot,
    PodSetInfo,
    PreemptionPolicy,
    ResourceGroup,
    ResourceQuota,
    WorkloadInfo,
)

FLAVOR = "rf"
RESOURCE = "cpu"
KUEUE = "kueue.x-k8s.io/v1beta2"
# The labels Kueue's generator puts on what it creates.
CLASS_LABEL = "kueue.x-k8s.io/scalability-class"
RUNTIME_LABEL = "kueue.x-k8s.io/scalability-running-ms"
JSON = dict[str, Any]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkloadTemplate(_Model):
    className: str
    runtimeMs: int = Field(ge=0)
    priority: int = 0
    request: str | int
    podCount: int = Field(default=1, ge=1)


class WorkloadsSet(_Model):
    count: int = Field(ge=0)
    creationIntervalMs: int = Field(ge=0)
    workloads: tuple[WorkloadTemplate, ...]


class QueuesSet(_Model):
    className: str
    count: int = Field(ge=0)
    nominalQuota: str | int
    borrowingLimit: str | int | None = None
    reclaimWithinCohort: Literal["Never", "LowerPriority", "Any"] = "Never"
    withinClusterQueue: Literal["Never", "LowerPriority", "LowerOrNewerEqualPriority"] = "Never"
    workloadsSets: tuple[WorkloadsSet, ...] = ()


class CohortSet(_Model):
    className: str
    count: int = Field(ge=0)
    queuesSets: tuple[QueuesSet, ...]


class GeneratorConfig(_Model):
    cohorts: tuple[CohortSet, ...] = Field(min_length=1)


class RangeSpec(BaseModel):
    """Kueue's thresholds for a scenario (the `*-rangespec.yaml` files)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    maxWallMs: int
    clusterQueueClassesMinUsage: dict[str, float]
    wlClassesMaxAvgTimeToAdmissionMs: dict[str, int]


def load_generator(path: Path) -> GeneratorConfig:
    return GeneratorConfig.model_validate(yaml.safe_load(path.read_text()))


def load_rangespec(path: Path) -> RangeSpec:
    raw = yaml.safe_load(path.read_text())
    return RangeSpec(
        maxWallMs=int(raw["cmd"]["maxWallMs"]),
        clusterQueueClassesMinUsage={k: float(v) for k, v in raw["clusterQueueClassesMinUsage"].items()},
        wlClassesMaxAvgTimeToAdmissionMs={k: int(v) for k, v in raw["wlClassesMaxAvgTimeToAdmissionMs"].items()},
    )


@dataclass(frozen=True)
class Arrival:
    """One workload of the scenario: when it is created and how long it runs once admitted."""

    at: float  # seconds from the start
    workload: WorkloadInfo
    workload_class: str
    runtime: float  # seconds
    queue_class: str


@dataclass(frozen=True)
class PerfScenario:
    cluster_queues: dict[str, ClusterQueueSnapshot]
    queue_classes: dict[str, str]  # ClusterQueue name -> class
    cohorts: dict[str, CohortSnapshot]
    flavors: dict[str, FlavorSnapshot]
    local_queues: dict[str, LocalQueueSnapshot]
    arrivals: tuple[Arrival, ...]  # sorted by time

    @property
    def namespace_labels(self) -> dict[str, dict[str, str]]:
        return {cq: {} for cq in self.cluster_queues}


def _milli(value: str | int) -> int:
    return Quantity.parse(value).milli_value()


def expand(config: GeneratorConfig) -> PerfScenario:
    """The objects and the arrival schedule Kueue's runner would create for `config`."""
    cqs: dict[str, ClusterQueueSnapshot] = {}
    classes: dict[str, str] = {}
    cohorts: dict[str, CohortSnapshot] = {}
    lqs: dict[str, LocalQueueSnapshot] = {}
    arrivals: list[Arrival] = []
    for cset in config.cohorts:
        for ci in range(cset.count):
            cohort = f"{cset.className}-{ci}"
            cohorts[cohort] = CohortSnapshot(cohort)
            for qsi, qset in enumerate(cset.queuesSets):
                for qi in range(qset.count):
                    name = f"{qset.className}-{qsi}-{qi}-{cohort}"
                    borrowing = _milli(qset.borrowingLimit) if qset.borrowingLimit is not None else None
                    cqs[name] = ClusterQueueSnapshot(
                        name=name,
                        cohort=cohort,
                        resource_groups=(ResourceGroup((RESOURCE,), (FLAVOR,)),),
                        quotas={(FLAVOR, RESOURCE): ResourceQuota(_milli(qset.nominalQuota), borrowing)},
                        preemption=PreemptionPolicy(
                            within_cluster_queue=qset.withinClusterQueue,
                            reclaim_within_cohort=qset.reclaimWithinCohort,
                        ),
                        namespace_selector=Selector(),
                    )
                    classes[name] = qset.className
                    lqs[f"{name}/{name}"] = LocalQueueSnapshot(name, name, name)
                    arrivals.extend(_arrivals(qset, name))
    arrivals.sort(key=lambda a: (a.at, a.workload.key))
    return PerfScenario(cqs, classes, cohorts, {FLAVOR: FlavorSnapshot(FLAVOR)}, lqs, tuple(arrivals))


def _arrivals(qset: QueuesSet, queue: str) -> list[Arrival]:
    out = []
    for wsi, wset in enumerate(qset.workloadsSets):
        step = 0
        for si in range(wset.count):
            for i, wlt in enumerate(wset.workloads):
                step += 1
                at = step * wset.creationIntervalMs / 1000
                wl = WorkloadInfo(
                    namespace=queue,
                    name=f"{wlt.className}-{wsi}-{si}-{i}",
                    local_queue=queue,
                    priority=wlt.priority,
                    created=at,
                    pod_sets=(PodSetInfo("main", wlt.podCount, {RESOURCE: _milli(wlt.request)}),),
                    uid=f"{queue}/{wlt.className}-{wsi}-{si}-{i}",
                )
                out.append(Arrival(at, wl, wlt.className, wlt.runtimeMs / 1000, qset.className))
    return out


# -- the same scenario as API objects (for a run through the control plane) -----------------------
def _quantity(milli: int) -> str:
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def setup_objects(spec: PerfScenario) -> list[JSON]:
    """What Kueue's runner creates before any workload: the ResourceFlavor `rf`, then per
    ClusterQueue the ClusterQueue (cohort, cpu quota, preemption policies), a Namespace and a
    LocalQueue of the same name (all v1beta2 / v1 JSON, ready to apply)."""
    out: list[JSON] = [{"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": FLAVOR}, "spec": {}}]
    for name, cq in spec.cluster_queues.items():
        quota = cq.quotas[(FLAVOR, RESOURCE)]
        resource: JSON = {"name": RESOURCE, "nominalQuota": _quantity(quota.nominal)}
        if quota.borrowing_limit is not None:
            resource["borrowingLimit"] = _quantity(quota.borrowing_limit)
        labels = {CLASS_LABEL: spec.queue_classes[name]}
        cq_spec: JSON = {
            "namespaceSelector": {},
            "resourceGroups": [
                {"coveredResources": [RESOURCE], "flavors": [{"name": FLAVOR, "resources": [resource]}]}
            ],
            "preemption": {
                "reclaimWithinCohort": cq.preemption.reclaim_within_cohort,
                "withinClusterQueue": cq.preemption.within_cluster_queue,
            },
        }
        if cq.cohort:
            cq_spec["cohortName"] = cq.cohort
        out += [
            {
                "apiVersion": KUEUE,
                "kind": "ClusterQueue",
                "metadata": {"name": name, "labels": labels},
                "spec": cq_spec,
            },
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            {
                "apiVersion": KUEUE,
                "kind": "LocalQueue",
                "metadata": {"name": name, "namespace": name},
                "spec": {"clusterQueue": name},
            },
        ]
    return out


def workload_object(arrival: Arrival) -> JSON:
    """The Workload Kueue's runner creates for an arrival: one pod set `main` of `podCount` pods
    requesting `request` cpu, the workload's priority and LocalQueue, and labels naming its class
    and runtime (Kueue's runner creates Workloads directly, not Jobs)."""
    wl = arrival.workload
    (ps,) = wl.pod_sets
    container = {
        "name": "main",
        "image": "registry.k8s.io/pause:3.9",
        "resources": {"requests": {r: _quantity(v) for r, v in ps.requests.items()}},
    }
    return {
        "apiVersion": KUEUE,
        "kind": "Workload",
        "metadata": {
            "name": wl.name,
            "namespace": wl.namespace,
            "labels": {CLASS_LABEL: arrival.workload_class, RUNTIME_LABEL: str(round(arrival.runtime * 1000))},
        },
        "spec": {
            "queueName": wl.local_queue,
            "priority": wl.priority,
            "podSets": [
                {
                    "name": ps.name,
                    "count": ps.count,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
                }
            ],
        },
    }
