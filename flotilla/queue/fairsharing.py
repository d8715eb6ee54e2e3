"""Fair sharing: dominant resource shares, the fair order of a cycle's entries, and admission fair
sharing. Kueue's `pkg/cache/scheduler/fair_sharing.go`, `pkg/scheduler/fair_sharing_iterator.go`
and `pkg/util/admissionfairsharing`, written for Flotilla.

Dominant resource share of a node `n` with a parent (0 for a root or a ClusterQueue without cohort):

    borrowed(r) = sum over flavors f of max(0, extra(f,r) + usage(f,r) - subtree_quota(f,r))
    lendable(r) = sum over flavors f of potential_available(parent(n), (f, r))
    ratio       = max over r with lendable(r) > 0 of borrowed(r) * 1000 / lendable(r)
    share       = ratio / fairSharing.weight      (weight 0 and borrowing: +inf)

Ties on the ratio pick the alphabetically first resource. `weighted_share` rounds up, as Kueue's
`status.fairSharing.weightedShare` does. Comparing shares, a zero-weight borrower is above every
other node and zero-weight borrowers compare by ratio.

Fair order of entries (fairSharing.enable): per cohort tree, a tournament from the root: each
Cohort picks, among the nominees of its children (child Cohorts first, then ClusterQueues, by name),
the one whose child subtree would (with the nominee's usage added) not borrow on the nominee's
FlavorResources, then the lowest share, then the higher priority, then the earlier `created`.
Shares are recomputed before every pick, so admissions earlier in the cycle count. ClusterQueues
without a cohort are taken as they come.

Admission fair sharing: within a ClusterQueue whose admissionScope asks for it, heads are ordered by
their LocalQueue's decayed usage (summed over resources, each weighted 1) divided by the LocalQueue's
weight, lowest first; then priority, then `created`.

The "not borrowing first" rule is Kueue's FairSharingPrioritizeNonBorrowing (beta, on by default).
LocalQueue usage is in whatever unit the driver samples (Flotilla: milli-units); with every weight 1
only the ratio between LocalQueues matters, which a common scale does not change.

Differences from Kueue: trees are visited one after another in root-name order (Kueue picks a random
ClusterQueue per pop; trees are independent, so the outcome is the same); no resourceWeights in the
admission fair sharing configuration (all weights are 1); a share is "zero" exactly when the node
does not borrow, and Kueue's guard for borrowers whose share underflows to zero is not reproduced.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from flotilla.queue import quota as q
from flotilla.queue.types import AdmissionFairSharingConfig, FlavorResource, WorkloadInfo


@dataclass(frozen=True)
class DRS:
    """A node's dominant resource share (Kueue's DRS)."""

    weight: float
    ratio: float = 0.0  # unweighted, per mille of the parent's lendable amount
    borrowing: bool = False
    borrowed: frozenset[FlavorResource] = frozenset()
    resource: str = ""  # the dominant resource
    ratio_defined: bool = False

    @property
    def precise(self) -> float:
        if not self.borrowing or not self.ratio_defined:
            return 0.0
        if self.weight == 0:
            return math.inf
        return self.ratio / self.weight

    @property
    def zero_weight_borrows(self) -> bool:
        return self.weight == 0 and self.borrowing

    @property
    def weighted_share(self) -> int:
        """`status.fairSharing.weightedShare`: the share rounded up; max int for zero weight."""
        return sys.maxsize if self.zero_weight_borrows else math.ceil(self.precise)

    def is_borrowing_on(self, frs: Sequence[FlavorResource] | Mapping[FlavorResource, int]) -> bool:
        return any(fr in self.borrowed for fr in frs)


def compare_drs(a: DRS, b: DRS) -> int:
    """-1 when `a` should be scheduled first (or preempted last), 1 for the opposite, 0 on a tie."""
    if a.zero_weight_borrows and b.zero_weight_borrows:
        return (a.ratio > b.ratio) - (a.ratio < b.ratio)
    if a.zero_weight_borrows:
        return 1
    if b.zero_weight_borrows:
        return -1
    return (a.precise > b.precise) - (a.precise < b.precise)


def dominant_resource_share(node: q.QuotaNode, extra: Mapping[FlavorResource, int] | None = None) -> DRS:
    """The node's share with `extra` usage added to it (a workload being considered)."""
    extra = extra or {}
    if node.parent is None:
        return DRS(node.fair_weight)
    borrowed: dict[str, int] = {}
    frs: set[FlavorResource] = set()
    for fr, quota in node.subtree_quota.items():
        amount = extra.get(fr, 0) + node.usage.get(fr, 0) - quota
        if amount > 0:
            borrowed[fr[1]] = borrowed.get(fr[1], 0) + amount
            frs.add(fr)
    if not borrowed:
        return DRS(node.fair_weight)
    lendable = _lendable(node.parent)
    ratio, dominant, defined = 0.0, "", False
    for resource in sorted(borrowed):
        if lendable.get(resource, 0) > 0:
            value = borrowed[resource] * 1000.0 / lendable[resource]
            defined = True
            if value > ratio:
                ratio, dominant = value, resource
    return DRS(node.fair_weight, ratio, True, frozenset(frs), dominant, defined)


def _lendable(node: q.QuotaNode) -> dict[str, int]:
    lendable: dict[str, int] = {}
    for fr in node.root().subtree_quota:
        lendable[fr[1]] = lendable.get(fr[1], 0) + q.potential_available(node, fr)
    return lendable


# -- fair order of entries --------------------------------------------------------------------
class Nominee(Protocol):
    """What the tournament needs from a cycle entry."""

    @property
    def workload(self) -> WorkloadInfo: ...

    @property
    def cluster_queue(self) -> str: ...

    @property
    def usage(self) -> dict[FlavorResource, int]: ...


N = TypeVar("N", bound=Nominee)


def fair_order(entries: Sequence[N], tree: q.QuotaTree) -> Iterator[N]:
    """Yield entries in fair sharing order; the tree may change between yields (admissions)."""
    by_cq = {e.cluster_queue: e for e in entries}
    for name in sorted(by_cq):
        if tree.cqs[name].parent is None:
            yield by_cq.pop(name)
    roots = sorted({tree.cqs[name].root().name: tree.cqs[name].root() for name in by_cq}.items())
    for _, root in roots:
        while True:
            shares = _shares(root, by_cq, tree)
            winner = _tournament(root, by_cq, shares)
            if winner is None:
                break
            del by_cq[winner.cluster_queue]
            yield winner


def _shares(root: q.QuotaNode, by_cq: dict[str, N], tree: q.QuotaTree) -> dict[tuple[str, str], DRS]:
    """Per (cohort, workload): the share of the cohort's child on the way to the nominee's queue,
    with the nominee's usage added."""
    shares: dict[tuple[str, str], DRS] = {}
    for cq in tree.subtree_cluster_queues(root):
        entry = by_cq.get(cq.name)
        if entry is None:
            continue
        with tree.with_usage(cq.name, entry.usage):
            share = dominant_resource_share(cq)
            for ancestor in cq.ancestors():
                shares[(ancestor.name, entry.workload.key)] = share
                share = dominant_resource_share(ancestor)
    return shares


def _tournament(cohort: q.QuotaNode, by_cq: dict[str, N], shares: dict[tuple[str, str], DRS]) -> N | None:
    nominees = [n for child in cohort.child_cohorts if (n := _tournament(child, by_cq, shares)) is not None]
    nominees += [by_cq[cq.name] for cq in cohort.child_cqs if cq.name in by_cq]
    if not nominees:
        return None
    best = nominees[0]
    for current in nominees[1:]:
        if _fairer(current, best, shares, cohort.name):
            best = current
    return best


def _fairer(a: Nominee, b: Nominee, shares: dict[tuple[str, str], DRS], cohort: str) -> bool:
    a_drs, b_drs = shares[(cohort, a.workload.key)], shares[(cohort, b.workload.key)]
    a_borrows, b_borrows = a_drs.is_borrowing_on(a.usage), b_drs.is_borrowing_on(b.usage)
    if a_borrows != b_borrows:
        return not a_borrows
    if order := compare_drs(a_drs, b_drs):
        return order < 0
    if a.workload.priority != b.workload.priority:
        return a.workload.priority > b.workload.priority
    return a.workload.created < b.workload.created


# -- admission fair sharing -------------------------------------------------------------------
def _alpha(elapsed: float, half_life: float) -> float:
    return 0.0 if half_life == 0 else 1.0 - math.pow(0.5, elapsed / half_life)


def decay_usage(
    previous: Mapping[str, float], sample: Mapping[str, float], elapsed: float, half_life: float
) -> dict[str, float]:
    """A LocalQueue's new decayed usage (Kueue's CalculateDecayedConsumed): with
    `alpha = 1 - 0.5 ** (elapsed / half_life)`, `new = previous * (1 - alpha) + sample * alpha` per
    resource; `sample` is what the LocalQueue's admitted workloads use now. Half-life 0 resets it."""
    if half_life == 0:
        return {}
    alpha = _alpha(elapsed, half_life)
    keys = sorted(set(previous) | set(sample))
    return {r: previous.get(r, 0.0) * (1 - alpha) + sample.get(r, 0.0) * alpha for r in keys}


def entry_penalty(requests: Mapping[str, int], config: AdmissionFairSharingConfig) -> dict[str, float]:
    """What Kueue adds to a LocalQueue's usage when it admits one of its workloads, until the next
    sample: the workload's total requests times `alpha(usageSamplingInterval, usageHalfLifeTime)`."""
    alpha = _alpha(config.usageSamplingInterval, config.usageHalfLifeTime)
    return {r: v * alpha for r, v in sorted(requests.items())}
