"""Fluent builders for scheduler tests.

node("n1").cpu("4").memory("8Gi").gpus("A100-40GB", 2).slice(0, "1g.5gb", 0).label("zone", "a")
pod("p").cpu("1").mig("1g.5gb").tolerate("gpu", value="bad")
run(pod(...), node(...), node(...), seed=0, placement="first-fit")   -> Bound | Unschedulable
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from flotilla.api.base import Taint, Toleration
from flotilla.runtime.scheduling import (
    NodeInfo,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodInfo,
    SchedulerConfig,
    ScheduleResult,
    SchedulingContext,
    canonical_amount,
    default_registry,
)
from flotilla.slicer import GPUState, PlacementConfig, SlotRange, load_catalog

CATALOG = load_catalog()
REGISTRY = default_registry()


@dataclass
class NodeBuilder:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Taint] = field(default_factory=list)
    cordoned: bool = False
    allocatable: dict[str, int] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    pod_count: int = 0
    gpu_list: list[GPUState] = field(default_factory=list)
    health: dict[str, str] = field(default_factory=dict)

    def cpu(self, q: str) -> NodeBuilder:
        self.allocatable["cpu"] = canonical_amount("cpu", q)
        return self

    def memory(self, q: str) -> NodeBuilder:
        self.allocatable["memory"] = canonical_amount("memory", q)
        return self

    def max_pods(self, n: int) -> NodeBuilder:
        self.allocatable["pods"] = n
        return self

    def used(self, pods: int = 0, **requests: str) -> NodeBuilder:
        self.requested.update({r: canonical_amount(r, q) for r, q in requests.items()})
        self.pod_count = pods
        return self

    def label(self, key: str, value: str) -> NodeBuilder:
        self.labels[key] = value
        return self

    def taint(self, key: str, value: str | None = None, effect: str = "NoSchedule") -> NodeBuilder:
        self.taints.append(Taint.model_validate({"key": key, "value": value, "effect": effect}))
        return self

    def cordon(self) -> NodeBuilder:
        self.cordoned = True
        return self

    def gpus(self, model: str, count: int) -> NodeBuilder:
        start = len(self.gpu_list)
        self.gpu_list += [GPUState(f"{self.name}-gpu{start + i}", self.name, model) for i in range(count)]
        return self

    def slice(self, gpu: int, profile: str, start: int, owner: str = "other") -> NodeBuilder:
        g = self.gpu_list[gpu]
        size = CATALOG.profile(g.model, profile).size
        self.gpu_list[gpu] = g.with_allocation(SlotRange(start, size, f"{owner}@{start}", profile))
        return self

    def whole(self, gpu: int, owner: str = "other") -> NodeBuilder:
        self.gpu_list[gpu] = self.gpu_list[gpu].with_allocation(SlotRange(0, 8, owner, "gpu"))
        return self

    def gpu_health(self, gpu: int, value: str) -> NodeBuilder:
        self.health[self.gpu_list[gpu].uuid] = value
        return self

    def unhealthy(self, gpu: int) -> NodeBuilder:
        self.gpu_list[gpu] = replace(self.gpu_list[gpu], healthy=False)
        return self

    def build(self) -> NodeInfo:
        return NodeInfo(
            name=self.name,
            labels=dict(self.labels),
            taints=tuple(self.taints),
            unschedulable=self.cordoned,
            allocatable=dict(self.allocatable),
            requested=dict(self.requested),
            pods=self.pod_count,
            gpus=tuple(self.gpu_list),
            gpu_health=dict(self.health),
        )


def node(name: str) -> NodeBuilder:
    """A node with 8 cpus, 32Gi and room for 110 pods unless told otherwise."""
    return NodeBuilder(name).cpu("8").memory("32Gi").max_pods(110)


@dataclass
class PodBuilder:
    name: str
    requests: dict[str, int] = field(default_factory=dict)
    gpu_count: int = 0
    slices: list[str] = field(default_factory=list)
    selector: dict[str, str] = field(default_factory=dict)
    terms: list[NodeSelectorTerm] | None = None
    tolerations: list[Toleration] = field(default_factory=list)
    node_name: str | None = None

    def cpu(self, q: str) -> PodBuilder:
        self.requests["cpu"] = canonical_amount("cpu", q)
        return self

    def memory(self, q: str) -> PodBuilder:
        self.requests["memory"] = canonical_amount("memory", q)
        return self

    def gpus(self, n: int) -> PodBuilder:
        self.gpu_count = n
        return self

    def mig(self, *profiles: str) -> PodBuilder:
        self.slices += profiles
        return self

    def select(self, **labels: str) -> PodBuilder:
        self.selector.update(labels)
        return self

    def affinity(self, *terms: list[tuple[str, str, list[str]]]) -> PodBuilder:
        """Each term: [(key, operator, values), ...] (ANDed); terms are ORed."""
        self.terms = [
            NodeSelectorTerm(tuple(NodeSelectorRequirement(k, op, tuple(v)) for k, op, v in t))  # type: ignore[arg-type]
            for t in terms
        ]
        return self

    def tolerate(
        self, key: str | None, operator: str = "Equal", value: str | None = None, effect: str | None = None
    ) -> PodBuilder:
        self.tolerations.append(
            Toleration.model_validate({"key": key, "operator": operator, "value": value, "effect": effect})
        )
        return self

    def on(self, node_name: str) -> PodBuilder:
        self.node_name = node_name
        return self

    def build(self) -> PodInfo:
        return PodInfo(
            key=f"default/{self.name}",
            uid=f"uid-{self.name}",
            requests=dict(self.requests),
            gpus=self.gpu_count,
            mig=tuple(self.slices),
            node_selector=dict(self.selector),
            required_affinity=tuple(self.terms) if self.terms is not None else None,
            tolerations=tuple(self.tolerations),
            node_name=self.node_name,
        )


def pod(name: str = "p") -> PodBuilder:
    return PodBuilder(name)


def context(seed: int = 0, placement: str = "first-fit", config: SchedulerConfig | None = None) -> SchedulingContext:
    return SchedulingContext.of(random.Random(seed), CATALOG, config, PlacementConfig(policy=placement))


def run(
    p: PodBuilder,
    *nodes: NodeBuilder,
    seed: int = 0,
    placement: str = "first-fit",
    config: SchedulerConfig | None = None,
) -> ScheduleResult:
    ctx = context(seed, placement, config)
    return REGISTRY.bind(ctx.config).schedule(ctx, p.build(), [n.build() for n in nodes])


def pod_json(*containers: Mapping[str, Any], **spec: Any) -> dict[str, Any]:
    """A Pod dict with the given containers (each a dict; `name` defaulted) and spec fields."""
    named = [{"name": f"c{i}", **c} for i, c in enumerate(containers)]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": {"containers": named, **spec}}
