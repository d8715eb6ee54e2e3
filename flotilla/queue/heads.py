"""Queue heads and queue checks: which pending workload each ClusterQueue offers this cycle, which
workloads wait because their queues are missing or stopped, and what HoldAndDrain evicts.
Kueue's queue manager (`pkg/cache/queue`) and the workload controller's queue checks.

A pending workload (no admission, active) is a candidate when `eligible_at <= now` and it is not
`parked`. Its LocalQueue must exist and not be stopped, its ClusterQueue must exist and be active
(not stopped, no `inactive_reason`, not below a Cohort cycle); otherwise it waits with Kueue's
message (`LocalQueue lq doesn't exist`, `LocalQueue lq is inactive`, `ClusterQueue cq doesn't
exist`, `ClusterQueue cq is inactive`) and requeue "never" (until the queues change).

Each ClusterQueue offers one head per cycle (Kueue pops one per queue): the first by (LocalQueue
usage over weight, when admission fair sharing applies), higher priority, earlier `created`, then
the workload key. StrictFIFO and BestEffortFIFO pick the head the same way; they differ in how a
head that cannot be admitted is requeued (see cycle.py): StrictFIFO keeps it at the head,
BestEffortFIFO parks it so the next workload becomes the head in the next cycle.

HoldAndDrain on a LocalQueue or ClusterQueue evicts its admitted workloads (`LocalQueueStopped` /
`ClusterQueueStopped`, LocalQueue checked first as Kueue's workload controller does); Hold only
stops admission.

Differences from Kueue: a namespace missing from `snapshot.namespace_labels` has no labels (Kueue
reports that it could not read the namespace); no "sticky" head for a BestEffortFIFO preemptor waiting for its victims
(the snapshot carries no such state), so after the victims are gone an older parked workload that
was requeued by that capacity event may be considered before the preemptor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flotilla.queue.state import CycleState
from flotilla.queue.types import EvictionDecision, PendingDecision, Snapshot, WorkloadInfo


@dataclass(frozen=True)
class Head:
    workload: WorkloadInfo
    cluster_queue: str


@dataclass
class Heads:
    heads: list[Head] = field(default_factory=list)
    blocked: list[PendingDecision] = field(default_factory=list)


def pick_heads(state: CycleState) -> Heads:
    result = Heads()
    queued: dict[str, list[WorkloadInfo]] = {}
    snapshot = state.snapshot
    # only the pending workloads, in key order (the admitted ones, most of a busy snapshot, are not sorted)
    pending = snapshot.pending_keys
    if pending is None:
        pending = [k for k, w in snapshot.workloads.items() if w.admission is None]
    for key in sorted(pending):
        wl = snapshot.workloads[key]
        if not wl.active:
            continue
        problem = queue_problem(state, wl)
        if problem is not None:
            result.blocked.append(PendingDecision(key, problem, "never"))
        elif wl.eligible_at <= state.ctx.now and not wl.parked:
            queued.setdefault(snapshot.local_queues[wl.local_queue_key].cluster_queue, []).append(wl)
    for cq in sorted(queued):
        head = min(queued[cq], key=lambda w: queue_order_key(state, w))
        result.heads.append(Head(head, cq))
    return result


def queue_problem(state: CycleState, wl: WorkloadInfo) -> str | None:
    """Why the workload's queues cannot admit it, in Kueue's words; None when they can."""
    lq = state.snapshot.local_queues.get(wl.local_queue_key)
    if lq is None:
        return f"LocalQueue {wl.local_queue} doesn't exist"
    if lq.stop_policy != "None":
        return f"LocalQueue {wl.local_queue} is inactive"
    if lq.cluster_queue not in state.snapshot.cluster_queues:
        return f"ClusterQueue {lq.cluster_queue} doesn't exist"
    if not state.node(lq.cluster_queue).active:
        return f"ClusterQueue {lq.cluster_queue} is inactive"
    return None


def queue_order_key(state: CycleState, wl: WorkloadInfo) -> tuple[float, int, float, str]:
    usage = state.local_queue_usage(wl)
    return (usage if usage is not None else 0.0, -wl.priority, wl.created, wl.key)


def namespace_matches(snapshot: Snapshot, cq: str, namespace: str) -> bool:
    """A nil namespaceSelector matches no namespace; an empty one matches every namespace."""
    selector = snapshot.cluster_queues[cq].namespace_selector
    return selector is not None and selector.matches(snapshot.namespace_labels.get(namespace, {}))


def drain_stopped_queues(snapshot: Snapshot) -> list[EvictionDecision]:
    evictions: list[EvictionDecision] = []
    draining = any(q.stop_policy == "HoldAndDrain" for q in snapshot.local_queues.values()) or any(
        q.stop_policy == "HoldAndDrain" for q in snapshot.cluster_queues.values()
    )
    if not draining:  # the common case: no queue drains, no workload to look at
        return evictions
    for key in sorted(snapshot.workloads):
        wl = snapshot.workloads[key]
        if wl.admission is None:
            continue
        lq = snapshot.local_queues.get(wl.local_queue_key)
        cq = snapshot.cluster_queues.get(wl.admission.cluster_queue)
        if lq is not None and lq.stop_policy == "HoldAndDrain":
            evictions.append(EvictionDecision(key, "LocalQueueStopped", "The LocalQueue is stopped"))
        elif cq is not None and cq.stop_policy == "HoldAndDrain":
            evictions.append(EvictionDecision(key, "ClusterQueueStopped", "The ClusterQueue is stopped"))
    return evictions
