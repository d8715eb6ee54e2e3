"""Fakes at the driver's seams: a clock, small admission policies, and a harness over a real store.

The fake policies follow the contract of flotilla.queue.types, nothing more:

- `fits_by_count`: candidates in queue order (priority, then age); one admitted if its requests fit
  the nominal quota of its ClusterQueue's first flavor covering each resource, counting down to
  minCount (partial admission); otherwise pending on-capacity.
- `preempting`: `fits_by_count`, but a workload that does not fit evicts lower-priority admitted
  workloads of its ClusterQueue (InClusterQueue) and waits "immediate".
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flotilla.api.catalog import build_registry
from flotilla.queue.controller import QueueController
from flotilla.queue.driver import PassReport, Policy
from flotilla.queue.jobs import workload_name
from flotilla.queue.types import (
    AdmissionDecision,
    AdmissionRecord,
    CycleContext,
    CycleResult,
    PendingDecision,
    PodSetAssignment,
    PreemptionDecision,
    QueueConfig,
    Snapshot,
    WorkloadInfo,
)
from flotilla.store import Store
from flotilla.store.service import ResourceService, resource_type

JSON = dict[str, Any]
START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


# -- fake policies -------------------------------------------------------------------------------
def _usage(snapshot: Snapshot) -> dict[tuple[str, str, str], int]:
    used: dict[tuple[str, str, str], int] = {}
    for w in snapshot.workloads.values():
        if w.admission is None:
            continue
        for ps in w.admission.pod_sets:
            for r, v in ps.resource_usage.items():
                key = (w.admission.cluster_queue, ps.flavors[r], r)
                used[key] = used.get(key, 0) + v
    return used


def _candidates(snapshot: Snapshot, ctx: CycleContext) -> list[WorkloadInfo]:
    pending = [
        w
        for w in snapshot.workloads.values()
        if w.admission is None and w.active and not w.parked and w.eligible_at <= ctx.now
    ]
    return sorted(pending, key=lambda w: (-w.priority, w.created, w.key))


def _try(snapshot: Snapshot, w: WorkloadInfo, used: dict[tuple[str, str, str], int]) -> AdmissionRecord | str:
    cq = snapshot.cluster_queues[snapshot.local_queues[w.local_queue_key].cluster_queue]
    ps = w.pod_sets[0]
    flavors = {}
    for r in ps.requests:
        group = next((g for g in cq.resource_groups if r in g.covered), None)
        if group is None:
            return f"couldn't assign flavors to pod set main: resource {r} unavailable in ClusterQueue"
        flavors[r] = group.flavors[0]
    for count in range(ps.count, (ps.min_count or ps.count) - 1, -1):
        usage = {r: q * count for r, q in ps.requests.items()}
        if all(
            used.get((cq.name, flavors[r], r), 0) + v <= cq.quotas[(flavors[r], r)].nominal for r, v in usage.items()
        ):
            for r, v in usage.items():
                used[(cq.name, flavors[r], r)] = used.get((cq.name, flavors[r], r), 0) + v
            return AdmissionRecord(cq.name, (PodSetAssignment(ps.name, flavors, usage, count),))
    return f"couldn't assign flavors to pod set {ps.name}: insufficient quota in ClusterQueue {cq.name}"


def fits_by_count(snapshot: Snapshot, ctx: CycleContext) -> CycleResult:
    used = _usage(snapshot)
    admitted, pending = [], []
    for w in _candidates(snapshot, ctx):
        outcome = _try(snapshot, w, used)
        if isinstance(outcome, AdmissionRecord):
            admitted.append(AdmissionDecision(w.key, outcome))
        else:
            pending.append(PendingDecision(w.key, outcome, "on-capacity"))
    return CycleResult(admitted=tuple(admitted), pending=tuple(pending))


def preempting(snapshot: Snapshot, ctx: CycleContext) -> CycleResult:
    used = _usage(snapshot)
    admitted, preempted, pending = [], [], []
    for w in _candidates(snapshot, ctx):
        outcome = _try(snapshot, w, used)
        if isinstance(outcome, AdmissionRecord):
            admitted.append(AdmissionDecision(w.key, outcome))
            continue
        cq = snapshot.local_queues[w.local_queue_key].cluster_queue
        victims = sorted(
            (v for v in snapshot.workloads.values() if v.admission and v.admission.cluster_queue == cq),
            key=lambda v: v.priority,
        )
        victims = [v for v in victims if v.priority < w.priority][:1]
        message = f"Preempted to accommodate a workload (UID: {w.uid}) due to prioritization in the ClusterQueue"
        preempted += [PreemptionDecision(v.key, w.key, "InClusterQueue", message) for v in victims]
        suffix = f". Pending the preemption of {len(victims)} workload(s)" if victims else ""
        pending.append(PendingDecision(w.key, outcome + suffix, "immediate" if victims else "on-capacity"))
    return CycleResult(admitted=tuple(admitted), preempted=tuple(preempted), pending=tuple(pending))


@dataclass
class Recording:
    """Wraps a policy and keeps every snapshot it was given."""

    policy: Policy
    snapshots: list[Snapshot] = field(default_factory=list)

    def __call__(self, snapshot: Snapshot, ctx: CycleContext) -> CycleResult:
        self.snapshots.append(snapshot)
        return self.policy(snapshot, ctx)


# -- the harness ---------------------------------------------------------------------------------
class Env:
    """A real store and resource service, a controller with a fake clock and an injected policy."""

    def __init__(self, path: Path, config: QueueConfig | None = None, policy: Policy = fits_by_count) -> None:
        self.clock = FakeClock()
        self.store = Store.open(path, clock=self.clock.datetime, rng=random.Random(3))
        self.service = ResourceService(self.store, build_registry())
        self.service.ensure_namespace("default")
        self.controller = QueueController(self.service, config, clock=self.clock, policy=policy, rng=random.Random(1))

    def close(self) -> None:
        self.store.close()

    def apply(self, *objs: JSON) -> None:
        self.service.apply_many([("test", i, o) for i, o in enumerate(objs, 1)])

    def create(self, obj: JSON) -> JSON:
        return self.service.create(obj)

    def get(self, plural: str, name: str, ns: str | None = "default") -> JSON:
        kind = self.service.registry.resolve(plural)
        return self.store.get(resource_type(kind), name, ns if kind.namespaced else None)

    def list(self, plural: str) -> list[JSON]:
        return self.store.list(resource_type(self.service.registry.resolve(plural)))[0]

    def delete(self, plural: str, name: str, ns: str | None = "default") -> None:
        kind = self.service.registry.resolve(plural)
        self.service.delete(kind, name, ns if kind.namespaced else None)

    def patch(self, plural: str, name: str, patch: JSON, ns: str | None = "default") -> None:
        kind = self.service.registry.resolve(plural)
        self.service.patch(kind, name, ns if kind.namespaced else None, patch)

    def job_status(self, name: str, ns: str = "default", **status: Any) -> None:
        kind = self.service.registry.resolve("jobs")
        self.store.patch(resource_type(kind), name, ns, {"status": status}, "status")

    def finish_job(self, name: str, ns: str = "default", failed: bool = False, message: str = "") -> None:
        condition = {"type": "Failed" if failed else "Complete", "status": "True", "message": message}
        self.job_status(name, ns, conditions=[condition], active=0, succeeded=0 if failed else 1)

    def workload_of(self, job: str, ns: str = "default") -> JSON:
        return self.get("workloads", workload_name(self.get("jobs", job, ns)), ns)

    def step(self, seconds: float = 0.0) -> PassReport:
        self.clock.advance(seconds)
        return self.controller.run_once()

    def settle(self, passes: int = 5) -> PassReport:
        """Run passes until one writes nothing (fails if that never happens)."""
        for _ in range(passes):
            report = self.controller.run_once()
            if report.writes == 0:
                return report
        raise AssertionError(f"still writing after {passes} passes")


def condition(obj: JSON, ctype: str) -> JSON | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def conditions(obj: JSON, *types: str) -> dict[str, tuple[str, str, str]]:
    """{type: (status, reason, message)} for the given condition types that are present."""
    out = {}
    for t in types:
        c = condition(obj, t)
        if c is not None:
            out[t] = (c["status"], c.get("reason", ""), c.get("message", ""))
    return out


def names(items: Iterable[str]) -> list[str]:
    return sorted(items)
