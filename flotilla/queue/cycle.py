"""One scheduling cycle with Kueue's semantics: `schedule(snapshot, ctx) -> CycleResult`.
Kueue's `pkg/scheduler/scheduler.go`, written for Flotilla.

Phases:

1. Take the snapshot: a working quota tree with the usage of every admitted workload.
2. Pick heads: one pending workload per active ClusterQueue (heads.py); workloads whose queues are
   missing or stopped wait, and HoldAndDrain queues evict their admitted workloads.
3. Nominate: namespaceSelector check (`Workload namespace doesn't match ClusterQueue selector`),
   then flavor assignment. A Preempt assignment asks preemption for targets; when the full counts
   neither fit nor find targets and partial admission applies (`ctx.config.partialAdmission` and a
   pod set with minCount), the largest counts that fit or find targets are searched.
4. Order: classical - non-borrowing before borrowing (lower borrowing level first), higher
   priority, earlier `created`; with fair sharing, the tournament of fairsharing.py.
5. Admit or preempt, in that order, updating the tree so later entries see earlier ones:
   - NoFit, or Preempt without targets: wait with the assignment's message. A Preempt entry without
     targets of a ClusterQueue that cannot always reclaim (reclaimWithinCohort != Any) reserves the
     quota it could get (up to nominal, or nominal + borrowingLimit when borrowing) so that
     lower-priority work elsewhere cannot take it first.
   - targets overlapping another entry's targets this cycle: `Workload has overlapping preemption
     targets with another workload`; not fitting once this cycle's admissions and preemptions are
     accounted for: `Workload no longer fits after processing another workload` (both requeued at
     once).
   - Preempt: its usage is reserved, its targets are evicted (PreemptionDecision, Kueue's message)
     and it waits: `<message>. Pending the preemption of N workload(s)`; it is admitted in a later
     cycle, once the victims are gone.
   - Fit: admitted (AdmissionDecision; `borrowing` when any flavor borrows).
6. Record: requeue "immediate" for StrictFIFO heads and skipped/preempting entries, "on-capacity"
   for BestEffortFIFO heads that do not fit and for namespace mismatches, "never" for workloads
   whose queues are missing or stopped.

Like Kueue, a cycle offers one head per ClusterQueue; drivers run cycles in a loop (a BestEffortFIFO
head reported on-capacity is parked, so the next workload becomes the head in the next cycle).

Differences from Kueue: not modelled are admission checks and the second pass, waitForPodsReady's
blockAdmission (the snapshot has no pod readiness), TAS, DRA, workload slices, concurrent
admission, and the admission fair sharing entry penalty pushed at admission (drivers add
`fairsharing.entry_penalty` to the LocalQueue's usage). The quota reserved for a Preempt entry
without targets is clamped at 0 (Kueue's borrowing branch can add a negative amount when a queue
is already above nominal + borrowingLimit, which would unbalance its cohort's usage).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from flotilla.queue.fairsharing import fair_order
from flotilla.queue.flavorassigner import (
    Assignment,
    FlavorAssigner,
    Mode,
    can_be_partially_admitted,
    search_partial_counts,
)
from flotilla.queue.heads import Head, drain_stopped_queues, namespace_matches, pick_heads
from flotilla.queue.preemption import get_targets, simulate_preemption
from flotilla.queue.preemptioncommon import Target, preemption_message
from flotilla.queue.state import CycleState
from flotilla.queue.types import (
    AdmissionDecision,
    CycleContext,
    CycleResult,
    FlavorResource,
    PendingDecision,
    PreemptionDecision,
    Snapshot,
    WorkloadInfo,
)

Requeue = Literal["immediate", "on-capacity", "never"]


@dataclass
class Entry:
    """A nominated head: its assignment and, when it must preempt, the targets."""

    workload: WorkloadInfo
    cluster_queue: str
    assignment: Assignment
    targets: list[Target] = field(default_factory=list)

    @property
    def usage(self) -> dict[FlavorResource, int]:
        return self.assignment.usage


@dataclass
class Recorder:
    admitted: list[AdmissionDecision] = field(default_factory=list)
    preempted: list[PreemptionDecision] = field(default_factory=list)
    pending: list[PendingDecision] = field(default_factory=list)
    victims: dict[str, WorkloadInfo] = field(default_factory=dict)  # preempted this cycle


def schedule(snapshot: Snapshot, ctx: CycleContext) -> CycleResult:
    """Run one admission cycle over `snapshot`; see the module docstring for the phases."""
    state = CycleState.start(snapshot, ctx)  # 1
    evicted = drain_stopped_queues(snapshot)
    heads = pick_heads(state)  # 2
    record = Recorder(pending=list(heads.blocked))
    entries = nominate(state, heads.heads, record)  # 3
    for entry in order_entries(state, entries):  # 4
        admit_or_preempt(state, entry, record)  # 5
    return CycleResult(  # 6
        admitted=tuple(record.admitted),
        preempted=tuple(record.preempted),
        pending=tuple(record.pending),
        evicted=tuple(evicted),
    )


# -- 3. nominate ------------------------------------------------------------------------------
def nominate(state: CycleState, heads: Iterable[Head], record: Recorder) -> list[Entry]:
    entries = []
    for head in heads:
        if not namespace_matches(state.snapshot, head.cluster_queue, head.workload.namespace):
            message = "Workload namespace doesn't match ClusterQueue selector"
            record.pending.append(PendingDecision(head.workload.key, message, "on-capacity"))
            continue
        assignment, targets = assign(state, head.workload, head.cluster_queue)
        entries.append(Entry(head.workload, head.cluster_queue, assignment, targets))
    return entries


def assign(state: CycleState, wl: WorkloadInfo, cq: str) -> tuple[Assignment, list[Target]]:
    """Kueue's getInitialAssignments: full counts first, then partial admission."""
    assigner = FlavorAssigner(
        wl,
        state.cq(cq),
        state.tree,
        state.snapshot.flavors,
        functools.partial(simulate_preemption, state, wl, cq),
        state.fair_sharing,
    )
    full = assigner.assign()
    if full.mode is Mode.FIT:
        return full, []
    if full.mode is Mode.PREEMPT and (targets := get_targets(state, wl, cq, full)):
        return full, targets
    if state.ctx.config.partialAdmission and can_be_partially_admitted(wl):

        def fits(counts: list[int]) -> tuple[Assignment, list[Target]] | None:
            partial = assigner.assign(counts)
            if partial.mode is Mode.FIT:
                return partial, []
            if partial.mode is Mode.PREEMPT and (found := get_targets(state, wl, cq, partial)):
                return partial, found
            return None

        if (result := search_partial_counts(wl, fits)) is not None:
            return result
    return full, []


# -- 4. order ---------------------------------------------------------------------------------
def order_entries(state: CycleState, entries: list[Entry]) -> Iterable[Entry]:
    if state.fair_sharing:
        return fair_order(entries, state.tree)
    return sorted(
        entries, key=lambda e: (e.assignment.borrowing, -e.workload.priority, e.workload.created, e.workload.key)
    )


# -- 5. admit or preempt ----------------------------------------------------------------------
def admit_or_preempt(state: CycleState, entry: Entry, record: Recorder) -> None:
    mode = entry.assignment.mode
    key = entry.workload.key
    if mode is Mode.NO_FIT or (mode is Mode.PREEMPT and not entry.targets):
        if mode is Mode.PREEMPT and state.cq(entry.cluster_queue).preemption.reclaim_within_cohort != "Any":
            state.tree.add_usage(entry.cluster_queue, reserved_usage(state, entry))
        record.pending.append(PendingDecision(key, entry.assignment.message(), _not_admitted(state, entry)))
        return
    if any(t.workload.key in record.victims for t in entry.targets):
        message = "Workload has overlapping preemption targets with another workload"
        record.pending.append(PendingDecision(key, message, "immediate"))
        return
    victims = [*record.victims.values(), *(t.workload for t in entry.targets)]
    with state.tree.without_usage_of(victims):
        fits = state.tree.fits(entry.cluster_queue, entry.usage)
    if not fits:
        message = "Workload no longer fits after processing another workload"
        record.pending.append(PendingDecision(key, message, "immediate"))
        return
    record.victims.update((t.workload.key, t.workload) for t in entry.targets)
    state.tree.add_usage(entry.cluster_queue, entry.usage)
    if mode is Mode.PREEMPT:
        _preempt(state, entry, record)
        return
    admission = entry.assignment.to_admission(entry.cluster_queue)
    record.admitted.append(AdmissionDecision(key, admission, entry.assignment.borrowing > 0))


def _not_admitted(state: CycleState, entry: Entry) -> Requeue:
    """Kueue requeues a StrictFIFO head at once (it stays the head); BestEffortFIFO parks it."""
    return "immediate" if state.cq(entry.cluster_queue).queueing_strategy == "StrictFIFO" else "on-capacity"


def _preempt(state: CycleState, entry: Entry, record: Recorder) -> None:
    preemptor_path = state.node(entry.cluster_queue).path()
    for target in entry.targets:
        message = preemption_message(
            entry.workload, target.reason, preemptor_path, state.node(target.cluster_queue).path()
        )
        record.preempted.append(PreemptionDecision(target.workload.key, entry.workload.key, target.reason, message))
    message = f"{entry.assignment.message()}. Pending the preemption of {len(entry.targets)} workload(s)"
    record.pending.append(PendingDecision(entry.workload.key, message, "immediate"))


def reserved_usage(state: CycleState, entry: Entry) -> dict[FlavorResource, int]:
    """Kueue's quotaResourcesToReserve for a Preempt entry without targets."""
    node = state.node(entry.cluster_queue)
    reserved: dict[FlavorResource, int] = {}
    for fr, value in entry.usage.items():
        quota, used = node.quota(fr), node.usage.get(fr, 0)
        if entry.assignment.borrowing > 0:
            limit = quota.borrowing_limit
            reserved[fr] = value if limit is None else max(0, min(value, quota.nominal + limit - used))
        else:
            reserved[fr] = max(0, min(value, quota.nominal - used))
    return reserved
