"""Preemption: which admitted workloads to evict so a pending one fits. Kueue's classical algorithm
(`pkg/scheduler/preemption/preemption.go`, `classical/`, `common/`), written for Flotilla; the fair
sharing variant is in `fairpreemption.py`.

Candidates (Kueue's classifyPreemptionVariant), each using a FlavorResource that needs preemption:

- same ClusterQueue, allowed by withinClusterQueue: LowerPriority (strictly lower priority) or
  LowerOrNewerEqualPriority (lower, or equal and queued later - `created` after the preemptor's);
- other ClusterQueues of the cohort tree whose usage (and every Cohort's up to the lowest common
  ancestor) is above nominal in a contested FlavorResource, allowed by reclaimWithinCohort
  (LowerPriority / Any). Walking from the preemptor's parent to the root, ClusterQueues below a
  subtree whose quota already holds the request are "hierarchy" candidates (InCohortReclamation,
  any priority the policy allows); the others are "priority" candidates: reclaimable only without
  borrowing (InCohortReclamation) unless borrowWithinCohort allows lower-priority ones at or below
  maxPriorityThreshold to be taken while borrowing (InCohortReclaimWhileBorrowing).

Order (Kueue's CandidatesOrdering), within hierarchy, then priority, then same-queue candidates:
other ClusterQueues first; with admission fair sharing, within one ClusterQueue the LocalQueue with
the higher usage first; lower priority first; most recently admitted first; then UID.

Attempts: only with borrowing when no other queue has candidates or borrowWithinCohort is Never and
the ClusterQueue is at or above nominal; without then with borrowing when borrowWithinCohort is Never
and there are no hierarchy candidates; else with then without borrowing. Each attempt removes
still-valid candidates in order until the preemptor fits (`without borrowing`: its usage stays
within nominal), then adds back, from the second-to-last target down, every one it can do without
(Kueue's fillBackWorkloads, swap-with-last removal included), for a minimal set.

Differences from Kueue: no "already evicted first" rule (the snapshot has no evicting workloads);
the preemptor's JobUID is always UNKNOWN (the snapshot has no job UID); UIDs tie-break with the
workload key after them; Kueue's quota-band shortcut (skipping other queues' candidates when every
contested resource would exceed its borrowing limit anyway, which Kueue documents as not changing
the outcome) is not reproduced; no TAS, configurable preemption or preemption gates; the alpha
SchedulerTimestampPreemptionBuffer is off, as it is by default.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum

from flotilla.queue import quota as q
from flotilla.queue.fairpreemption import fair_targets
from flotilla.queue.flavorassigner import Assignment, PreemptionMode
from flotilla.queue.preemptioncommon import (
    PreemptionContext,
    Target,
    candidates_order,
    satisfies_policy,
    take_until_fits,
    uses_resources,
)
from flotilla.queue.state import CycleState
from flotilla.queue.types import FlavorResource, PreemptionReason, WorkloadInfo


# -- classical candidates ---------------------------------------------------------------------
class Variant(Enum):
    """Kueue's preemptionVariant: why (and when) a candidate may be preempted."""

    WITHIN_CQ = 1
    HIERARCHICAL_RECLAIM = 2  # the preemptor's subtree holds the quota: any priority the policy allows
    RECLAIM_WITHOUT_BORROWING = 3  # only if the preemptor does not borrow afterwards
    RECLAIM_WHILE_BORROWING = 4  # borrowWithinCohort: lower priority, at or below the threshold

    @property
    def reason(self) -> PreemptionReason:
        if self is Variant.WITHIN_CQ:
            return "InClusterQueue"
        return "InCohortReclaimWhileBorrowing" if self is Variant.RECLAIM_WHILE_BORROWING else "InCohortReclamation"


@dataclass(frozen=True)
class Candidate:
    workload: WorkloadInfo
    variant: Variant
    lca: q.QuotaNode | None  # the subtree root it was found under (None: same ClusterQueue)


def _classify(pctx: PreemptionContext, wl: WorkloadInfo, same_cq: bool, advantage: bool) -> Variant | None:
    policy = pctx.state.cq(pctx.cq_name).preemption
    if not uses_resources(pctx.state, wl, pctx.frs):
        return None
    rule = policy.within_cluster_queue if same_cq else policy.reclaim_within_cohort
    if not satisfies_policy(pctx.preemptor, wl, rule):
        return None
    if same_cq:
        return Variant.WITHIN_CQ
    if advantage:
        return Variant.HIERARCHICAL_RECLAIM
    if policy.borrow_within_cohort == "Never":
        return Variant.RECLAIM_WITHOUT_BORROWING
    threshold = policy.max_priority_threshold
    above = wl.priority >= pctx.preemptor.priority or (threshold is not None and wl.priority > threshold)
    return Variant.RECLAIM_WITHOUT_BORROWING if above else Variant.RECLAIM_WHILE_BORROWING


def _from_cq(pctx: PreemptionContext, cq: str, lca: q.QuotaNode | None, advantage: bool) -> list[Candidate]:
    found = []
    for key in sorted(pctx.state.tree.workloads[cq]):
        wl = pctx.state.tree.workloads[cq][key]
        variant = _classify(pctx, wl, cq == pctx.cq_name, advantage)
        if variant is not None:
            found.append(Candidate(wl, variant, lca))
    return found


def _collect_hierarchical(pctx: PreemptionContext) -> tuple[list[Candidate], list[Candidate]]:
    """(hierarchy candidates, priority candidates), walking from the parent to the root."""
    hierarchy: list[Candidate] = []
    priority: list[Candidate] = []
    node = pctx.node
    if node.parent is None or pctx.state.cq(pctx.cq_name).preemption.reclaim_within_cohort == "Never":
        return hierarchy, priority
    advantage, remaining = q.fits_in_quota(node, pctx.usage)
    previous: q.QuotaNode | None = None
    for subtree in node.ancestors():
        out = hierarchy if advantage else priority
        _collect_subtree(pctx, subtree, subtree, previous, advantage, out)
        fits, remaining = q.fits_in_quota(subtree, remaining)
        advantage = advantage or fits
        previous = subtree
    return hierarchy, priority


def _collect_subtree(
    pctx: PreemptionContext,
    cohort: q.QuotaNode,
    lca: q.QuotaNode,
    skip: q.QuotaNode | None,
    advantage: bool,
    out: list[Candidate],
) -> None:
    for child in cohort.child_cohorts:
        if child is not skip and not q.within_nominal(child, pctx.frs):
            _collect_subtree(pctx, child, lca, skip, advantage, out)
    for cq in cohort.child_cqs:
        if cq.active and cq is not pctx.node and not q.within_nominal(cq, pctx.frs):
            out.extend(_from_cq(pctx, cq.name, lca, advantage))


def _still_valid(pctx: PreemptionContext, cand: Candidate, allow_borrowing: bool) -> bool:
    """Earlier removals can bring a ClusterQueue (or a Cohort below the lca) back within nominal."""
    if cand.variant is Variant.WITHIN_CQ:
        return True
    if allow_borrowing and cand.variant is Variant.RECLAIM_WITHOUT_BORROWING:
        return False
    assert cand.workload.admission is not None
    node = pctx.state.node(cand.workload.admission.cluster_queue)
    if q.within_nominal(node, pctx.frs):
        return False
    for ancestor in node.ancestors():
        if ancestor is cand.lca:
            break
        if q.within_nominal(ancestor, pctx.frs):
            return False
    return True


# -- classical search ---------------------------------------------------------------------------
def classical_targets(pctx: PreemptionContext) -> list[Target]:
    policy = pctx.state.cq(pctx.cq_name).preemption
    same = _from_cq(pctx, pctx.cq_name, None, False) if policy.within_cluster_queue != "Never" else []
    hierarchy, priority = _collect_hierarchical(pctx)
    order = functools.cmp_to_key(candidates_order(pctx.state, pctx.cq_name))
    candidates = sorted(hierarchy, key=lambda c: order(c.workload))
    candidates += sorted(priority, key=lambda c: order(c.workload))
    candidates += sorted(same, key=lambda c: order(c.workload))
    forbidden = policy.borrow_within_cohort == "Never"
    if (not hierarchy and not priority) or (forbidden and not _under_nominal(pctx)):
        attempts = [True]
    elif forbidden and not hierarchy:
        attempts = [False, True]
    else:
        attempts = [True, False]
    for allow_borrowing in attempts:
        valid = (c for c in candidates if _still_valid(pctx, c, allow_borrowing))
        targets = take_until_fits(pctx, (Target(c.workload, c.variant.reason) for c in valid), allow_borrowing)
        if targets:
            return targets
    return []


def _under_nominal(pctx: PreemptionContext) -> bool:
    """Kueue's queueUnderNominalInResourcesNeedingPreemption: usage < nominal for every fr."""
    node = pctx.node
    return all(node.quota(fr).nominal > node.usage.get(fr, 0) for fr in pctx.frs)


# -- entry points -----------------------------------------------------------------------------
def get_targets(state: CycleState, preemptor: WorkloadInfo, cq: str, assignment: Assignment) -> list[Target]:
    """The workloads to evict so `assignment` of `preemptor` fits; [] when there is no way."""
    pctx = PreemptionContext(state, preemptor, cq, assignment.frs_needing_preemption(), dict(assignment.usage))
    return _targets(pctx)


def _targets(pctx: PreemptionContext) -> list[Target]:
    return fair_targets(pctx) if pctx.state.fair_sharing else classical_targets(pctx)


def simulate_preemption(
    state: CycleState, preemptor: WorkloadInfo, cq: str, fr: FlavorResource, quantity: int
) -> tuple[PreemptionMode, int]:
    """Kueue's preemption oracle for one FlavorResource: can preemption make `quantity` fit, is it
    reclaim only (no same-queue victim), and at which borrowing level would it fit afterwards?"""
    targets = _targets(PreemptionContext(state, preemptor, cq, {fr}, {fr: quantity}))
    node = state.node(cq)
    if not targets:
        return PreemptionMode.NO_CANDIDATES, q.lowest_subtree_that_fits(node, fr, quantity)[0]
    with state.tree.without_usage_of(t.workload for t in targets):
        borrow_after = q.lowest_subtree_that_fits(node, fr, quantity)[0]
    same_queue = any(t.cluster_queue == cq for t in targets)
    return (PreemptionMode.PREEMPT if same_queue else PreemptionMode.RECLAIM), borrow_after
