"""Scenario runner for the policy tests: one cycle over builder objects, with exact expectations,
and a tiny driver loop (`run_cycles`) for behaviour that spans cycles."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from flotilla.queue.cycle import schedule
from flotilla.queue.types import AdmissionRecord, CycleContext, CycleResult, QueueConfig, Snapshot

from .builders import Obj, resource_name, snapshot


@dataclass
class Scenario:
    """Objects plus the exact expected outcome of one cycle.

    admitted: key -> flavor (every resource) or {resource: flavor} / {"podset:resource": flavor}
    preempted: victim -> reason; pending: key -> message; evicted: key -> reason;
    requeue: key -> requeue and counts: key -> pod set counts (only the keys listed are checked)
    """

    name: str
    objects: list[Obj]
    admitted: dict[str, str | dict[str, str]] = field(default_factory=dict)
    preempted: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    requeue: dict[str, str] = field(default_factory=dict)
    counts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    evicted: dict[str, str] = field(default_factory=dict)
    config: QueueConfig = field(default_factory=QueueConfig)
    now: float = 100.0
    namespaces: dict[str, dict[str, str]] | None = None

    def run(self) -> CycleResult:
        snap = snapshot(*self.objects, namespaces=self.namespaces)
        return schedule(snap, CycleContext(now=self.now, rng=random.Random(0), config=self.config))

    def check(self) -> CycleResult:
        result = self.run()
        assert {d.workload: flavors_of(d.admission) for d in result.admitted} == {
            k: _expand(v, result, k) for k, v in self.admitted.items()
        }
        assert {d.victim: d.reason for d in result.preempted} == self.preempted
        assert {d.workload: d.message for d in result.pending} == self.pending
        got_requeue = {d.workload: d.requeue for d in result.pending}
        assert {k: got_requeue.get(k) for k in self.requeue} == self.requeue
        got_counts = {d.workload: tuple(ps.count for ps in d.admission.pod_sets) for d in result.admitted}
        assert {k: got_counts.get(k) for k in self.counts} == self.counts
        assert {d.workload: d.reason for d in result.evicted} == self.evicted
        return result

    def __str__(self) -> str:
        return self.name


def apply(snap: Snapshot, result: CycleResult, now: float) -> Snapshot:
    """What a driver does with a result: admit, evict, and park BestEffortFIFO heads that did not
    fit; an eviction is a capacity event that unparks every workload."""
    workloads = dict(snap.workloads)
    for d in result.admitted:
        workloads[d.workload] = replace(workloads[d.workload], admission=d.admission, admitted_at=now)
    gone = [d.victim for d in result.preempted] + [d.workload for d in result.evicted]
    for key in gone:
        workloads[key] = replace(workloads[key], admission=None, admitted_at=None)
    if gone:
        workloads = {k: replace(w, parked=False) for k, w in workloads.items()}
    for waiting in result.pending:
        if waiting.requeue == "on-capacity":
            workloads[waiting.workload] = replace(workloads[waiting.workload], parked=True)
    return replace(snap, workloads=workloads)


def run_cycles(snap: Snapshot, cycles: int, config: QueueConfig | None = None, now: float = 100.0) -> list[CycleResult]:
    results = []
    for i in range(cycles):
        ctx = CycleContext(now=now + i, rng=random.Random(0), config=config or QueueConfig())
        results.append(schedule(snap, ctx))
        snap = apply(snap, results[-1], now + i)
    return results


def flavors_of(admission: AdmissionRecord) -> dict[str, str]:
    single = len(admission.pod_sets) == 1
    return {(r if single else f"{ps.name}:{r}"): f for ps in admission.pod_sets for r, f in sorted(ps.flavors.items())}


def _qualified(key: str) -> str:
    pod_set, _, resource = key.rpartition(":")
    return f"{pod_set}:{resource_name(resource)}" if pod_set else resource_name(resource)


def _expand(expected: str | dict[str, str], result: CycleResult, key: str) -> dict[str, str]:
    if isinstance(expected, dict):
        return {_qualified(k): v for k, v in expected.items()}
    decision = next((d for d in result.admitted if d.workload == key), None)
    if decision is None:
        return {"<not admitted>": expected}
    return {r: expected for r in flavors_of(decision.admission)}
