"""Batch admission on a simulated clock: Kueue's queueing around the pure admission policy.

The simulator plays the part of Kueue's queue manager: one ordered pending list per
ClusterQueue (priority, then creation time), one head per queue per cycle, BestEffortFIFO heads
that do not fit parked until a capacity event in their cohort (a workload finishing or being
evicted), StrictFIFO heads left in place. After every instant's events it runs scheduling cycles
until one changes nothing. Admitted workloads run for their runtime and finish; preemption
victims are evicted at once and requeued.
"""

from __future__ import annotations

import bisect
from collections import ChainMap, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from flotilla.queue.types import (
    AdmissionRecord,
    ClusterQueueSnapshot,
    CohortSnapshot,
    CycleContext,
    CycleResult,
    FlavorResource,
    FlavorSnapshot,
    LocalQueueSnapshot,
    QueueConfig,
    Snapshot,
    WorkloadInfo,
)
from flotilla.sim.engine import Engine, EventHandle

Policy = Callable[[Snapshot, CycleContext], CycleResult]
MAX_CYCLES_PER_INSTANT = 100_000


@dataclass
class WorkloadRecord:
    workload: WorkloadInfo
    runtime: float
    created: float
    admitted_at: float | None = None  # first admission
    finished_at: float | None = None
    evictions: int = 0
    finish_event: EventHandle | None = None
    labels: dict[str, str] = field(default_factory=dict)
    equivalence: tuple[object, ...] = ()


class AdmissionSimulation:
    """Run workloads through `policy` on simulated time; read results from `records`."""

    def __init__(
        self,
        cluster_queues: Mapping[str, ClusterQueueSnapshot],
        cohorts: Mapping[str, CohortSnapshot],
        flavors: Mapping[str, FlavorSnapshot],
        local_queues: Mapping[str, LocalQueueSnapshot],
        policy: Policy,
        *,
        config: QueueConfig | None = None,
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
        seed: int = 0,
    ) -> None:
        self.engine = Engine(seed)
        self.cluster_queues = dict(cluster_queues)
        self.cohorts = dict(cohorts)
        self.flavors = dict(flavors)
        self.local_queues = dict(local_queues)
        self.namespace_labels = dict(namespace_labels or {})
        self.policy = policy
        self.config = config or QueueConfig()
        self.records: dict[str, WorkloadRecord] = {}
        self._pending: dict[str, list[tuple[int, float, str]]] = defaultdict(list)  # cq -> sorted keys
        self._parked: dict[str, set[str]] = defaultdict(set)
        self._parked_queues: dict[str, set[str]] = defaultdict(set)  # cohort root -> queues with parked work
        self._roots: dict[str, str] = {}
        self._admitted: dict[str, WorkloadInfo] = {}
        # kept up to date for the policy's quota tree (Snapshot.admitted_by_queue / usage_by_queue)
        self._admitted_by_queue: dict[str, dict[str, WorkloadInfo]] = defaultdict(dict)
        self._usage_by_queue: dict[str, dict[FlavorResource, int]] = defaultdict(dict)
        self._usage: dict[str, float] = defaultdict(float)  # cq -> admitted milli-units (all resources)
        self._usage_integral: dict[str, float] = defaultdict(float)
        self._usage_since = 0.0
        self.cycles = 0
        self.eviction_s = 0.0  # how long a preemption victim keeps its quota (see _evict)
        # A driver that runs the admitted workloads itself (the batch cluster simulator) sets `external`
        # (no finish is scheduled here; it calls `finish(key)`) and the hooks, called after each change.
        self.external = False
        self.on_arrive: Callable[[str], None] = _ignore
        self.on_admit: Callable[[str, AdmissionRecord], None] = _ignore2
        self.on_evict: Callable[[str], None] = _ignore
        self.on_requeue: Callable[[], None] = _nothing
        self._evicting: set[str] = set()
        self.first_event: float | None = None
        self.last_event = 0.0

    # -- inputs ----------------------------------------------------------------------------------
    def submit(self, at: float, workload: WorkloadInfo, runtime: float, **labels: str) -> None:
        """Create `workload` at simulated time `at`; once admitted it runs `runtime` seconds."""
        self.engine.at(at, lambda: self._arrive(workload, runtime, labels))

    def run(self, until: float | None = None) -> None:
        self.engine.run(until, on_quiescent=self._cycles)
        self._account(self.engine.now)

    # -- bookkeeping -----------------------------------------------------------------------------
    def _cq_of(self, wl: WorkloadInfo) -> str | None:
        lq = self.local_queues.get(wl.local_queue_key)
        return lq.cluster_queue if lq else None

    def _touch(self) -> None:
        now = self.engine.now
        self.first_event = now if self.first_event is None else self.first_event
        self.last_event = now

    def _arrive(self, wl: WorkloadInfo, runtime: float, labels: dict[str, str]) -> None:
        self._touch()
        self.records[wl.key] = WorkloadRecord(
            wl, runtime, self.engine.now, labels=labels, equivalence=equivalence_key(wl)
        )
        self._enqueue(wl)
        self.on_arrive(wl.key)

    # -- for a driver that runs the workloads (external) ------------------------------------------
    def run_cycles(self) -> None:
        """Scheduling cycles until one changes nothing (the driver's quiescent point)."""
        self._cycles()

    def finish(self, key: str) -> None:
        """An admitted workload ended (external): its quota is free."""
        if key in self._admitted:
            self._finish(key)

    def _enqueue(self, wl: WorkloadInfo) -> None:
        cq = self._cq_of(wl) or ""
        bisect.insort(self._pending[cq], (-wl.priority, wl.created, wl.key))

    def _dequeue(self, key: str) -> None:
        wl = self.records[key].workload
        cq = self._cq_of(wl) or ""
        entries = self._pending[cq]
        i = bisect.bisect_left(entries, (-wl.priority, wl.created, key))
        if i < len(entries) and entries[i][2] == key:
            entries.pop(i)
        self._parked[cq].discard(key)

    def _account(self, now: float) -> None:
        dt = now - self._usage_since
        if dt > 0:
            for cq, used in self._usage.items():
                self._usage_integral[cq] += used * dt
        self._usage_since = now

    def _cohort_root(self, cq: str) -> str:
        if cq not in self._roots:
            node = self.cluster_queues[cq].cohort if cq in self.cluster_queues else None
            if node is None:
                self._roots[cq] = f"cq:{cq}"
            else:
                while (parent := self.cohorts.get(node)) is not None and parent.parent:
                    node = parent.parent
                self._roots[cq] = node
        return self._roots[cq]

    def _capacity_event(self, cq: str) -> None:
        """A workload left `cq`: parked workloads in its cohort tree may fit now."""
        for other in self._parked_queues.pop(self._cohort_root(cq), set()):
            self._parked[other].clear()

    # -- the cycle ------------------------------------------------------------------------------
    def _snapshot(self) -> Snapshot:
        heads: dict[str, WorkloadInfo] = {}
        for cq, entries in self._pending.items():
            parked = self._parked[cq]
            for _, _, key in entries:
                if key not in parked:
                    heads[key] = self.records[key].workload
                    break
        workloads = ChainMap(heads, self._admitted)  # no copy of the admitted map per cycle
        return Snapshot(
            self.cluster_queues,
            self.cohorts,
            self.flavors,
            self.local_queues,
            workloads,
            self.namespace_labels,
            admitted_by_queue=self._admitted_by_queue,
            usage_by_queue=self._usage_by_queue,
            pending_keys=list(heads),
        )

    def _cycles(self) -> None:
        for _ in range(MAX_CYCLES_PER_INSTANT):
            ctx = CycleContext(now=self.engine.now, rng=self.engine.rng, config=self.config)
            result = self.policy(self._snapshot(), ctx)
            self.cycles += 1
            if not self._apply(result):
                return
        raise RuntimeError(f"no steady state after {MAX_CYCLES_PER_INSTANT} cycles at t={self.engine.now}")

    def _apply(self, result: CycleResult) -> bool:
        now = self.engine.now
        self._account(now)
        changed = False
        for victim in result.preempted:
            changed |= self._evict(victim.victim)
        for decision in result.admitted:
            self._admit(decision.workload, decision.admission)
            changed = True
        for pending in result.pending:
            rec = self.records.get(pending.workload)
            if rec is None or pending.requeue == "immediate":
                continue
            changed |= self._park(rec)
        return changed

    def _park(self, rec: WorkloadRecord) -> bool:
        """Park a workload that did not fit, with every pending workload of its queue that is
        scheduling-equivalent to it (Kueue's SchedulingEquivalenceHashing bulk move)."""
        cq = self._cq_of(rec.workload) or ""
        parked = self._parked[cq]
        if rec.workload.key in parked:
            return False
        for _, _, key in self._pending[cq]:
            if key not in parked and self.records[key].equivalence == rec.equivalence:
                parked.add(key)
        parked.add(rec.workload.key)
        self._parked_queues[self._cohort_root(cq)].add(cq)
        return True

    def _admit(self, key: str, admission: AdmissionRecord) -> None:
        self._touch()
        rec = self.records[key]
        self._dequeue(key)
        wl = replace(rec.workload, admission=admission, admitted_at=self.engine.now)
        rec.workload = wl
        self._admitted[key] = wl
        self._usage[admission.cluster_queue] += _total(admission)
        self._admitted_by_queue[admission.cluster_queue][key] = wl
        totals = self._usage_by_queue[admission.cluster_queue]
        for fr, value in admission.usage.items():
            totals[fr] = totals.get(fr, 0) + value
        if rec.admitted_at is None:
            rec.admitted_at = self.engine.now
        if not self.external:
            rec.finish_event = self.engine.after(rec.runtime, lambda: self._finish(key))
        self.on_admit(key, admission)

    def _release(self, key: str) -> WorkloadRecord:
        rec = self.records[key]
        wl = self._admitted.pop(key)
        assert wl.admission is not None
        self._usage[wl.admission.cluster_queue] -= _total(wl.admission)
        self._admitted_by_queue[wl.admission.cluster_queue].pop(key, None)
        totals = self._usage_by_queue[wl.admission.cluster_queue]
        for fr, value in wl.admission.usage.items():
            totals[fr] = totals.get(fr, 0) - value
        self._capacity_event(wl.admission.cluster_queue)
        rec.workload = replace(wl, admission=None, admitted_at=None)
        return rec

    def _finish(self, key: str) -> None:
        self._touch()
        self._account(self.engine.now)
        self._release(key).finished_at = self.engine.now

    def _evict(self, key: str) -> bool:
        """Evict an admitted workload (a preemption victim). With `eviction_s` > 0 its quota stays
        reserved that long, as in a cluster, where Kueue releases it once the Job's pods are gone;
        a victim already being evicted is not evicted twice (the preemptor waits for it)."""
        if key not in self._admitted or key in self._evicting:
            return False
        rec = self.records[key]
        rec.evictions += 1
        if rec.finish_event is not None:
            rec.finish_event.cancel()
            rec.finish_event = None
        if self.eviction_s > 0:
            self._evicting.add(key)
            self.engine.after(self.eviction_s, lambda: self._evicted(key))
        else:
            self._requeue(key)
        self.on_evict(key)
        return True

    def _evicted(self, key: str) -> None:
        """The victim's pods are gone: its quota is free and it waits in its queue again."""
        self._evicting.discard(key)
        if key in self._admitted:
            self._account(self.engine.now)
            self._requeue(key)
        self.on_requeue()

    def _requeue(self, key: str) -> None:
        self._enqueue(self._release(key).workload)

    # -- results ----------------------------------------------------------------------------------
    def average_usage(self, cluster_queue: str) -> float:
        """Average admitted usage (milli-units) of a queue between the first and the last event."""
        span = self.last_event - (self.first_event or 0.0)
        return self._usage_integral[cluster_queue] / span if span > 0 else 0.0


def _ignore(key: str) -> None:
    pass


def _ignore2(key: str, admission: AdmissionRecord) -> None:
    pass


def _nothing() -> None:
    pass


def equivalence_key(wl: WorkloadInfo) -> tuple[object, ...]:
    """What admission depends on: queue, priority and pod sets (counts, requests, placement)."""
    return (
        wl.local_queue_key,
        wl.priority,
        tuple(
            (
                ps.name,
                ps.count,
                ps.min_count,
                tuple(sorted(ps.requests.items())),
                tuple(sorted(ps.node_selector.items())),
                ps.tolerations,
            )
            for ps in wl.pod_sets
        ),
    )


def _total(admission: AdmissionRecord) -> float:
    return float(sum(sum(ps.resource_usage.values()) for ps in admission.pod_sets))
