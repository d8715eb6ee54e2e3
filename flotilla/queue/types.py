"""The contract between Kueue-style admission policy and its drivers.

Drivers (the embedded controller, the simulator, benchmarks) build an immutable `Snapshot` of
queues, cohorts, flavors and workloads, call `schedule(snapshot, ctx)` (flotilla.queue.cycle),
and carry out the `CycleResult`: admit, preempt (evict) and requeue. Policies never do I/O and
never read the wall clock: time comes from `CycleContext.now`.

Resource amounts are integers in milli-units (`Quantity.milli_value()`), for every resource,
so `cpu: 500m` is 500 and `nvidia.com/gpu: 8` is 8000.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flotilla.api.base import Taint, Toleration
from flotilla.api.labels import Selector

FlavorResource = tuple[str, str]  # (flavor name, resource name)
QueueingStrategy = Literal["StrictFIFO", "BestEffortFIFO"]
StopPolicy = Literal["None", "Hold", "HoldAndDrain"]
PreemptionReason = Literal[
    "InClusterQueue", "InCohortReclamation", "InCohortFairSharing", "InCohortReclaimWhileBorrowing"
]


# -- configuration (what Kueue's Configuration object holds) -----------------------------------
class FairSharingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    enable: bool = False
    preemptionStrategies: tuple[Literal["LessThanOrEqualToFinalShare", "LessThanInitialShare"], ...] = (
        "LessThanOrEqualToFinalShare",
        "LessThanInitialShare",
    )


class AdmissionFairSharingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    usageHalfLifeTime: float = Field(default=600.0, gt=0, description="seconds")
    usageSamplingInterval: float = Field(default=300.0, gt=0, description="seconds")


class RequeuingStrategy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    timestamp: Literal["Eviction", "Creation"] = "Eviction"
    backoffBaseSeconds: float = Field(default=60.0, ge=0)
    backoffMaxSeconds: float = Field(default=3600.0, ge=0)
    backoffLimitCount: int | None = Field(default=None, ge=0)


class WaitForPodsReadyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    enable: bool = False
    timeout: float = Field(default=300.0, gt=0, description="seconds")
    blockAdmission: bool = False
    requeuingStrategy: RequeuingStrategy = RequeuingStrategy()


class QueueConfig(BaseModel):
    """Flotilla's equivalent of Kueue's Configuration (the parts admission uses)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    manageJobsWithoutQueueName: bool = False
    fairSharing: FairSharingConfig = FairSharingConfig()
    admissionFairSharing: AdmissionFairSharingConfig | None = None
    waitForPodsReady: WaitForPodsReadyConfig = WaitForPodsReadyConfig()
    partialAdmission: bool = True
    # BestEffortFIFO: how long a workload that did not fit waits before it is retried even
    # without a capacity event (Kueue retries on events; this bounds the wait).
    inadmissibleRetrySeconds: float = Field(default=60.0, gt=0)


# -- snapshot ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResourceQuota:
    nominal: int
    borrowing_limit: int | None = None
    lending_limit: int | None = None


@dataclass(frozen=True)
class ResourceGroup:
    covered: tuple[str, ...]
    flavors: tuple[str, ...]  # in preference order


@dataclass(frozen=True)
class FlavorSnapshot:
    name: str
    node_labels: Mapping[str, str] = field(default_factory=dict)
    node_taints: tuple[Taint, ...] = ()
    tolerations: tuple[Toleration, ...] = ()


@dataclass(frozen=True)
class PreemptionPolicy:
    within_cluster_queue: Literal["Never", "LowerPriority", "LowerOrNewerEqualPriority"] = "Never"
    reclaim_within_cohort: Literal["Never", "LowerPriority", "Any"] = "Never"
    borrow_within_cohort: Literal["Never", "LowerPriority"] = "Never"
    max_priority_threshold: int | None = None


@dataclass(frozen=True)
class ClusterQueueSnapshot:
    name: str
    cohort: str | None
    resource_groups: tuple[ResourceGroup, ...]
    quotas: Mapping[FlavorResource, ResourceQuota]
    queueing_strategy: QueueingStrategy = "BestEffortFIFO"
    preemption: PreemptionPolicy = PreemptionPolicy()
    when_can_borrow: Literal["MayStopSearch", "TryNextFlavor"] = "MayStopSearch"
    when_can_preempt: Literal["MayStopSearch", "TryNextFlavor"] = "TryNextFlavor"
    namespace_selector: Selector | None = None  # None matches no namespace, as in Kueue
    stop_policy: StopPolicy = "None"
    fair_weight: float = 1.0
    admission_fair_sharing: bool = False  # admissionScope.admissionMode == UsageBasedAdmissionFairSharing
    # Inactive queues (missing flavors, missing cohort...) admit nothing; the reason is shown.
    inactive_reason: str | None = None
    # flavorFungibility.preference (only meaningful when both policies are TryNextFlavor)
    fungibility_preference: Literal["BorrowingOverPreemption", "PreemptionOverBorrowing"] | None = None


@dataclass(frozen=True)
class CohortSnapshot:
    name: str
    parent: str | None = None
    quotas: Mapping[FlavorResource, ResourceQuota] = field(default_factory=dict)
    resource_groups: tuple[ResourceGroup, ...] = ()
    fair_weight: float = 1.0


@dataclass(frozen=True)
class LocalQueueSnapshot:
    namespace: str
    name: str
    cluster_queue: str
    stop_policy: StopPolicy = "None"
    fair_weight: float = 1.0
    usage: Mapping[str, float] = field(default_factory=dict)  # admission fair sharing: decayed usage

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PodSetInfo:
    name: str
    count: int
    requests: Mapping[str, int]  # per pod, milli-units
    min_count: int | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()


@dataclass(frozen=True)
class PodSetAssignment:
    name: str
    flavors: Mapping[str, str]  # resource -> flavor
    resource_usage: Mapping[str, int]  # resource -> total milli-units for `count` pods
    count: int


@dataclass(frozen=True)
class AdmissionRecord:
    cluster_queue: str
    pod_sets: tuple[PodSetAssignment, ...]

    @cached_property
    def usage(self) -> dict[FlavorResource, int]:
        """Totals per (flavor, resource), computed once (cycles read them for every admitted
        workload). Read-only."""
        usage: dict[FlavorResource, int] = {}
        for ps in self.pod_sets:
            for resource, amount in ps.resource_usage.items():
                flavor = ps.flavors.get(resource)
                if flavor is not None:
                    usage[(flavor, resource)] = usage.get((flavor, resource), 0) + amount
        return usage


@dataclass(frozen=True)
class WorkloadInfo:
    namespace: str
    name: str
    local_queue: str
    priority: int
    created: float  # seconds since the epoch; FIFO order (eviction time when requeued, per config)
    pod_sets: tuple[PodSetInfo, ...]
    uid: str = ""
    admission: AdmissionRecord | None = None  # quota reserved (admitted or being admitted)
    admitted_at: float | None = None
    eligible_at: float = 0.0  # requeue backoff: not a candidate before this time
    parked: bool = False  # BestEffortFIFO: inadmissible until a capacity event
    active: bool = True

    @cached_property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @cached_property
    def local_queue_key(self) -> str:
        return f"{self.namespace}/{self.local_queue}"


@dataclass(frozen=True)
class Snapshot:
    cluster_queues: Mapping[str, ClusterQueueSnapshot]
    cohorts: Mapping[str, CohortSnapshot]
    flavors: Mapping[str, FlavorSnapshot]
    local_queues: Mapping[str, LocalQueueSnapshot]  # key "namespace/name"
    workloads: Mapping[str, WorkloadInfo]  # key "namespace/name"; pending and admitted
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Optional, for drivers that keep them up to date as workloads are admitted and released (the
    # simulator): the admitted workloads of `workloads` by ClusterQueue, and each queue's summed
    # admission usage. They must agree with `workloads`; the quota tree then starts from them instead
    # of summing every admitted workload on every cycle.
    admitted_by_queue: Mapping[str, Mapping[str, WorkloadInfo]] | None = None
    usage_by_queue: Mapping[str, Mapping[FlavorResource, int]] | None = None
    pending_keys: Sequence[str] | None = None  # the keys of the pending workloads in `workloads`


@dataclass(frozen=True)
class CycleContext:
    now: float
    rng: random.Random
    config: QueueConfig = field(default_factory=QueueConfig)


# -- result --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdmissionDecision:
    workload: str
    admission: AdmissionRecord
    borrowing: bool = False


@dataclass(frozen=True)
class PreemptionDecision:
    victim: str
    preemptor: str
    reason: PreemptionReason
    message: str  # Kueue's wording, e.g. "Preempted to accommodate a workload ... in the ClusterQueue"


@dataclass(frozen=True)
class PendingDecision:
    workload: str
    message: str  # why it waits, Kueue's wording ("couldn't assign flavors to pod set main: ...")
    # how to requeue: at once (lost a race this cycle), on the next capacity event, or never
    # (the queue is stopped or the workload can never fit)
    requeue: Literal["immediate", "on-capacity", "never"] = "on-capacity"


@dataclass(frozen=True)
class EvictionDecision:
    """An admitted workload to evict for a reason other than preemption (a HoldAndDrain queue)."""

    workload: str
    reason: Literal["ClusterQueueStopped", "LocalQueueStopped"]
    message: str  # Kueue's wording: "The ClusterQueue is stopped" / "The LocalQueue is stopped"


@dataclass(frozen=True)
class CycleResult:
    admitted: tuple[AdmissionDecision, ...] = ()
    preempted: tuple[PreemptionDecision, ...] = ()
    pending: tuple[PendingDecision, ...] = ()
    evicted: tuple[EvictionDecision, ...] = ()
