"""Kueue kinds (kueue.x-k8s.io), internal form = v1beta2. v1beta1 lives in kueue_v1beta1.py.

Defaults are Kueue's CRD defaults, so a stored object reads back as a Kueue API server returns it.
Cross-field rules are Kueue's CEL rules and webhook checks, reported with field paths.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flotilla.api.base import Condition, KubeModel, LabelSelector, Resource, Taint, Toleration
from flotilla.api.errors import FieldIssue
from flotilla.api.pod import PodTemplateSpec
from flotilla.api.quantity import Quantity, QuantityField

GROUP = "kueue.x-k8s.io"
StopPolicy = Literal["None", "Hold", "HoldAndDrain"]


class ResourceFlavorSpec(KubeModel):
    nodeLabels: dict[str, str] | None = None
    nodeTaints: list[Taint] | None = None
    tolerations: list[Toleration] | None = None
    topologyName: str | None = None


class ResourceFlavor(Resource):
    spec: ResourceFlavorSpec = Field(default_factory=ResourceFlavorSpec)


class ResourceQuota(KubeModel):
    name: str
    nominalQuota: QuantityField
    borrowingLimit: QuantityField | None = None
    lendingLimit: QuantityField | None = None


class FlavorQuotas(KubeModel):
    name: str
    resources: list[ResourceQuota] = Field(min_length=1, max_length=64)


class ResourceGroup(KubeModel):
    coveredResources: list[str] = Field(min_length=1, max_length=64)
    flavors: list[FlavorQuotas] = Field(min_length=1, max_length=64)


class FairSharing(KubeModel):
    weight: QuantityField = Field(default_factory=lambda: Quantity(1))


class BorrowWithinCohort(KubeModel):
    policy: Literal["Never", "LowerPriority"] = "Never"
    maxPriorityThreshold: int | None = None


class Preemption(KubeModel):
    reclaimWithinCohort: Literal["Never", "LowerPriority", "Any"] = "Never"
    borrowWithinCohort: BorrowWithinCohort = Field(default_factory=BorrowWithinCohort)
    withinClusterQueue: Literal["Never", "LowerPriority", "LowerOrNewerEqualPriority"] = "Never"


class FlavorFungibility(KubeModel):
    whenCanBorrow: Literal["MayStopSearch", "TryNextFlavor"] = "MayStopSearch"
    whenCanPreempt: Literal["MayStopSearch", "TryNextFlavor"] = "TryNextFlavor"
    preference: Literal["BorrowingOverPreemption", "PreemptionOverBorrowing"] | None = None


class AdmissionCheckStrategyRule(KubeModel):
    name: str
    onFlavors: list[str] | None = None


class AdmissionChecksStrategy(KubeModel):
    admissionChecks: list[AdmissionCheckStrategyRule] | None = None


class AdmissionScope(KubeModel):
    admissionMode: Literal["UsageBasedAdmissionFairSharing", "NoAdmissionFairSharing"]


class MigrationConstraints(KubeModel):
    lastAcceptableFlavorName: str | None = None


class Migration(KubeModel):
    mode: Literal["TryPreferredFlavors", "RetainFirstAdmission"] | None = None
    constraints: MigrationConstraints | None = None


class ConcurrentAdmissionPolicy(KubeModel):
    migration: Migration | None = None


class ClusterQueueSpec(KubeModel):
    resourceGroups: list[ResourceGroup] | None = Field(default=None, max_length=16)
    cohortName: str | None = None
    queueingStrategy: Literal["StrictFIFO", "BestEffortFIFO"] = "BestEffortFIFO"
    namespaceSelector: LabelSelector | None = None
    flavorFungibility: FlavorFungibility = Field(default_factory=FlavorFungibility)
    preemption: Preemption = Field(default_factory=Preemption)
    admissionChecksStrategy: AdmissionChecksStrategy | None = None
    stopPolicy: StopPolicy = "None"
    fairSharing: FairSharing | None = None
    admissionScope: AdmissionScope | None = None
    concurrentAdmissionPolicy: ConcurrentAdmissionPolicy | None = None


class FlavorUsage(KubeModel):
    name: str
    resources: list[dict[str, Any]] = Field(default_factory=list)


class QueueStatus(KubeModel):
    """Status shared by ClusterQueue and LocalQueue: workload counts and flavor usage."""

    conditions: list[Condition] | None = None
    pendingWorkloads: int | None = None
    reservingWorkloads: int | None = None
    admittedWorkloads: int | None = None
    flavorsReservation: list[FlavorUsage] | None = None
    flavorsUsage: list[FlavorUsage] | None = None
    fairSharing: dict[str, Any] | None = None


class ClusterQueueStatus(QueueStatus):
    pass


def quota_issues(groups: list[ResourceGroup], has_parent: bool, prefix: str) -> list[FieldIssue]:
    """Kueue's rules for resourceGroups, shared by ClusterQueue and Cohort."""
    issues: list[FieldIssue] = []
    seen_resources: dict[str, int] = {}
    seen_flavors: dict[str, int] = {}
    for g, group in enumerate(groups):
        gp = f"{prefix}.resourceGroups[{g}]"
        for r in group.coveredResources:
            if r in seen_resources:
                issues.append(
                    FieldIssue(
                        f"{gp}.coveredResources",
                        f'"{r}" is already covered by resourceGroups[{seen_resources[r]}]',
                    )
                )
            seen_resources.setdefault(r, g)
        for f, flavor in enumerate(group.flavors):
            fp = f"{gp}.flavors[{f}]"
            if flavor.name in seen_flavors:
                issues.append(
                    FieldIssue(
                        f"{fp}.name",
                        f'flavor "{flavor.name}" already appears in resourceGroups[{seen_flavors[flavor.name]}]',
                    )
                )
            seen_flavors.setdefault(flavor.name, g)
            names = [r.name for r in flavor.resources]
            if names != group.coveredResources:
                issues.append(
                    FieldIssue(
                        f"{fp}.resources",
                        f"must list exactly the coveredResources {group.coveredResources} in that order, got {names}",
                    )
                )
            for i, quota in enumerate(flavor.resources):
                rp = f"{fp}.resources[{i}]"
                for fname in ("nominalQuota", "borrowingLimit", "lendingLimit"):
                    q: Quantity | None = getattr(quota, fname)
                    if q is not None and q.value < 0:
                        issues.append(FieldIssue(f"{rp}.{fname}", f'"{q}" must be greater than or equal to 0'))
                if not has_parent and quota.borrowingLimit is not None:
                    issues.append(
                        FieldIssue(f"{rp}.borrowingLimit", "must be omitted when there is no cohort to borrow from")
                    )
                if not has_parent and quota.lendingLimit is not None:
                    issues.append(
                        FieldIssue(f"{rp}.lendingLimit", "must be omitted when there is no cohort to lend to")
                    )
                if quota.lendingLimit is not None and quota.lendingLimit > quota.nominalQuota:
                    issues.append(
                        FieldIssue(
                            f"{rp}.lendingLimit",
                            f'"{quota.lendingLimit}" must be at most nominalQuota ({quota.nominalQuota})',
                        )
                    )
    return issues


class ClusterQueue(Resource):
    spec: ClusterQueueSpec = Field(default_factory=ClusterQueueSpec)
    status: ClusterQueueStatus | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        spec = self.spec
        issues = quota_issues(spec.resourceGroups or [], spec.cohortName is not None, "spec")
        p = spec.preemption
        if p.reclaimWithinCohort == "Never" and p.borrowWithinCohort.policy != "Never":
            issues.append(
                FieldIssue(
                    "spec.preemption.borrowWithinCohort.policy",
                    "must be Never when reclaimWithinCohort is Never",
                )
            )
        if spec.fairSharing is not None and spec.fairSharing.weight.value < 0:
            issues.append(
                FieldIssue("spec.fairSharing.weight", f'"{spec.fairSharing.weight}" must be greater than or equal to 0')
            )
        return issues


class CohortSpec(KubeModel):
    parentName: str | None = None
    resourceGroups: list[ResourceGroup] | None = Field(default=None, max_length=16)
    fairSharing: FairSharing | None = None


class Cohort(Resource):
    spec: CohortSpec = Field(default_factory=CohortSpec)
    status: dict[str, Any] | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        issues = quota_issues(self.spec.resourceGroups or [], self.spec.parentName is not None, "spec")
        if self.spec.parentName == self.name:
            issues.append(FieldIssue("spec.parentName", "a Cohort cannot be its own parent"))
        return issues


class LocalQueueSpec(KubeModel):
    clusterQueue: str
    stopPolicy: StopPolicy = "None"
    fairSharing: FairSharing | None = None


class LocalQueueStatus(QueueStatus):
    pass


class LocalQueue(Resource):
    spec: LocalQueueSpec
    status: LocalQueueStatus | None = None


class WorkloadPriorityClass(Resource):
    value: int
    description: str | None = None


class PodSet(KubeModel):
    name: str = "main"
    count: int = Field(default=1, ge=0)
    minCount: int | None = Field(default=None, ge=1)
    template: PodTemplateSpec
    topologyRequest: dict[str, Any] | None = None


class PriorityClassRef(KubeModel):
    group: Literal["kueue.x-k8s.io", "scheduling.k8s.io"]
    kind: Literal["WorkloadPriorityClass", "PriorityClass"]
    name: str


class WorkloadSpec(KubeModel):
    podSets: list[PodSet] = Field(min_length=1, max_length=8)
    queueName: str | None = None
    priority: int | None = None
    priorityClassRef: PriorityClassRef | None = None
    active: bool = True
    maximumExecutionTimeSeconds: int | None = Field(default=None, ge=1)
    preemptionGates: list[dict[str, Any]] | None = None


class PodSetAssignment(KubeModel):
    name: str = "main"
    flavors: dict[str, str] | None = None
    resourceUsage: dict[str, QuantityField] | None = None
    count: int | None = None
    topologyAssignment: dict[str, Any] | None = None
    delayedTopologyRequest: str | None = None


class Admission(KubeModel):
    clusterQueue: str
    podSetAssignments: list[PodSetAssignment] = Field(default_factory=list)


class RequeueState(KubeModel):
    count: int | None = None
    requeueAt: str | None = None


class WorkloadStatus(KubeModel):
    conditions: list[Condition] | None = None
    admission: Admission | None = None
    requeueState: RequeueState | None = None
    reclaimablePods: list[dict[str, Any]] | None = None
    admissionChecks: list[dict[str, Any]] | None = None
    resourceRequests: list[dict[str, Any]] | None = None
    accumulatedPastExecutionTimeSeconds: int | None = None
    schedulingStats: dict[str, Any] | None = None
    unhealthyNodes: list[dict[str, Any]] | None = None
    clusterName: str | None = None
    nominatedClusterNames: list[str] | None = None
    preemptionGates: list[dict[str, Any]] | None = None


class Workload(Resource):
    spec: WorkloadSpec
    status: WorkloadStatus | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        issues: list[FieldIssue] = []
        names: set[str] = set()
        for i, ps in enumerate(self.spec.podSets):
            if ps.name in names:
                issues.append(FieldIssue(f"spec.podSets[{i}].name", f'duplicate pod set name "{ps.name}"'))
            names.add(ps.name)
            if ps.minCount is not None and ps.minCount > ps.count:
                issues.append(FieldIssue(f"spec.podSets[{i}].minCount", f"must be at most count ({ps.count})"))
            issues.extend(ps.template.spec.semantic_issues(f"spec.podSets[{i}].template.spec"))
        return issues
