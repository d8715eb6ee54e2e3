"""Kueue v1beta1: the fields that differ from v1beta2, and conversion to and from v1beta2.

- ClusterQueue `spec.cohort` is v1beta2 `spec.cohortName`; v1beta1 `spec.admissionChecks` (a list
  of names) becomes `spec.admissionChecksStrategy.admissionChecks`; the deprecated fungibility
  values `Borrow` and `Preempt` mean `MayStopSearch`.
- Workload `spec.priorityClassName` + `spec.priorityClassSource` are v1beta2 `spec.priorityClassRef`.
Kinds whose schema is the same in both versions (ResourceFlavor, LocalQueue, Cohort,
WorkloadPriorityClass) use the v1beta2 models directly.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field

from flotilla.api.base import KubeModel, LabelSelector, Resource
from flotilla.api.errors import FieldIssue
from flotilla.api.kueue import (
    AdmissionChecksStrategy,
    AdmissionScope,
    ClusterQueueStatus,
    FairSharing,
    PodSet,
    Preemption,
    ResourceGroup,
    StopPolicy,
    WorkloadStatus,
    quota_issues,
)

JSON = dict[str, Any]


class FlavorFungibilityV1beta1(KubeModel):
    whenCanBorrow: Literal["MayStopSearch", "TryNextFlavor", "Borrow"] = "MayStopSearch"
    whenCanPreempt: Literal["MayStopSearch", "TryNextFlavor", "Preempt"] = "TryNextFlavor"
    preference: Literal["BorrowingOverPreemption", "PreemptionOverBorrowing"] | None = None


class ClusterQueueSpecV1beta1(KubeModel):
    resourceGroups: list[ResourceGroup] | None = Field(default=None, max_length=16)
    cohort: str | None = None
    queueingStrategy: Literal["StrictFIFO", "BestEffortFIFO"] = "BestEffortFIFO"
    namespaceSelector: LabelSelector | None = None
    flavorFungibility: FlavorFungibilityV1beta1 = Field(default_factory=FlavorFungibilityV1beta1)
    preemption: Preemption = Field(default_factory=Preemption)
    admissionChecks: list[str] | None = None
    admissionChecksStrategy: AdmissionChecksStrategy | None = None
    stopPolicy: StopPolicy = "None"
    fairSharing: FairSharing | None = None
    admissionScope: AdmissionScope | None = None


class ClusterQueueV1beta1(Resource):
    spec: ClusterQueueSpecV1beta1 = Field(default_factory=ClusterQueueSpecV1beta1)
    status: ClusterQueueStatus | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        issues = quota_issues(self.spec.resourceGroups or [], self.spec.cohort is not None, "spec")
        if self.spec.admissionChecks and self.spec.admissionChecksStrategy:
            issues.append(
                FieldIssue("spec.admissionChecks", "set either admissionChecks or admissionChecksStrategy, not both")
            )
        p = self.spec.preemption
        if p.reclaimWithinCohort == "Never" and p.borrowWithinCohort.policy != "Never":
            issues.append(
                FieldIssue(
                    "spec.preemption.borrowWithinCohort.policy",
                    "must be Never when reclaimWithinCohort is Never",
                )
            )
        return issues


_FUNGIBILITY_ALIASES = {"Borrow": "MayStopSearch", "Preempt": "MayStopSearch"}


def cluster_queue_to_v1beta2(obj: JSON) -> JSON:
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    if "cohort" in spec:
        spec["cohortName"] = spec.pop("cohort")
    names = spec.pop("admissionChecks", None)
    if names:
        spec["admissionChecksStrategy"] = {"admissionChecks": [{"name": n} for n in names]}
    fung = spec.get("flavorFungibility") or {}
    for key in ("whenCanBorrow", "whenCanPreempt"):
        if key in fung:
            fung[key] = _FUNGIBILITY_ALIASES.get(fung[key], fung[key])
    return out


def cluster_queue_to_v1beta1(obj: JSON) -> JSON:
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    if "cohortName" in spec:
        spec["cohort"] = spec.pop("cohortName")
    spec.pop("concurrentAdmissionPolicy", None)  # not in v1beta1
    return out


class WorkloadSpecV1beta1(KubeModel):
    podSets: list[PodSet] = Field(min_length=1, max_length=8)
    queueName: str | None = None
    priority: int | None = None
    priorityClassName: str | None = None
    priorityClassSource: Literal["kueue.x-k8s.io/workloadpriorityclass", "scheduling.k8s.io/priorityclass", ""] = ""
    active: bool = True
    maximumExecutionTimeSeconds: int | None = Field(default=None, ge=1)


class WorkloadStatusV1beta1(WorkloadStatus):
    accumulatedPastExexcutionTimeSeconds: int | None = None  # sic: the v1beta1 spelling


class WorkloadV1beta1(Resource):
    spec: WorkloadSpecV1beta1
    status: WorkloadStatusV1beta1 | None = None


_SOURCE_TO_REF = {
    "kueue.x-k8s.io/workloadpriorityclass": ("kueue.x-k8s.io", "WorkloadPriorityClass"),
    "scheduling.k8s.io/priorityclass": ("scheduling.k8s.io", "PriorityClass"),
    "": ("scheduling.k8s.io", "PriorityClass"),
}


def workload_to_v1beta2(obj: JSON) -> JSON:
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    name = spec.pop("priorityClassName", None)
    source = spec.pop("priorityClassSource", "")
    if name:
        group, kind = _SOURCE_TO_REF[source]
        spec["priorityClassRef"] = {"group": group, "kind": kind, "name": name}
    status = out.get("status") or {}
    if "accumulatedPastExexcutionTimeSeconds" in status:
        status["accumulatedPastExecutionTimeSeconds"] = status.pop("accumulatedPastExexcutionTimeSeconds")
    return out


def workload_to_v1beta1(obj: JSON) -> JSON:
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    ref = spec.pop("priorityClassRef", None)
    spec.pop("preemptionGates", None)
    if ref:
        spec["priorityClassName"] = ref["name"]
        spec["priorityClassSource"] = (
            "kueue.x-k8s.io/workloadpriorityclass"
            if ref["kind"] == "WorkloadPriorityClass"
            else "scheduling.k8s.io/priorityclass"
        )
    status = out.get("status") or {}
    status.pop("preemptionGates", None)
    if "accumulatedPastExecutionTimeSeconds" in status:
        status["accumulatedPastExexcutionTimeSeconds"] = status.pop("accumulatedPastExecutionTimeSeconds")
    return out
