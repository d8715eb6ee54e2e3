"""The controller's scheduling cycles: build the policy's snapshot from the indexes, call the
policy, carry out its decisions (admit, evict, preempt, record why a workload waits, park).

A mixin of `QueueController` (controller.py), which owns the state it reads and the writes.
"""

from __future__ import annotations

import random
from typing import Any

from flotilla.queue import jobs
from flotilla.queue import workloads as wls
from flotilla.queue.build import ApiObjects, QueueSnapshots, cohort_root, is_candidate, local_queue_snapshots
from flotilla.queue.driver import Park, PassReport, Policy
from flotilla.queue.fairsharing import entry_penalty
from flotilla.queue.index import WorkloadIndex
from flotilla.queue.metrics import QueueMetrics
from flotilla.queue.types import AdmissionRecord, CycleContext, QueueConfig, Snapshot

JSON = dict[str, Any]


class CycleRunner:
    config: QueueConfig
    metrics: QueueMetrics
    _objs: ApiObjects
    _index: WorkloadIndex
    _queues: QueueSnapshots | None
    _policy: Policy | None
    _rng: random.Random
    _penalties: dict[str, dict[str, float]]

    def _write(self, write: jobs.Write, report: PassReport) -> JSON | None:
        raise NotImplementedError

    def _cohort_root(self, cq: str) -> str:
        return cohort_root(cq, self._objs)

    def _snapshot(self, heads: list[str]) -> Snapshot:
        """What the policy needs: the quota holders and the heads (the queues from the cache)."""
        assert self._queues is not None
        workloads = self._index.holding()
        workloads.update((k, self._index.info(k)) for k in heads)
        q = self._queues
        return Snapshot(
            cluster_queues=q.cluster_queues,
            cohorts=q.cohorts,
            flavors=q.flavors,
            local_queues=local_queue_snapshots(self._objs, self._penalties),
            workloads=workloads,
            namespace_labels=q.namespace_labels,
        )

    def _blocked(self) -> bool:
        """waitForPodsReady.blockAdmission: an admitted workload is not PodsReady yet."""
        cfg = self.config.waitForPodsReady
        if not (cfg.enable and cfg.blockAdmission):
            return False
        workloads = self._objs.workloads
        held = (workloads[k] for queue in self._index.holders.values() for k in queue)
        return any(not wls.is_true(w, wls.PODS_READY) for w in held)

    def _cycle(self, now: float, report: PassReport) -> bool:
        """One scheduling cycle; True if it changed what the next cycle would see."""
        assert self._queues is not None
        open_queues = sorted(q for q, ok in self._queues.open_queues.items() if ok)
        heads = self._index.heads(now, open_queues)
        if self._policy is None or not heads:
            return False
        snapshot = self._snapshot(heads)
        result = self._policy(snapshot, CycleContext(now=now, rng=self._rng, config=self.config))
        progressed = False
        for p in result.preempted:
            preemption = (p.preemptor, p.reason)
            progressed |= self._evict(p.victim, wls.EVICTED_BY_PREEMPTION, p.message, now, report, preemption)
        for e in result.evicted:
            progressed |= self._evict(e.workload, e.reason, e.message, now, report)
        blocked = self._blocked()
        for a in result.admitted:
            wl = self._objs.workloads.get(a.workload)
            if wl is None or not is_candidate(wl, self._objs):
                continue
            body = wls.copy_json(wl)
            if blocked:
                wls.unset_quota_reservation(body, wls.WAITING, wls.MSG_WAITING_PODS_READY, now)
                self._write(jobs.Write("status", "Workload", body), report)
                continue
            wls.set_quota_reservation(body, wls.admission_json(a.admission), now)
            if self._write(jobs.Write("status", "Workload", body), report) is not None:
                self._admitted(wl, a.admission, now, report)
                progressed = True
                blocked = self._blocked()
        for d in result.pending:
            wl = self._objs.workloads.get(d.workload)
            if wl is None or not is_candidate(wl, self._objs) or wls.requeue_at(wl) > now:
                continue  # gone, admitted, or backing off (keeping its eviction's message)
            body = wls.copy_json(wl)
            if wls.unset_quota_reservation(body, wls.PENDING, d.message, now):
                self._write(jobs.Write("status", "Workload", body), report)
            report.pending.append(d.workload)
            if d.requeue == "immediate":
                self._index.unpark(d.workload)
            elif not self._index.is_parked(d.workload):
                # Kueue's SchedulingEquivalenceHashing: what is equivalent cannot fit either.
                timed = d.requeue == "on-capacity"
                self._index.park(d.workload, Park(now, timed), with_equivalents=timed)
                progressed = True
        return progressed

    def _admitted(self, wl: JSON, admission: AdmissionRecord, now: float, report: PassReport) -> None:
        cq = admission.cluster_queue
        self.metrics.quota_reserved.labels(cq).inc()
        self.metrics.admitted.labels(cq).inc()
        self.metrics.admission_wait.labels(cq).observe(max(0.0, now - wls.queued_since(wl)))
        self._index.unpark(wls.key(wl))
        report.admitted.append(wls.key(wl))
        if self.config.admissionFairSharing is not None:  # Kueue's entry penalty, until the next sample
            usage: dict[str, int] = {}
            for ps in admission.pod_sets:
                for r, v in ps.resource_usage.items():
                    usage[r] = usage.get(r, 0) + v
            penalty = self._penalties.setdefault(f"{wl['metadata']['namespace']}/{wl['spec'].get('queueName')}", {})
            for r, extra in entry_penalty(usage, self.config.admissionFairSharing).items():
                penalty[r] = penalty.get(r, 0.0) + extra

    def _evict(
        self,
        key: str,
        reason: str,
        message: str,
        now: float,
        report: PassReport,
        preemption: tuple[str, str] | None = None,
    ) -> bool:
        """Evicted (and, for a preemption, Preempted) on an admitted workload; the job reconciler
        then stops its Job and releases the quota."""
        wl = self._objs.workloads.get(key)
        if wl is None or not wls.holds_quota(wl) or wls.is_evicted(wl):
            return False
        body = wls.copy_json(wl)
        wls.set_evicted(body, reason, message, now)
        if preemption is not None:
            wls.set_preempted(body, preemption[1], message, now)
        if self._write(jobs.Write("status", "Workload", body), report) is None:
            return False
        self.metrics.evicted.labels(wl["status"]["admission"]["clusterQueue"], reason).inc()
        if preemption is not None:
            by = self._objs.workloads.get(preemption[0])
            preempting = self._objs.cluster_queue_name_of(by) if by is not None else None
            self.metrics.preempted.labels(preempting or "", preemption[1]).inc()
            report.preempted.append(key)
        return True
