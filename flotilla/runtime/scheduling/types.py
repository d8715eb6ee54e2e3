"""The contract between the node scheduler and its drivers: snapshot, context, config and result.

Drivers (the embedded runtime, the simulator) build one immutable `NodeInfo` per node and a
`PodInfo` per pending pod (`pod_info()` in podinfo.py), then call the bound framework
(`registry.bind(ctx.config).schedule(ctx, pod, nodes)`) and carry out the answer: `Bound` (write the
device claims, bind the pod) or `Unschedulable` (record the message; `retryable=False` means no node
of this cluster can ever hold the pod, so fail it instead of leaving it pending).

Resource amounts are canonical integers: cpu in millicores, memory and storage in bytes, anything
else a count (`canonical_amount`). GPUs and MIG slices are not resources here: they are the
node's `GPUState`s (flotilla.slicer), so placement is the slicer's policy.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flotilla.api.base import Taint, Toleration
from flotilla.api.quantity import Quantity
from flotilla.slicer import (
    BoundPolicy,
    GPUState,
    PlacementConfig,
    PlacementContext,
    PlacementRegistry,
    default_registry,
)
from flotilla.slicer.profiles import RESOURCE_PREFIX, ProfileCatalog

GPU_RESOURCE = "nvidia.com/gpu"
WHOLE_GPU = "gpu"  # the profile of a whole-GPU allocation (a SlotRange over every slot)
HEALTH_LABEL = "autopilot.ibm.com/gpuhealth"  # IBM Autopilot's node label: PASS, WARN, TESTING, EVICT, ERR
UNHEALTHY_GPU = frozenset({"EVICT", "ERR"})  # per-GPU health values that take a GPU out of placement

__all__ = [
    "GPU_RESOURCE",
    "HEALTH_LABEL",
    "UNHEALTHY_GPU",
    "WHOLE_GPU",
    "Bound",
    "DeviceAssignment",
    "FilterStatus",
    "NodeInfo",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "PodInfo",
    "ScheduleResult",
    "SchedulerConfig",
    "SchedulingContext",
    "ScorerConfig",
    "Taint",
    "Toleration",
    "Unschedulable",
    "canonical_amount",
    "mig_resource",
]


def canonical_amount(resource: str, quantity: Quantity | str | int) -> int:
    """`cpu` in millicores (rounded up, as MilliValue), anything else in whole units (rounded up, as Value)."""
    q = Quantity.parse(quantity)
    return q.milli_value() if resource == "cpu" else q.as_int()


def mig_resource(profile: str) -> str:
    """The device plugin's resource: `1g.5gb` -> `nvidia.com/mig-1g.5gb`, `1g.5gb+me` -> `nvidia.com/mig-1g.5gb.me`."""
    return RESOURCE_PREFIX + profile.replace("+", ".")


# -- snapshot --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeInfo:
    """One node as the scheduler sees it.

    `requested` is what the pods already bound here request (same units as `allocatable`), `pods`
    how many there are; the pod limit is `allocatable["pods"]` when present. `gpus` are the node's
    GPUs as the slicer sees them (a whole-GPU allocation is a SlotRange over slots 0..7 with profile
    "gpu"); `gpu_health` maps a GPU UUID to its health (missing: PASS). The node-level health label
    (`autopilot.ibm.com/gpuhealth`) is in `labels`.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    allocatable: Mapping[str, int] = field(default_factory=dict)
    requested: Mapping[str, int] = field(default_factory=dict)
    pods: int = 0
    gpus: tuple[GPUState, ...] = ()
    gpu_health: Mapping[str, str] = field(default_factory=dict)

    @property
    def max_pods(self) -> int | None:
        return self.allocatable.get("pods")

    def gpu_usable(self, gpu: GPUState) -> bool:
        """Healthy in the slicer's snapshot and not EVICT/ERR by the GPU's own health check."""
        return gpu.healthy and self.gpu_health.get(gpu.uuid, "PASS") not in UNHEALTHY_GPU


Operator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]


@dataclass(frozen=True, slots=True)
class NodeSelectorRequirement:
    """One matchExpressions (on labels) or matchFields (on `metadata.name`) entry of a node selector term."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, value: str | None) -> bool:
        """Kubernetes' rules: NotIn and DoesNotExist hold for a missing key; Gt/Lt compare integers."""
        op = self.operator
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if op == "NotIn":
            return value is None or value not in self.values
        if value is None:
            return False
        if op == "In":
            return value in self.values
        try:
            have, want = int(value), int(self.values[0])
        except (ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """Requirements that must all hold. An empty term matches no node (as in Kubernetes)."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()

    def matches(self, node: NodeInfo) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        return all(r.matches(node.labels.get(r.key)) for r in self.match_expressions) and all(
            r.matches(node.name if r.key == "metadata.name" else None) for r in self.match_fields
        )


@dataclass(frozen=True)
class PodInfo:
    """One pending pod as the scheduler sees it (build it from a Pod with `pod_info()`).

    `requests` excludes GPUs and MIG slices: `gpus` is the count of whole GPUs, `mig` one profile
    name per requested slice, in container order. `required_affinity` is None when the pod has no
    required node affinity, else its node selector terms (ORed).
    """

    key: str  # namespace/name
    uid: str = ""
    requests: Mapping[str, int] = field(default_factory=dict)
    gpus: int = 0
    mig: tuple[str, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    required_affinity: tuple[NodeSelectorTerm, ...] | None = None
    tolerations: tuple[Toleration, ...] = ()
    node_name: str | None = None

    @property
    def wants_gpus(self) -> bool:
        return self.gpus > 0 or bool(self.mig)

    @property
    def owner(self) -> str:
        """The owner written on the slots this pod takes."""
        return self.uid or self.key

    def tolerates(self, taint: Taint) -> bool:
        return any(t.tolerates(taint) for t in self.tolerations)


# -- config and context -----------------------------------------------------------------------------
DEFAULT_FILTERS = (
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodeResourcesFit",
    "GPUHealth",
    "GPUFit",
)


class ScorerConfig(BaseModel):
    """An enabled score plugin and its weight in the weighted sum."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    weight: float = Field(default=1.0, gt=0)


class SchedulerConfig(BaseModel):
    """Which plugins run (filters in order; scorers with weights) and their args, validated at bind.

    `args` maps a plugin name to its parameters (kube-scheduler's pluginConfig); each plugin's own
    pydantic model validates them, so a misspelt field is an error naming the plugin.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    filters: tuple[str, ...] = DEFAULT_FILTERS
    scorers: tuple[ScorerConfig, ...] = (
        ScorerConfig(name="NodeResourcesLeastAllocated", weight=1.0),
        ScorerConfig(name="GPUPacking", weight=1.0),
    )
    args: Mapping[str, Mapping[str, Any]] = {}

    @model_validator(mode="after")
    def _no_repeats(self) -> SchedulerConfig:
        for what, names in (("filters", self.filters), ("scorers", tuple(s.name for s in self.scorers))):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{what}: {', '.join(repeated)} listed more than once")
        return self


@dataclass(frozen=True)
class SchedulingContext:
    """What a decision is made under: a seeded generator (tie-breaks), the MIG placement context and
    its bound policy (so first-fit vs packing is the slicer's config), and the scheduler config."""

    rng: random.Random
    placement: PlacementContext
    policy: BoundPolicy
    config: SchedulerConfig = field(default_factory=SchedulerConfig)

    def __post_init__(self) -> None:
        if self.policy.name != self.placement.config.policy:
            raise ValueError(
                f"placement context names policy {self.placement.config.policy!r}, "
                f"but the bound policy is {self.policy.name!r}"
            )

    @classmethod
    def of(
        cls,
        rng: random.Random,
        catalog: ProfileCatalog,
        config: SchedulerConfig | None = None,
        placement: PlacementConfig | None = None,
        placement_registry: PlacementRegistry | None = None,
    ) -> SchedulingContext:
        """A context sharing `rng` with the placement context; binds the placement policy (errors here)."""
        pconfig = placement or PlacementConfig()
        policy = (placement_registry or default_registry()).bind(pconfig)
        return cls(rng, PlacementContext(rng, catalog, pconfig), policy, config or SchedulerConfig())


# -- plugin answers and the result ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FilterStatus:
    """Why a filter rejects a node. `retryable=False`: the node can never hold the pod, whatever is
    freed (its allocatable or GPUs are too small); labels, taints and health can change, so those are
    retryable."""

    reasons: tuple[str, ...]
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class DeviceAssignment:
    """One device for the pod: a whole GPU (profile "gpu", start 0, size 8) or a MIG slice."""

    gpu_uuid: str
    profile: str
    start: int
    size: int


@dataclass(frozen=True)
class Bound:
    """The pod goes to `node` with `devices` (whole GPUs first, then one per `PodInfo.mig` entry, in
    that order); `score` is the winning weighted sum."""

    node: str
    devices: tuple[DeviceAssignment, ...]
    score: float


@dataclass(frozen=True)
class Unschedulable:
    """No node fits: kube-scheduler's message, each rejected node's reasons, and whether waiting can help."""

    message: str
    reasons: Mapping[str, tuple[str, ...]]
    retryable: bool


ScheduleResult = Bound | Unschedulable
