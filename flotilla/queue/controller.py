"""The embedded Kueue driver: reconcile Jobs and Workloads, run the admission policy, write results.

One pass (`run_once`) reads every object admission cares about, then, as Kueue's controllers do:
reconciles Jobs (suspend, create Workloads, start admitted ones, stop evicted ones) and Workloads
(deactivation, backoff, stopped queues, PodsReady timeouts); notices capacity events (quota
released, queues, cohorts or flavors changed) that unpark BestEffortFIFO workloads; runs
scheduling cycles `policy(snapshot, ctx)` while some workload can be considered and the last cycle
changed something (the policy offers one head per ClusterQueue a cycle), carrying out each
cycle's decisions and reconciling after it (start the admitted, stop the evicted); and writes
ClusterQueue and LocalQueue status. A write that would change nothing is skipped, so a settled system makes no
writes and the background loop sleeps until the store changes or a deadline (a backoff, a
PodsReady timeout, a parked retry, a fair-sharing sample) comes.

`start()` runs passes on a thread, woken by the store's watch (debounced). Tests and the
simulator call `run_once()` with an injected clock instead.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from flotilla.api.errors import ManifestErrors
from flotilla.queue import jobs
from flotilla.queue import workloads as wls
from flotilla.queue.build import (
    ApiObjects,
    CapacityState,
    InfoCache,
    build_snapshot,
    capacity_events,
    capacity_state,
    cohort_root,
    is_candidate,
)
from flotilla.queue.driver import KINDS, MAX_CYCLES, Park, PassReport, Policy, World, default_policy, log
from flotilla.queue.fairsharing import entry_penalty
from flotilla.queue.metrics import QueueMetrics
from flotilla.queue.status import QueueView, queue_statuses, queue_view, reconcile_workload
from flotilla.queue.types import AdmissionRecord, CycleContext, QueueConfig
from flotilla.server.resources import ResourceService, resource_type
from flotilla.store import AlreadyExists, Conflict, Gone, NotFound, Watch

JSON = dict[str, Any]
__all__ = ["Policy", "QueueController"]


class QueueController:
    """Kueue semantics on the embedded control plane (see the module docstring).

    Creating it installs the Job hook on `service`: managed Jobs are suspended when created."""

    def __init__(
        self,
        service: ResourceService,
        config: QueueConfig | None = None,
        clock: Callable[[], float] = time.time,
        policy: Policy | None = None,
        *,
        rng: random.Random | None = None,
        metrics: QueueMetrics | None = None,
        debounce: float = 0.05,
    ) -> None:
        self.config = config or QueueConfig()
        self.metrics = metrics or QueueMetrics()
        self._service = service
        self._store = service.store
        self._clock = clock
        self._policy = policy
        self._rng = rng or random.Random()
        self._debounce = debounce
        self._types = {k: resource_type(service.registry.resolve(plural)) for k, plural in KINDS.items()}
        self._parked: dict[str, Park] = {}
        self._capacity: CapacityState | None = None
        self._penalties: dict[str, dict[str, float]] = {}  # admission fair sharing, until the next sample
        self._view: tuple[QueueView, ApiObjects] | None = None
        self._next_wakeup: float | None = None
        self._retry = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Watch | None = None
        self.metrics.follow(lambda: self._view)
        service.add_hook(jobs.JobDefaulter(self.config, self._local_queue_exists))

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> QueueController:
        """Run passes on a background thread until `stop()`."""
        if self._policy is None:
            self._policy = default_policy()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="flotilla-queue", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the background thread (a pass under way finishes first)."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.close()  # wakes the loop within the store's poll interval
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    @property
    def parked(self) -> frozenset[str]:
        """Workloads set aside until a capacity event ("namespace/name")."""
        return frozenset(self._parked)

    @property
    def next_wakeup(self) -> float | None:
        """When a pass is due even if nothing changes (clock seconds), if ever."""
        return self._next_wakeup

    def _local_queue_exists(self, namespace: str, name: str) -> bool:
        try:
            self._store.get(self._types["LocalQueue"], name, namespace)
        except NotFound:
            return False
        return True

    # -- one pass ----------------------------------------------------------------------------------
    def run_once(self) -> PassReport:
        """Reconcile everything and run scheduling cycles until they change nothing; report what happened."""
        with self._lock:
            if self._policy is None:
                self._policy = default_policy()
            now = self._clock()
            report = PassReport()
            self._retry = False
            world = World({k: self._store.list(rt)[0] for k, rt in self._types.items()})
            self._infos: InfoCache = {}  # WorkloadInfos by resourceVersion, for this pass's cycles
            wakes: list[float] = []
            self._reconcile(world, now, report, wakes)
            self._unpark(world.objs(), now)
            # The policy offers one head per ClusterQueue a cycle: cycle while heads change (one
            # was admitted, parked or made room by preempting), reconciling in between.
            for _ in range(MAX_CYCLES):
                touched: set[str] = set()
                progressed = self._cycle(world, now, report, touched)
                self._reconcile(world, now, report, wakes, touched)
                if not progressed:
                    break
            self._queue_statuses(world, now, report, wakes)
            retry = self.config.inadmissibleRetrySeconds
            wakes += [p.since + retry for p in self._parked.values() if p.timed]
            self._next_wakeup = now if self._retry else min(wakes, default=None)
            report.next_wakeup = self._next_wakeup
            return report

    def _write(self, world: World, write: jobs.Write, report: PassReport) -> JSON | None:
        """Carry out one write; on a conflict (someone changed the object) the next pass retries."""
        rt, obj = self._types[write.kind], write.obj
        meta = obj["metadata"]
        try:
            if write.op == "create":
                _, obj = self._service.validate(obj)  # the Workloads Flotilla makes are validated too
                saved = self._store.create(rt, obj)
            elif write.op == "update":
                saved = self._store.update(rt, obj)
            elif write.op == "status":
                current = world.current(write.kind, obj) or obj
                saved = self._store.update_status(rt, {**current, "status": obj.get("status") or {}})
            else:
                self._store.delete(rt, meta["name"], meta.get("namespace"))
                world.remove(write.kind, obj)
                report.writes += 1
                return None
        except (Conflict, NotFound, AlreadyExists) as exc:
            log.debug("%s %s %s: %s (retrying)", write.op, write.kind, meta.get("name"), exc)
            report.conflicts += 1
            self._retry = True
            return None
        except ManifestErrors as exc:
            log.error("cannot create %s %s: %s", write.kind, wls.key(obj), exc)
            return None
        before = world.current(write.kind, saved)
        if before is None or before["metadata"].get("resourceVersion") != saved["metadata"].get("resourceVersion"):
            report.writes += 1
        world.put(write.kind, saved)
        return saved

    # -- reconcilers ---------------------------------------------------------------------------------
    def _reconcile(
        self, world: World, now: float, report: PassReport, wakes: list[float], only: set[str] | None = None
    ) -> None:
        """Jobs, then Workloads and Jobs again while that changes something (a released workload
        may now be Inadmissible, an evicted one's Job must stop), at most three rounds. `only`:
        the workloads ("namespace/name") a cycle touched, and their Jobs; None for all."""
        self._reconcile_jobs(world, now, report, only)
        for _ in range(3):
            writes = report.writes
            objs = world.objs()
            keys = list(objs.workloads) if only is None else [k for k in only if k in objs.workloads]
            for k in keys:
                self._reconcile_workload(world, objs.workloads[k], objs, now, report, wakes)
            self._reconcile_jobs(world, now, report, only)
            if report.writes == writes:
                return

    def _reconcile_workload(
        self, world: World, wl: JSON, objs: ApiObjects, now: float, report: PassReport, wakes: list[float]
    ) -> None:
        result = reconcile_workload(wl, objs.queue_context(wl), self.config, now)
        body = result.workload
        if jobs.owner_uid(body) is None and wls.is_evicted(body) and wls.has_quota_reservation(body):
            result.status_changed |= wls.release_after_eviction(body, now)  # no Job to stop first
        if result.spec_changed:
            self._write(world, jobs.Write("update", "Workload", body), report)
        if result.status_changed:
            self._write(world, jobs.Write("status", "Workload", body), report)
        if result.evicted is not None:
            self.metrics.evicted.labels(*result.evicted).inc()
        if result.wake_at is not None:
            wakes.append(result.wake_at)

    def _reconcile_jobs(self, world: World, now: float, report: PassReport, only: set[str] | None) -> None:
        objs = world.objs()
        ctx = jobs.JobContext(self.config, now, objs.flavors, objs.priority_classes)
        if only is None:
            all_jobs, workloads = list(world.by_kind["Job"].values()), list(objs.workloads.values())
        else:
            workloads = [objs.workloads[k] for k in only if k in objs.workloads]
            owners = (world.job_by_uid(w["metadata"]["namespace"], jobs.owner_uid(w)) for w in workloads)
            all_jobs = [j for j in owners if j is not None]
        for write in jobs.plan(all_jobs, workloads, ctx, delete_orphans=only is None):
            self._write(world, write, report)

    # -- parking -------------------------------------------------------------------------------------
    def _unpark(self, objs: ApiObjects, now: float) -> None:
        """Requeue parked workloads whose cohort tree saw a capacity event, whose spec changed, or
        whose timed retry (inadmissibleRetrySeconds) is due."""
        state = capacity_state(objs)
        roots = capacity_events(self._capacity, state, objs)
        self._capacity = state
        for k, park in list(self._parked.items()):
            wl = objs.workloads.get(k)
            cq = objs.cluster_queue_name_of(wl) if wl is not None else None
            if (
                wl is None
                or roots is None
                or wl["metadata"].get("generation", 0) != park.generation
                or (cq is not None and cohort_root(cq, objs) in roots)
                or (park.timed and now >= park.since + self.config.inadmissibleRetrySeconds)
            ):
                del self._parked[k]

    # -- the scheduling cycle --------------------------------------------------------------------------
    def _blocked(self, objs: ApiObjects) -> bool:
        """waitForPodsReady.blockAdmission: an admitted workload is not PodsReady yet."""
        cfg = self.config.waitForPodsReady
        return (
            cfg.enable
            and cfg.blockAdmission
            and any(wls.holds_quota(w) and not wls.is_true(w, wls.PODS_READY) for w in objs.workloads.values())
        )

    def _cycle(self, world: World, now: float, report: PassReport, touched: set[str]) -> bool:
        """One scheduling cycle; True if it changed what the next cycle would see. The workloads
        it wrote go to `touched`."""
        objs = world.objs()
        snapshot = build_snapshot(objs, self.config, frozenset(self._parked), self._penalties, self._infos)
        waiting = (w for w in snapshot.workloads.values() if w.admission is None)
        if self._policy is None or not any(not w.parked and w.eligible_at <= now for w in waiting):
            return False
        progressed = False
        result = self._policy(snapshot, CycleContext(now=now, rng=self._rng, config=self.config))
        touched.update(p.victim for p in result.preempted)
        touched.update(e.workload for e in result.evicted)
        touched.update(a.workload for a in result.admitted)
        touched.update(d.workload for d in result.pending)
        for p in result.preempted:
            preemption = (p.preemptor, p.reason)
            progressed |= self._evict(world, p.victim, wls.EVICTED_BY_PREEMPTION, p.message, now, report, preemption)
        for e in result.evicted:
            progressed |= self._evict(world, e.workload, e.reason, e.message, now, report)
        for a in result.admitted:
            wl = world.by_kind["Workload"].get(a.workload)
            if wl is None or not is_candidate(wl, world.objs()):
                continue
            body = copy.deepcopy(wl)
            if self._blocked(world.objs()):
                wls.unset_quota_reservation(body, wls.WAITING, wls.MSG_WAITING_PODS_READY, now)
                self._write(world, jobs.Write("status", "Workload", body), report)
                continue
            wls.set_quota_reservation(body, wls.admission_json(a.admission), now)
            if self._write(world, jobs.Write("status", "Workload", body), report) is not None:
                self._admitted(wl, a.admission, now, report)
                progressed = True
        for d in result.pending:
            wl = world.by_kind["Workload"].get(d.workload)
            if wl is None or not is_candidate(wl, world.objs()) or wls.requeue_at(wl) > now:
                continue  # gone, admitted, or backing off (keeping its eviction's message)
            body = copy.deepcopy(wl)
            if wls.unset_quota_reservation(body, wls.PENDING, d.message, now):
                self._write(world, jobs.Write("status", "Workload", body), report)
            report.pending.append(d.workload)
            if d.requeue == "immediate":
                self._parked.pop(d.workload, None)
            elif d.workload not in self._parked:
                generation = int(wl["metadata"].get("generation", 0))
                self._parked[d.workload] = Park(now, d.requeue == "on-capacity", generation)
                progressed = True
        return progressed

    def _admitted(self, wl: JSON, admission: AdmissionRecord, now: float, report: PassReport) -> None:
        cq = admission.cluster_queue
        self.metrics.quota_reserved.labels(cq).inc()
        self.metrics.admitted.labels(cq).inc()
        self.metrics.admission_wait.labels(cq).observe(max(0.0, now - wls.queued_since(wl)))
        self._parked.pop(wls.key(wl), None)
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
        world: World,
        key: str,
        reason: str,
        message: str,
        now: float,
        report: PassReport,
        preemption: tuple[str, str] | None = None,
    ) -> bool:
        """Evicted (and, for a preemption, Preempted) on an admitted workload; the job reconciler
        then stops its Job and releases the quota."""
        wl = world.by_kind["Workload"].get(key)
        if wl is None or not wls.holds_quota(wl) or wls.is_evicted(wl):
            return False
        body = copy.deepcopy(wl)
        wls.set_evicted(body, reason, message, now)
        if preemption is not None:
            wls.set_preempted(body, preemption[1], message, now)
        if self._write(world, jobs.Write("status", "Workload", body), report) is None:
            return False
        self.metrics.evicted.labels(wl["status"]["admission"]["clusterQueue"], reason).inc()
        if preemption is not None:
            by = world.by_kind["Workload"].get(preemption[0])
            preempting = world.objs().cluster_queue_name_of(by) if by is not None else None
            self.metrics.preempted.labels(preempting or "", preemption[1]).inc()
            report.preempted.append(key)
        return True

    # -- queue status ----------------------------------------------------------------------------------
    def _queue_statuses(self, world: World, now: float, report: PassReport, wakes: list[float]) -> None:
        objs = world.objs()
        view = queue_view(objs, frozenset(self._parked), now)
        for kind, new, resampled in queue_statuses(objs, view, self.config, now, wakes):
            if resampled:
                self._penalties.pop(wls.key(new), None)  # the new sample includes what it stood for
            self._write(world, jobs.Write("status", kind, new), report)
        # The metrics read this from the HTTP thread: hand over copies, never the pass's dicts.
        self._view = (view, ApiObjects(cluster_queues=dict(objs.cluster_queues), flavors=dict(objs.flavors)))

    # -- the background loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        dirty = True
        while not self._stopping.is_set():
            try:
                if self._watch is None or self._watch.closed:
                    self._watch = self._store.watch(None)
                    dirty = True
                due = self._next_wakeup is not None and self._clock() >= self._next_wakeup
                if dirty or due:
                    self.run_once()
                    dirty = False
                    continue
                wait = 1.0 if self._next_wakeup is None else self._next_wakeup - self._clock()
                event = self._watch.next_event(timeout=min(max(wait, 0.01), 1.0))
                if event is not None and event.object.get("kind") in KINDS:
                    dirty = True
                    self._drain(self._watch)
            except Gone:
                self._watch = None
            except Exception:
                if self._store.closed or self._stopping.is_set():
                    break
                log.exception("queue controller pass failed; retrying in 1s")
                self._stopping.wait(1.0)
        if self._watch is not None:
            self._watch.close()

    def _drain(self, watch: Watch) -> None:
        """Debounce: take in the rest of a burst of writes before the next pass."""
        deadline = time.monotonic() + self._debounce
        while (remaining := deadline - time.monotonic()) > 0:
            if watch.next_event(timeout=remaining) is None:
                return
