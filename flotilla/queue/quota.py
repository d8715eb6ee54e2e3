"""The quota tree: ClusterQueues and Cohorts as nodes, with Kueue's quota arithmetic.

Kueue's `pkg/cache/scheduler/resource_node.go`, written for Flotilla. Every node (ClusterQueue or
Cohort) holds, per FlavorResource `fr` (amounts in milli-units):

- `quotas[fr]`: nominal, borrowingLimit, lendingLimit as declared on the node (Cohorts may
  declare their own quota; an implicit Cohort - one named by a ClusterQueue or Cohort but
  without a Cohort object - has none).
- `subtree_quota[fr]`: for a ClusterQueue its nominal quota; for a Cohort its own nominal plus,
  for each child, `child.subtree_quota - guaranteed(child)` (what the child can lend).
- `guaranteed(fr)` (Kueue's localQuota) `= max(0, subtree_quota - lendingLimit)` when a lending
  limit is set, else 0: capacity the parent never sees.
- `usage[fr]`: for a ClusterQueue the sum of its admitted workloads; for a Cohort the sum over
  its children of `max(0, child.usage - guaranteed(child))`.

Formulas (`available` may go negative after over-admission; `cq_available` clamps at 0):

    local_available(n)     = max(0, guaranteed(n) - usage(n))
    available(root)        = subtree_quota - usage
    available(n)           = local_available(n) + min(available(parent),
                               subtree_quota - guaranteed - max(0, usage - guaranteed) + borrowingLimit)
                             (the min only when n has a borrowingLimit)
    potential_available(n) = like available with zero usage: guaranteed + potential(parent),
                             capped at subtree_quota + borrowingLimit
    borrowing_with(cq, v)  = usage + v > nominal          (Cohort: usage + v > subtree_quota)

Usage changes propagate upward incrementally (`add_usage`/`remove_usage`), so "what if" questions
(preemption simulation, fit checks) remove or add one workload and put it back afterwards.

Differences from Kueue: children are visited in name order (Kueue iterates maps); a Cohort cycle
makes the ClusterQueues below it inactive, and the cycle's Cohorts are treated as roots.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from flotilla.queue.types import FlavorResource, ResourceQuota, Snapshot, WorkloadInfo

Usage = dict[FlavorResource, int]
_NO_QUOTA = ResourceQuota(nominal=0)


@dataclass(eq=False)
class QuotaNode:
    """A ClusterQueue or Cohort in the working copy; identity comparison, mutable usage."""

    name: str
    is_cluster_queue: bool
    quotas: dict[FlavorResource, ResourceQuota]
    fair_weight: float = 1.0
    active: bool = True  # ClusterQueues only: inactive ones count in their Cohort but admit nothing
    in_cycle: bool = False  # Cohorts only: part of (or below) a parent cycle
    parent: QuotaNode | None = None
    child_cqs: list[QuotaNode] = field(default_factory=list)
    child_cohorts: list[QuotaNode] = field(default_factory=list)
    subtree_quota: Usage = field(default_factory=dict)
    usage: Usage = field(default_factory=dict)

    def quota(self, fr: FlavorResource) -> ResourceQuota:
        return self.quotas.get(fr, _NO_QUOTA)

    def ancestors(self) -> Iterator[QuotaNode]:
        """Parent first, root last (Kueue's PathParentToRoot)."""
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def root(self) -> QuotaNode:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def path(self) -> str:
        """`/root/.../name`, as Kueue prints preemptor and preemptee paths."""
        names = [self.name, *(a.name for a in self.ancestors())]
        return "/" + "/".join(reversed(names))


# -- formulas ---------------------------------------------------------------------------------
def guaranteed(node: QuotaNode, fr: FlavorResource) -> int:
    lending = node.quota(fr).lending_limit
    return max(0, node.subtree_quota.get(fr, 0) - lending) if lending is not None else 0


def local_available(node: QuotaNode, fr: FlavorResource) -> int:
    return max(0, guaranteed(node, fr) - node.usage.get(fr, 0))


def available(node: QuotaNode, fr: FlavorResource) -> int:
    """Unused capacity reachable from `node`, unclamped (negative when over-admitted)."""
    if node.parent is None:
        return node.subtree_quota.get(fr, 0) - node.usage.get(fr, 0)
    from_parent = available(node.parent, fr)
    limit = node.quota(fr).borrowing_limit
    if limit is not None:
        local = guaranteed(node, fr)
        stored_in_parent = node.subtree_quota.get(fr, 0) - local
        used_in_parent = max(0, node.usage.get(fr, 0) - local)
        from_parent = min(stored_in_parent - used_in_parent + limit, from_parent)
    return local_available(node, fr) + from_parent


def cq_available(node: QuotaNode, fr: FlavorResource) -> int:
    """Kueue's ClusterQueueSnapshot.Available: 0 when the queue or its cohort is in debt."""
    return max(0, available(node, fr))


def potential_available(node: QuotaNode, fr: FlavorResource) -> int:
    """The largest amount `node` could ever hold if nothing else used quota."""
    if node.parent is None:
        return node.subtree_quota.get(fr, 0)
    result = guaranteed(node, fr) + potential_available(node.parent, fr)
    limit = node.quota(fr).borrowing_limit
    if limit is not None:
        result = min(node.subtree_quota.get(fr, 0) + limit, result)
    return result


def borrowing_with(node: QuotaNode, fr: FlavorResource, value: int) -> bool:
    """Would `value` more push the node over its nominal (ClusterQueue) or subtree (Cohort) quota?"""
    bound = node.quota(fr).nominal if node.is_cluster_queue else node.subtree_quota.get(fr, 0)
    return node.usage.get(fr, 0) + value > bound


def is_borrowing(node: QuotaNode, fr: FlavorResource) -> bool:
    return borrowing_with(node, fr, 0)


def within_nominal(node: QuotaNode, frs: Iterable[FlavorResource]) -> bool:
    """Kueue's IsWithinNominalInResources: usage <= subtree quota for every fr."""
    return all(node.usage.get(fr, 0) <= node.subtree_quota.get(fr, 0) for fr in frs)


def fits_in_quota(node: QuotaNode, requests: Mapping[FlavorResource, int]) -> tuple[bool, Usage]:
    """Kueue's QuantitiesFitInQuota: do `requests` fit under the node's subtree quota, and what
    remains for the parent once the node's unused guaranteed quota is spent."""
    fits = all(node.usage.get(fr, 0) + v <= node.subtree_quota.get(fr, 0) for fr, v in requests.items())
    return fits, {fr: max(0, v - local_available(node, fr)) for fr, v in requests.items()}


def node_height(node: QuotaNode) -> int:
    """Distance to the furthest leaf; a Cohort with only ClusterQueues below it has height 1."""
    height = min(len(node.child_cqs) + len(node.child_cohorts), 1)
    for child in node.child_cohorts:
        height = max(height, node_height(child) + 1)
    return height


def lowest_subtree_that_fits(cq: QuotaNode, fr: FlavorResource, value: int) -> tuple[int, bool]:
    """Kueue's FindHeightOfLowestSubtreeThatFits: (borrowing level, whether that subtree is smaller
    than the whole tree). Level 0 means the ClusterQueue's own nominal quota suffices."""
    if not borrowing_with(cq, fr, value) or cq.parent is None:
        return 0, cq.parent is not None
    remaining = value - local_available(cq, fr)
    for node in cq.ancestors():
        if not borrowing_with(node, fr, remaining):
            return node_height(node), node.parent is not None
        remaining -= local_available(node, fr)
    return node_height(cq.root()), False


def add_usage(node: QuotaNode, fr: FlavorResource, value: int) -> None:
    """Add usage and bubble up the part above the node's unused guaranteed quota."""
    free_local = local_available(node, fr)
    node.usage[fr] = node.usage.get(fr, 0) + value
    if node.parent is not None and value > free_local:
        add_usage(node.parent, fr, value - free_local)


def remove_usage(node: QuotaNode, fr: FlavorResource, value: int) -> None:
    """Remove usage, and the part of it that was stored in the parent."""
    stored_in_parent = node.usage.get(fr, 0) - guaranteed(node, fr)
    node.usage[fr] = node.usage.get(fr, 0) - value
    if stored_in_parent > 0 and node.parent is not None:
        remove_usage(node.parent, fr, min(value, stored_in_parent))


def workload_usage(info: WorkloadInfo) -> Usage:
    """FlavorResource totals of an admitted workload (empty when not admitted)."""
    return {} if info.admission is None else dict(info.admission.usage)


# -- the tree ---------------------------------------------------------------------------------
class QuotaTree:
    """A mutable working copy of the snapshot's quota tree and admitted workloads.

    The policy changes it (adds this cycle's admissions, simulates removals) and always restores
    simulated changes; the `Snapshot` itself is never touched.
    """

    def __init__(self, cqs: dict[str, QuotaNode], cohorts: dict[str, QuotaNode]) -> None:
        self.cqs = cqs
        self.cohorts = cohorts
        self.workloads: dict[str, dict[str, WorkloadInfo]] = {name: {} for name in cqs}

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> QuotaTree:
        cohorts = _build_cohorts(snapshot)
        cqs: dict[str, QuotaNode] = {}
        for name in sorted(snapshot.cluster_queues):
            cq = snapshot.cluster_queues[name]
            node = QuotaNode(name, True, dict(cq.quotas), cq.fair_weight)
            node.active = cq.inactive_reason is None and cq.stop_policy == "None"
            parent = cohorts.get(cq.cohort) if cq.cohort else None
            if parent is not None and parent.in_cycle:
                node.active = False
            elif parent is not None:
                node.parent = parent
                parent.child_cqs.append(node)
            cqs[name] = node
        for root in (c for c in cohorts.values() if c.parent is None):
            _accumulate_quota(root)
        for node in cqs.values():
            if node.parent is None:
                _accumulate_quota(node)
        tree = cls(cqs, cohorts)
        if snapshot.admitted_by_queue is not None and snapshot.usage_by_queue is not None:
            # the driver's own per-queue sets and totals (see Snapshot): no pass over the workloads
            for queue, admitted in snapshot.admitted_by_queue.items():
                if queue in cqs:
                    tree.workloads[queue] = dict(admitted)
            for queue, usage in snapshot.usage_by_queue.items():
                if queue in cqs and usage:
                    tree.add_usage(queue, usage)
            return tree
        # Sum each queue's usage first and propagate it once: the same totals as adding the
        # workloads one by one, at a cost per queue rather than per workload.
        totals: dict[str, dict[FlavorResource, int]] = {}
        for key, info in snapshot.workloads.items():  # readers of tree.workloads sort the keys
            if info.admission is not None and info.admission.cluster_queue in cqs:
                queue = info.admission.cluster_queue
                tree.workloads[queue][key] = info
                total = totals.setdefault(queue, {})
                for fr, value in tree.usage_of(info).items():
                    total[fr] = total.get(fr, 0) + value
        for queue, total in totals.items():
            tree.add_usage(queue, total)
        return tree

    def usage_of(self, info: WorkloadInfo) -> Usage:
        """The workload's admitted usage (empty when not admitted). Read-only."""
        return {} if info.admission is None else info.admission.usage

    def add_usage(self, cq: str, usage: Mapping[FlavorResource, int]) -> None:
        for fr, value in usage.items():
            add_usage(self.cqs[cq], fr, value)

    def remove_usage(self, cq: str, usage: Mapping[FlavorResource, int]) -> None:
        for fr, value in usage.items():
            remove_usage(self.cqs[cq], fr, value)

    def add_workload(self, info: WorkloadInfo) -> None:
        assert info.admission is not None
        cq = info.admission.cluster_queue
        self.workloads[cq][info.key] = info
        self.add_usage(cq, self.usage_of(info))

    def remove_workload(self, info: WorkloadInfo) -> None:
        assert info.admission is not None
        cq = info.admission.cluster_queue
        del self.workloads[cq][info.key]
        self.remove_usage(cq, self.usage_of(info))

    @contextmanager
    def with_usage(self, cq: str, usage: Mapping[FlavorResource, int]) -> Iterator[None]:
        """Temporarily add usage to a ClusterQueue (Kueue's SimulateUsageAddition)."""
        self.add_usage(cq, usage)
        try:
            yield
        finally:
            self.remove_usage(cq, usage)

    @contextmanager
    def without_usage(self, cq: str, usage: Mapping[FlavorResource, int]) -> Iterator[None]:
        """Temporarily remove usage from a ClusterQueue (Kueue's SimulateUsageRemoval)."""
        self.remove_usage(cq, usage)
        try:
            yield
        finally:
            self.add_usage(cq, usage)

    @contextmanager
    def without_usage_of(self, workloads: Iterable[WorkloadInfo]) -> Iterator[None]:
        """Temporarily remove the usage of admitted workloads (Kueue's SimulateWorkloadRemoval)."""
        removed = [(w.admission.cluster_queue, self.usage_of(w)) for w in workloads if w.admission is not None]
        for cq, usage in removed:
            self.remove_usage(cq, usage)
        try:
            yield
        finally:
            for cq, usage in removed:
                self.add_usage(cq, usage)

    def fits(self, cq: str, usage: Mapping[FlavorResource, int]) -> bool:
        """Kueue's ClusterQueueSnapshot.Fits: every amount within what is available now."""
        node = self.cqs[cq]
        return all(cq_available(node, fr) >= value for fr, value in usage.items())

    def subtree_cluster_queues(self, node: QuotaNode) -> list[QuotaNode]:
        """Active ClusterQueues below a Cohort (the ones Kueue's snapshot holds)."""
        found = [cq for cq in node.child_cqs if cq.active]
        for child in node.child_cohorts:
            found.extend(self.subtree_cluster_queues(child))
        return found


def _build_cohorts(snapshot: Snapshot) -> dict[str, QuotaNode]:
    names = set(snapshot.cohorts)
    names.update(c.parent for c in snapshot.cohorts.values() if c.parent)
    names.update(cq.cohort for cq in snapshot.cluster_queues.values() if cq.cohort)
    cohorts: dict[str, QuotaNode] = {}
    for name in sorted(names):
        spec = snapshot.cohorts.get(name)
        quotas = dict(spec.quotas) if spec else {}
        cohorts[name] = QuotaNode(name, False, quotas, spec.fair_weight if spec else 1.0)
    for name in sorted(snapshot.cohorts):
        parent_name = snapshot.cohorts[name].parent
        if parent_name:
            cohorts[name].parent = cohorts[parent_name]
    for node in [n for n in cohorts.values() if _in_cycle(n)]:
        node.in_cycle = True
    for node in cohorts.values():
        if node.in_cycle:
            node.parent = None  # Kueue leaves cohorts in a cycle out of the snapshot
    for node in cohorts.values():
        if node.parent is not None:
            node.parent.child_cohorts.append(node)
    return cohorts


def _in_cycle(node: QuotaNode) -> bool:
    seen: set[int] = set()
    current: QuotaNode | None = node
    while current is not None:
        if id(current) in seen:
            return True
        seen.add(id(current))
        current = current.parent
    return False


def _accumulate_quota(node: QuotaNode) -> None:
    node.subtree_quota = {fr: q.nominal for fr, q in node.quotas.items()}
    for child in [*node.child_cohorts, *node.child_cqs]:
        _accumulate_quota(child)
        for fr, value in child.subtree_quota.items():
            node.subtree_quota[fr] = node.subtree_quota.get(fr, 0) + value - guaranteed(child, fr)
