"""What Kueue's classical and fair sharing preemption share (`pkg/scheduler/preemption/common`):
targets, the preemptor's context, preemption policies, candidate ordering, the preemption message
and the minimal-set search (take until the preemptor fits, then fill back).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from flotilla.queue import quota as q
from flotilla.queue.state import CycleState
from flotilla.queue.types import FlavorResource, PreemptionReason, WorkloadInfo

HUMAN_READABLE_REASONS: dict[str, str] = {
    "InClusterQueue": "prioritization in the ClusterQueue",
    "InCohortReclamation": "reclamation within the cohort",
    "InCohortFairSharing": "Fair Sharing within the cohort",
    "InCohortReclaimWhileBorrowing": "reclamation within the cohort while borrowing",
}


@dataclass(frozen=True)
class Target:
    workload: WorkloadInfo
    reason: PreemptionReason

    @property
    def cluster_queue(self) -> str:
        assert self.workload.admission is not None
        return self.workload.admission.cluster_queue


@dataclass
class PreemptionContext:
    """One preemptor, the FlavorResources that need preemption and its requests."""

    state: CycleState
    preemptor: WorkloadInfo
    cq_name: str
    frs: set[FlavorResource]
    usage: dict[FlavorResource, int] = field(default_factory=dict)

    @property
    def node(self) -> q.QuotaNode:
        return self.state.node(self.cq_name)

    def fits(self, allow_borrowing: bool) -> bool:
        """Kueue's workloadFits: every request available now, and within nominal if not borrowing."""
        node = self.node
        for fr, value in self.usage.items():
            if not allow_borrowing and q.borrowing_with(node, fr, value):
                return False
            if value > q.cq_available(node, fr):
                return False
        return True


def preemption_message(preemptor: WorkloadInfo, reason: str, preemptor_path: str, preemptee_path: str) -> str:
    return (
        f"Preempted to accommodate a workload (UID: {preemptor.uid or 'UNKNOWN'}, JobUID: UNKNOWN) due to "
        f"{HUMAN_READABLE_REASONS[reason]}; preemptor path: {preemptor_path}; preemptee path: {preemptee_path}"
    )


# -- policy and ordering ----------------------------------------------------------------------
def satisfies_policy(preemptor: WorkloadInfo, candidate: WorkloadInfo, policy: str) -> bool:
    if policy == "LowerPriority":
        return preemptor.priority > candidate.priority
    if policy == "LowerOrNewerEqualPriority":
        newer_equal = preemptor.priority == candidate.priority and preemptor.created < candidate.created
        return preemptor.priority > candidate.priority or newer_equal
    return policy == "Any"


def uses_resources(state: CycleState, workload: WorkloadInfo, frs: set[FlavorResource]) -> bool:
    return any(fr in frs for fr in state.tree.usage_of(workload))


def candidates_order(state: CycleState, preemptor_cq: str) -> functools.partial[int]:
    """A comparator for sorted(key=cmp_to_key(...)): Kueue's CandidatesOrdering."""
    return functools.partial(_compare_candidates, state, preemptor_cq)


def sort_candidates(state: CycleState, preemptor_cq: str, workloads: Iterable[WorkloadInfo]) -> list[WorkloadInfo]:
    return sorted(workloads, key=functools.cmp_to_key(candidates_order(state, preemptor_cq)))


def _compare_candidates(state: CycleState, preemptor_cq: str, a: WorkloadInfo, b: WorkloadInfo) -> int:
    a_cq, b_cq = state.cluster_queue_of(a), state.cluster_queue_of(b)
    if (a_cq == preemptor_cq) != (b_cq == preemptor_cq):
        return 1 if a_cq == preemptor_cq else -1
    if a_cq == b_cq and a.local_queue != b.local_queue:
        a_usage, b_usage = state.local_queue_usage(a), state.local_queue_usage(b)
        if a_usage is not None and b_usage is not None and a_usage != b_usage:
            return -1 if a_usage > b_usage else 1
    if a.priority != b.priority:
        return -1 if a.priority < b.priority else 1
    now = state.ctx.now
    a_at = a.admitted_at if a.admitted_at is not None else now
    b_at = b.admitted_at if b.admitted_at is not None else now
    if a_at != b_at:
        return -1 if a_at > b_at else 1
    return -1 if (a.uid, a.key) < (b.uid, b.key) else (1 if (a.uid, a.key) > (b.uid, b.key) else 0)


def take_until_fits(pctx: PreemptionContext, targets: Iterator[Target], allow_borrowing: bool) -> list[Target]:
    """Remove targets in order until the preemptor fits, then minimise; the tree is restored."""
    taken: list[Target] = []
    fits = False
    for target in targets:
        pctx.state.tree.remove_workload(target.workload)
        taken.append(target)
        if pctx.fits(allow_borrowing):
            fits = True
            break
    if fits:
        taken = fill_back(pctx, taken, allow_borrowing)
    for target in taken:
        pctx.state.tree.add_workload(target.workload)
    return taken if fits else []


def fill_back(pctx: PreemptionContext, targets: list[Target], allow_borrowing: bool) -> list[Target]:
    """Kueue's fillBackWorkloads: from the second-to-last target down, put each workload back and
    drop it from the targets when the preemptor still fits (swap-with-last removal, as Kueue does).
    The last target is always kept: without it the preemptor did not fit."""
    tree = pctx.state.tree
    for i in range(len(targets) - 2, -1, -1):
        tree.add_workload(targets[i].workload)
        if pctx.fits(allow_borrowing):
            targets[i] = targets[-1]
            targets.pop()
        else:
            tree.remove_workload(targets[i].workload)
    return targets
