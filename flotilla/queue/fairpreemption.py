"""Fair sharing preemption (fairSharing.enable): Kueue's fairPreemptions and
`pkg/scheduler/preemption/fairsharing`, written for Flotilla.

Candidates: the preemptor's own ClusterQueue (withinClusterQueue policy) and every other active
ClusterQueue of the cohort tree that borrows in a contested FlavorResource (reclaimWithinCohort
policy; borrowWithinCohort plays no part), in CandidatesOrdering, grouped by ClusterQueue.

With the preemptor's usage added to its ClusterQueue, target ClusterQueues are visited from the
root: each Cohort descends into the child (Cohort or ClusterQueue) with the highest share (a Cohort
wins ties against a ClusterQueue; between ClusterQueues the one whose first candidate orders first
wins), pruning children that no longer borrow (except the preemptor and its ancestors) or have no
candidates. Shares compared are those of the AlmostLCAs: the children of the lowest common ancestor
on the way to the preemptor and to the target.

1. A candidate of the preemptor's own ClusterQueue is preempted (InClusterQueue).
2. While the preemptor's ClusterQueue stays within nominal in the contested FlavorResources, the
   target's next candidate is preempted (InCohortReclamation; Kueue's FairSharingPreemptWithinNominal,
   beta and on by default).
3. Otherwise the first strategy: LessThanOrEqualToFinalShare preempts a candidate when
   share(preemptor, with it admitted) <= share(target, without the candidate); LessThanInitialShare
   when share(preemptor, with it admitted) < share(target, now). Candidates that fail are kept.
4. If the preemptor still does not fit and a second strategy is configured, LessThanInitialShare
   once more over the kept candidates, at most one per ClusterQueue.

Targets are taken until the preemptor fits (borrowing allowed), then minimised as in the classical
algorithm. Reasons: InClusterQueue, InCohortReclamation, InCohortFairSharing.

Differences from Kueue: FairSharingReevaluatePreemptionCandidates (alpha) is not implemented.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing

from flotilla.queue import quota as q
from flotilla.queue.fairsharing import DRS, compare_drs, dominant_resource_share
from flotilla.queue.preemptioncommon import (
    PreemptionContext,
    Target,
    candidates_order,
    fill_back,
    satisfies_policy,
    sort_candidates,
    uses_resources,
)
from flotilla.queue.types import WorkloadInfo

Strategy = str  # "LessThanOrEqualToFinalShare" | "LessThanInitialShare"


def fair_targets(pctx: PreemptionContext) -> list[Target]:
    candidates = sort_candidates(pctx.state, pctx.cq_name, _find_candidates(pctx))
    if not candidates:
        return []
    strategies = pctx.state.ctx.config.fairSharing.preemptionStrategies or (
        "LessThanOrEqualToFinalShare",
        "LessThanInitialShare",
    )
    tree = pctx.state.tree
    taken: list[Target] = []
    fits = False
    with tree.with_usage(pctx.cq_name, pctx.usage), closing(_strategy_targets(pctx, candidates, strategies)) as targets:
        for target in targets:  # each target is already removed from the tree
            taken.append(target)
            with tree.without_usage(pctx.cq_name, pctx.usage):  # fit is checked without the incoming usage
                fits = pctx.fits(allow_borrowing=True)
            if fits:
                break
    if fits:
        taken = fill_back(pctx, taken, allow_borrowing=True)
    for target in taken:
        tree.add_workload(target.workload)
    return taken if fits else []


def _find_candidates(pctx: PreemptionContext) -> list[WorkloadInfo]:
    state, node = pctx.state, pctx.node
    policy = state.cq(pctx.cq_name).preemption
    found: list[WorkloadInfo] = []
    if policy.within_cluster_queue != "Never":
        found += _eligible(pctx, pctx.cq_name, policy.within_cluster_queue)
    if node.parent is not None and policy.reclaim_within_cohort != "Never":
        for other in state.tree.subtree_cluster_queues(node.root()):
            if other is not node and any(q.is_borrowing(other, fr) for fr in pctx.frs):
                found += _eligible(pctx, other.name, policy.reclaim_within_cohort)
    return found


def _eligible(pctx: PreemptionContext, cq: str, policy: str) -> list[WorkloadInfo]:
    workloads = pctx.state.tree.workloads[cq]
    return [
        wl
        for wl in (workloads[k] for k in sorted(workloads))
        if satisfies_policy(pctx.preemptor, wl, policy) and uses_resources(pctx.state, wl, pctx.frs)
    ]


def _strategy_targets(
    pctx: PreemptionContext, candidates: list[WorkloadInfo], strategies: Sequence[Strategy]
) -> Generator[Target, None, None]:
    retry = yield from _first_strategy(pctx, candidates, strategies[0])
    if len(strategies) > 1:
        yield from _second_strategy(pctx, retry)


def _first_strategy(
    pctx: PreemptionContext, candidates: list[WorkloadInfo], strategy: Strategy
) -> Generator[Target, None, list[WorkloadInfo]]:
    tree = pctx.state.tree
    ordering = TargetOrdering(pctx, candidates)
    within_nominal = not any(q.is_borrowing(pctx.node, fr) for fr in pctx.frs)
    retry: list[WorkloadInfo] = []
    for target in ordering:
        if target is pctx.node or within_nominal:
            workload = ordering.pop(target)
            tree.remove_workload(workload)
            yield Target(workload, "InClusterQueue" if target is pctx.node else "InCohortReclamation")
            continue
        preemptor_new, target_old = ordering.shares(target)
        while ordering.has(target):
            workload = ordering.pop(target)
            target_new = ordering.share_without(target, workload)
            if _passes(strategy, preemptor_new, target_old, target_new):
                tree.remove_workload(workload)
                yield Target(workload, "InCohortFairSharing")
                break
            retry.append(workload)
    return retry


def _second_strategy(pctx: PreemptionContext, retry: list[WorkloadInfo]) -> Generator[Target, None, None]:
    ordering = TargetOrdering(pctx, retry)
    for target in ordering:
        if target is pctx.node:  # never reached: only other queues' candidates are kept for this rule
            ordering.drop(target)
            continue
        preemptor_new, target_old = ordering.shares(target)
        workload = ordering.pop(target)
        if compare_drs(preemptor_new, target_old) < 0:
            pctx.state.tree.remove_workload(workload)
            yield Target(workload, "InCohortFairSharing")
        ordering.drop(target)


def _passes(strategy: Strategy, preemptor_new: DRS, target_old: DRS, target_new: DRS) -> bool:
    if strategy == "LessThanOrEqualToFinalShare":
        return compare_drs(preemptor_new, target_new) <= 0
    return compare_drs(preemptor_new, target_old) < 0


class TargetOrdering:
    """Kueue's TargetClusterQueueOrdering: which ClusterQueue to take the next candidate from."""

    def __init__(self, pctx: PreemptionContext, candidates: list[WorkloadInfo]) -> None:
        self.pctx = pctx
        self.preemptor = pctx.node
        self.ancestors = {id(a) for a in self.preemptor.ancestors()}
        self.queues: dict[str, list[WorkloadInfo]] = {}
        for wl in candidates:
            cq = pctx.state.cluster_queue_of(wl)
            assert cq is not None
            self.queues.setdefault(cq, []).append(wl)
        self.pruned: set[int] = set()
        self._order = functools.cmp_to_key(candidates_order(pctx.state, pctx.cq_name))

    def has(self, node: q.QuotaNode) -> bool:
        return bool(self.queues.get(node.name))

    def pop(self, node: q.QuotaNode) -> WorkloadInfo:
        return self.queues[node.name].pop(0)

    def drop(self, node: q.QuotaNode) -> None:
        self.pruned.add(id(node))

    def __iter__(self) -> Iterator[q.QuotaNode]:
        """Callers must pop or drop between items, or the same ClusterQueue comes back forever."""
        if self.preemptor.parent is None:
            while self.has(self.preemptor):
                yield self.preemptor
            return
        root = self.preemptor.root()
        while id(root) not in self.pruned:
            target = self._next(root)
            if target is not None:
                yield target

    def _next(self, cohort: q.QuotaNode) -> q.QuotaNode | None:
        best_cq, best_cq_drs = self._best_cq(cohort)
        best_cohort: q.QuotaNode | None = None
        best_cohort_drs = DRS(1.0)
        for child in cohort.child_cohorts:
            if id(child) in self.pruned:
                continue
            drs = dominant_resource_share(child)
            if not drs.borrowing and id(child) not in self.ancestors:
                self.pruned.add(id(child))
            elif best_cohort is None or compare_drs(drs, best_cohort_drs) >= 0:
                best_cohort, best_cohort_drs = child, drs
        if best_cohort is None and best_cq is None:
            self.pruned.add(id(cohort))
            return None
        if best_cohort is not None and (best_cq is None or compare_drs(best_cohort_drs, best_cq_drs) >= 0):
            return self._next(best_cohort)
        return best_cq

    def _best_cq(self, cohort: q.QuotaNode) -> tuple[q.QuotaNode | None, DRS]:
        best: q.QuotaNode | None = None
        best_drs = DRS(1.0)
        for cq in cohort.child_cqs:
            if id(cq) in self.pruned or not cq.active:
                continue
            drs = dominant_resource_share(cq)
            if (not drs.borrowing and cq is not self.preemptor) or not self.has(cq):
                self.pruned.add(id(cq))
            elif best is None or compare_drs(drs, best_drs) > 0:
                best, best_drs = cq, drs
            elif compare_drs(drs, best_drs) == 0 and self._first_orders_first(cq, best):
                best = cq
        return best, best_drs

    def _first_orders_first(self, a: q.QuotaNode, b: q.QuotaNode) -> bool:
        return bool(self._order(self.queues[a.name][0]) < self._order(self.queues[b.name][0]))

    def shares(self, target: q.QuotaNode) -> tuple[DRS, DRS]:
        """(share of the preemptor's AlmostLCA, share of the target's AlmostLCA)."""
        lca = self._lca(target)
        return dominant_resource_share(_almost(self.preemptor, lca)), dominant_resource_share(_almost(target, lca))

    def share_without(self, target: q.QuotaNode, workload: WorkloadInfo) -> DRS:
        """The target AlmostLCA's share once `workload` is gone (usage removed at the queue, so
        every Cohort on the way sees it through the lending limits)."""
        lca = self._lca(target)
        with self.pctx.state.tree.without_usage_of([workload]):
            return dominant_resource_share(_almost(target, lca))

    def _lca(self, target: q.QuotaNode) -> q.QuotaNode:
        return next(a for a in target.ancestors() if id(a) in self.ancestors)


def _almost(node: q.QuotaNode, lca: q.QuotaNode) -> q.QuotaNode:
    """The node on the path from `node` whose parent is `lca`."""
    current = node
    for ancestor in node.ancestors():
        if ancestor is lca:
            return current
        current = ancestor
    raise AssertionError(f"{lca.name} is not an ancestor of {node.name}")
