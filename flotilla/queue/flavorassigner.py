"""Flavor assignment: which ResourceFlavor each pod set gets, and whether it fits, needs preemption
or cannot fit. Kueue's `pkg/scheduler/flavorassigner/flavorassigner.go`, written for Flotilla.

Per pod set (in order; usage of earlier pod sets counts for later ones), per requested resource
(name order), the resource group covering it tries its flavors in order:

1. The flavor must exist, its NoSchedule/NoExecute taints must be tolerated by the pod set's
   tolerations plus the flavor's own, and the pod set's nodeSelector - restricted to the keys of
   the flavor's nodeLabels - must agree with those labels. Otherwise the flavor is skipped with
   `untolerated taint {key value effect <nil>} in flavor F` / `flavor F doesn't match node affinity`.
2. For every resource of the group, with `val = earlier pod sets' usage + this request`:
   `val > potential_available` -> NoFit (`insufficient quota ... > maximum capacity (...)`);
   `val <= available` -> Fit at the borrowing level of the lowest subtree that holds it;
   otherwise (`insufficient unused quota for R in flavor F, N more needed`) the preemption oracle
   decides between Preempt/Reclaim and "no candidates" when `val <= nominal`, the ClusterQueue may
   reclaim in its hierarchy, or it may preempt while borrowing; else NoFit.
3. The flavor's mode is the least preferred of its resources. flavorFungibility decides whether to
   stop: NoFit or "no candidates" always tries the next flavor; Preempt/Reclaim tries it when
   whenCanPreempt is TryNextFlavor; borrowing tries it when whenCanBorrow is TryNextFlavor.
   Otherwise the best flavor seen wins: preemption mode first, then borrowing level
   (BorrowingOverPreemption, the default) or the other way round (PreemptionOverBorrowing).

A resource no group covers gives `resource R unavailable in ClusterQueue` (zero requests are
ignored). A pod set whose group gets no flavor ends the assignment: later pod sets are not tried.
If the ClusterQueue covers `pods`, each pod set also requests `pods = count`.

Amounts are milli-units and print as Kubernetes quantities: binary SI for resources whose name
contains "memory" or "storage" or starts with "hugepages-", decimal SI otherwise (`500m`, `8`, `36Gi`).

Differences from Kueue: no Topology Aware Scheduling, DRA or node affinity terms (nodeSelector
only); no cross-cycle resume from the last tried flavor (Kueue's LastTriedFlavorIdx), so every
cycle starts from the first flavor; no zero-count pod set probing; resources are visited in name
order (Kueue iterates a map, which can change which of two failing groups is reported); Kueue keeps
non-CPU amounts in whole units (rounded up), Flotilla keeps milli-units for every resource, and it
prints in binary SI by the name rule above rather than Kueue's fixed list plus configuration.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum
from typing import TypeVar

from flotilla.api.base import Taint
from flotilla.api.quantity import Quantity, QuantityFormat
from flotilla.queue import quota as q
from flotilla.queue.types import (
    AdmissionRecord,
    ClusterQueueSnapshot,
    FlavorResource,
    FlavorSnapshot,
    PodSetAssignment,
    PodSetInfo,
    ResourceGroup,
    WorkloadInfo,
)


class Mode(IntEnum):
    """Kueue's FlavorAssignmentMode, ordered from least to most preferred."""

    NO_FIT = 0
    PREEMPT = 1
    FIT = 3


class PreemptionMode(IntEnum):
    """The assigner's finer mode; NO_CANDIDATES, PREEMPT and RECLAIM all map to Mode.PREEMPT."""

    NO_FIT = 0
    NO_CANDIDATES = 1
    PREEMPT = 2
    RECLAIM = 3
    FIT = 4

    @property
    def mode(self) -> Mode:
        if self is PreemptionMode.FIT:
            return Mode.FIT
        return Mode.NO_FIT if self is PreemptionMode.NO_FIT else Mode.PREEMPT


@dataclass(frozen=True)
class GranularMode:
    preemption: PreemptionMode
    borrow: int  # 0: within the ClusterQueue; higher: the height of the subtree lending the quota


WORST = GranularMode(PreemptionMode.NO_FIT, sys.maxsize)
BEST = GranularMode(PreemptionMode.FIT, 0)

# The preemption oracle: can preempting (or reclaiming) make `quantity` of `fr` fit, and at which
# borrowing level would it then be? Implemented by flotilla.queue.preemption.
Oracle = Callable[[FlavorResource, int], tuple[PreemptionMode, int]]


@dataclass(frozen=True)
class FlavorAssignment:
    flavor: str
    mode: Mode
    borrow: int


@dataclass
class PodSetFlavors:
    """One pod set's outcome: flavors per resource, total requests, and why it is not a plain fit."""

    name: str
    count: int
    requests: dict[str, int]
    flavors: dict[str, FlavorAssignment] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def mode(self) -> Mode:
        if not self.reasons:
            return Mode.FIT
        return min((a.mode for a in self.flavors.values()), default=Mode.NO_FIT)


@dataclass
class Assignment:
    pod_sets: list[PodSetFlavors] = field(default_factory=list)
    borrowing: int = 0  # the highest borrowing level among the chosen flavors
    usage: dict[FlavorResource, int] = field(default_factory=dict)

    @property
    def mode(self) -> Mode:
        """The worst pod set mode; NoFit when no pod set was assigned."""
        return min((ps.mode for ps in self.pod_sets), default=Mode.NO_FIT)

    def message(self) -> str:
        """Kueue's wording: one `couldn't assign flavors to pod set P: reasons` per pod set."""
        parts = [
            f"couldn't assign flavors to pod set {ps.name}: {', '.join(sorted(ps.reasons))}"
            for ps in self.pod_sets
            if ps.reasons
        ]
        return "; ".join(parts)

    def frs_needing_preemption(self) -> set[FlavorResource]:
        return {
            (a.flavor, resource) for ps in self.pod_sets for resource, a in ps.flavors.items() if a.mode is Mode.PREEMPT
        }

    def to_admission(self, cluster_queue: str) -> AdmissionRecord:
        pod_sets = tuple(
            PodSetAssignment(
                name=ps.name,
                flavors={r: a.flavor for r, a in sorted(ps.flavors.items())},
                resource_usage={r: ps.requests[r] for r in sorted(ps.flavors)},
                count=ps.count,
            )
            for ps in self.pod_sets
        )
        return AdmissionRecord(cluster_queue=cluster_queue, pod_sets=pod_sets)


# -- formatting -------------------------------------------------------------------------------
def format_amount(resource: str, milli: int) -> str:
    """A milli-unit amount as a Kubernetes quantity: binary SI for memory-like resources."""
    binary = "memory" in resource or "storage" in resource or resource.startswith("hugepages-")
    fmt = QuantityFormat.BINARY_SI if binary else QuantityFormat.DECIMAL_SI
    return str(Quantity(Decimal(milli) / 1000, fmt))


def format_taint(taint: Taint) -> str:
    """How Go's %s prints a corev1.Taint value: `{key value effect <nil>}`."""
    return f"{{{taint.key} {taint.value or ''} {taint.effect} {taint.timeAdded or '<nil>'}}}"


# -- flavor checks ----------------------------------------------------------------------------
def check_flavor(name: str, flavor: FlavorSnapshot | None, pod_set: PodSetInfo) -> str | None:
    """Why the flavor cannot host the pod set, or None. Taints are checked before labels."""
    if flavor is None:
        return f"flavor {name} not found"
    tolerations = (*pod_set.tolerations, *flavor.tolerations)
    for taint in flavor.node_taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(t.tolerates(taint) for t in tolerations):
            return f"untolerated taint {format_taint(taint)} in flavor {name}"
    for key, value in pod_set.node_selector.items():
        if key in flavor.node_labels and flavor.node_labels[key] != value:
            return f"flavor {name} doesn't match node affinity"
    return None


def is_preferred(a: GranularMode, b: GranularMode, preference: str | None) -> bool:
    """Is mode `a` better than `b`? NoFit is worst, then "no candidates"; then the preference."""
    if a.preemption is PreemptionMode.NO_FIT:
        return False
    if b.preemption is PreemptionMode.NO_FIT:
        return True
    a_none = a.preemption is PreemptionMode.NO_CANDIDATES
    if a_none != (b.preemption is PreemptionMode.NO_CANDIDATES):
        return not a_none
    if preference == "PreemptionOverBorrowing":
        if a.borrow != b.borrow:
            return a.borrow < b.borrow
        return a.preemption > b.preemption
    if a.preemption != b.preemption:
        return a.preemption > b.preemption
    return a.borrow < b.borrow


def should_try_next_flavor(mode: GranularMode, cq: ClusterQueueSnapshot) -> bool:
    if mode.preemption in (PreemptionMode.NO_FIT, PreemptionMode.NO_CANDIDATES):
        return True
    preempts = mode.preemption in (PreemptionMode.PREEMPT, PreemptionMode.RECLAIM)
    if preempts and cq.when_can_preempt == "TryNextFlavor":
        return True
    return mode.borrow != 0 and cq.when_can_borrow == "TryNextFlavor"


# -- the assigner -----------------------------------------------------------------------------
@dataclass
class FlavorAssigner:
    """Assigns flavors for one workload in one ClusterQueue against the current quota tree."""

    workload: WorkloadInfo
    cq: ClusterQueueSnapshot
    tree: q.QuotaTree
    flavors: Mapping[str, FlavorSnapshot]
    oracle: Oracle
    fair_sharing: bool = False

    def assign(self, counts: Sequence[int] | None = None) -> Assignment:
        """Assign all pod sets (at `counts` pods each when given: partial admission)."""
        assignment = Assignment()
        for i, pod_set in enumerate(self.workload.pod_sets):
            count = pod_set.count if counts is None else counts[i]
            result = self._assign_pod_set(pod_set, count, assignment.usage)
            assignment.pod_sets.append(result)
            for resource, a in result.flavors.items():
                fr = (a.flavor, resource)
                assignment.usage[fr] = assignment.usage.get(fr, 0) + result.requests[resource]
                assignment.borrowing = max(assignment.borrowing, a.borrow)
            if result.requests and not result.flavors:
                break
        return assignment

    def _assign_pod_set(self, pod_set: PodSetInfo, count: int, usage: dict[FlavorResource, int]) -> PodSetFlavors:
        requests = {r: per_pod * count for r, per_pod in pod_set.requests.items()}
        if _group_for(self.cq, "pods") is not None:
            requests["pods"] = count * 1000
        result = PodSetFlavors(pod_set.name, count, requests)
        for resource in sorted(requests):
            group = _group_for(self.cq, resource)
            if group is None:
                if requests[resource] == 0:
                    continue
                result.flavors, result.reasons = {}, [f"resource {resource} unavailable in ClusterQueue"]
                return result
            if resource in result.flavors:
                continue
            covered = {r: v for r, v in requests.items() if r in group.covered}
            found, reasons = self._find_flavor(pod_set, group, covered, usage)
            if not found:
                result.flavors, result.reasons = {}, reasons
                return result
            result.flavors.update(found)
            result.reasons.extend(reasons)
        return result

    def _find_flavor(
        self, pod_set: PodSetInfo, group: ResourceGroup, requests: dict[str, int], usage: dict[FlavorResource, int]
    ) -> tuple[dict[str, FlavorAssignment], list[str]]:
        reasons: list[str] = []
        best: dict[str, FlavorAssignment] = {}
        best_mode = WORST
        for name in group.flavors:
            problem = check_flavor(name, self.flavors.get(name), pod_set)
            if problem is not None:
                reasons.append(problem)
                continue
            assignments, mode = self._try_flavor(name, requests, usage, reasons)
            if not should_try_next_flavor(mode, self.cq):
                best, best_mode = assignments, mode
                break
            if is_preferred(mode, best_mode, self.cq.fungibility_preference):
                best, best_mode = assignments, mode
        if best_mode.preemption is PreemptionMode.FIT:
            return best, []
        return best, reasons

    def _try_flavor(
        self, flavor: str, requests: dict[str, int], usage: dict[FlavorResource, int], reasons: list[str]
    ) -> tuple[dict[str, FlavorAssignment], GranularMode]:
        """All resources of a group in one flavor; the flavor's mode is the least preferred one."""
        assignments: dict[str, FlavorAssignment] = {}
        representative = BEST
        for resource in sorted(requests):
            fr = (flavor, resource)
            mode, borrow, reason = self._fits_resource_quota(fr, usage.get(fr, 0), requests[resource])
            if reason:
                reasons.append(reason)
            candidate = GranularMode(mode, borrow)
            if is_preferred(representative, candidate, self.cq.fungibility_preference):
                representative = candidate
            if representative.preemption is PreemptionMode.NO_FIT:
                continue
            assignments[resource] = FlavorAssignment(flavor, mode.mode, borrow)
        return assignments, representative

    def _fits_resource_quota(self, fr: FlavorResource, assumed: int, request: int) -> tuple[PreemptionMode, int, str]:
        node = self.tree.cqs[self.cq.name]
        flavor, resource = fr
        value = assumed + request
        maximum = q.potential_available(node, fr)
        if value > maximum:
            return (
                PreemptionMode.NO_FIT,
                0,
                f"insufficient quota for {resource} in flavor {flavor}, previously considered podsets requests "
                f"({format_amount(resource, assumed)}) + current podset request ({format_amount(resource, request)})"
                f" > maximum capacity ({format_amount(resource, maximum)})",
            )
        borrow, may_reclaim = q.lowest_subtree_that_fits(node, fr, value)
        free = q.cq_available(node, fr)
        if value <= free:
            return PreemptionMode.FIT, borrow, ""
        reason = (
            f"insufficient unused quota for {resource} in flavor {flavor}, "
            f"{format_amount(resource, value - free)} more needed"
        )
        if node.quota(fr).nominal >= value or may_reclaim or self._can_preempt_while_borrowing():
            mode, borrow_after = self.oracle(fr, value)
            return mode, borrow_after, reason
        return PreemptionMode.NO_FIT, borrow, reason

    def _can_preempt_while_borrowing(self) -> bool:
        policy = self.cq.preemption
        return policy.borrow_within_cohort != "Never" or (self.fair_sharing and policy.reclaim_within_cohort != "Never")


def _group_for(cq: ClusterQueueSnapshot, resource: str) -> ResourceGroup | None:
    return next((g for g in cq.resource_groups if resource in g.covered), None)


# -- partial admission ------------------------------------------------------------------------
R = TypeVar("R")


def can_be_partially_admitted(workload: WorkloadInfo) -> bool:
    return any(ps.min_count is not None and ps.min_count < ps.count for ps in workload.pod_sets)


def search_partial_counts(workload: WorkloadInfo, fits: Callable[[list[int]], R | None]) -> R | None:
    """Kueue's PodSetReducer: binary search over i in [0, total delta] for the first counts
    `count_j - delta_j * i // total` (delta_j = count_j - minCount_j) that `fits`; returns what
    `fits` returned for the best counts, or None. Like Kueue, assumes fitting is monotone."""
    full = [ps.count for ps in workload.pod_sets]
    deltas = [ps.count - (ps.min_count if ps.min_count is not None else ps.count) for ps in workload.pod_sets]
    total = sum(deltas)
    if total == 0:
        return None
    last_good: tuple[int, R] | None = None
    low, high = 0, total + 1  # Go's sort.Search over [0, total]
    while low < high:
        mid = (low + high) // 2
        result = fits([c - d * mid // total for c, d in zip(full, deltas, strict=True)])
        if result is None:
            low = mid + 1
        else:
            last_good, high = (mid, result), mid
    return last_good[1] if last_good is not None and last_good[0] == low else None
