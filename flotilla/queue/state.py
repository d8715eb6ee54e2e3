"""What one scheduling cycle works on: the immutable snapshot, the context, and a working quota tree.

The tree starts as a copy of the snapshot's quota and admitted usage; the cycle adds the usage of
what it admits or reserves, and simulations remove and restore workloads on it. The snapshot is
never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from flotilla.queue.quota import QuotaNode, QuotaTree
from flotilla.queue.types import ClusterQueueSnapshot, CycleContext, Snapshot, WorkloadInfo


@dataclass
class CycleState:
    snapshot: Snapshot
    ctx: CycleContext
    tree: QuotaTree

    @classmethod
    def start(cls, snapshot: Snapshot, ctx: CycleContext) -> CycleState:
        return cls(snapshot, ctx, QuotaTree.from_snapshot(snapshot))

    @property
    def fair_sharing(self) -> bool:
        return self.ctx.config.fairSharing.enable

    def cq(self, name: str) -> ClusterQueueSnapshot:
        return self.snapshot.cluster_queues[name]

    def node(self, name: str) -> QuotaNode:
        return self.tree.cqs[name]

    def cluster_queue_of(self, workload: WorkloadInfo) -> str | None:
        """The ClusterQueue that holds (admitted) or would hold (pending) the workload."""
        if workload.admission is not None:
            return workload.admission.cluster_queue
        lq = self.snapshot.local_queues.get(workload.local_queue_key)
        return lq.cluster_queue if lq is not None else None

    def uses_admission_fair_sharing(self, cq: str) -> bool:
        """Kueue: the Configuration enables it and the ClusterQueue's admissionScope asks for it."""
        spec = self.snapshot.cluster_queues.get(cq)
        return self.ctx.config.admissionFairSharing is not None and spec is not None and spec.admission_fair_sharing

    def local_queue_usage(self, workload: WorkloadInfo) -> float | None:
        """Admission fair sharing: the LocalQueue's decayed usage over its weight (sum over
        resources, each weighted 1); None when the workload's ClusterQueue does not use it."""
        cq = self.cluster_queue_of(workload)
        if cq is None or not self.uses_admission_fair_sharing(cq):
            return None
        lq = self.snapshot.local_queues.get(workload.local_queue_key)
        if lq is None:
            return 0.0
        total = sum(lq.usage[r] for r in sorted(lq.usage))
        return total / lq.fair_weight if lq.fair_weight > 0 else float("inf") if total > 0 else 0.0
