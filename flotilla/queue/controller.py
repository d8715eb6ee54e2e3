"""The embedded Kueue driver: reconcile Jobs and Workloads, run the admission policy, write results.

The controller keeps an in-memory copy of every object admission reads (`informer.Informer`: list
once, then the store's watch) and indexes over its Workloads (`index.WorkloadIndex`: pending
queues, parking, quota holders, queue counts), so a pass costs what changed, not what exists.

One pass (`run_once`), as Kueue's controllers do: takes in the watch's events; reconciles the Jobs
and Workloads that changed (suspend, create Workloads, start admitted ones, stop evicted ones;
deactivation, backoff, stopped queues, PodsReady timeouts), every one of them when a queue, cohort,
flavor, namespace or priority class changed, and those whose deadline came; unparks BestEffortFIFO
workloads on capacity events (quota released in their cohort tree, queues, cohorts or flavors
changed); runs scheduling cycles `policy(snapshot, ctx)` while the last one changed something,
carrying out each cycle's decisions and reconciling what it touched; and writes ClusterQueue and
LocalQueue status. A write that would change nothing is skipped, so a settled system makes no
writes and the background loop sleeps until the store changes or a deadline (a backoff, a PodsReady
timeout, a parked retry, a fair-sharing sample) comes.

The snapshot a cycle gets holds the workloads that hold quota and, per open LocalQueue, its first
pending workload in queue order that is neither parked nor backing off: the policy offers one head
per ClusterQueue, the first by that order, so it needs no other. A head that does not fit is parked
with the scheduling-equivalent workloads of its LocalQueue (Kueue's SchedulingEquivalenceHashing).

`start()` runs passes on a thread, woken by the watch (debounced). Tests and the simulator call
`run_once()` with an injected clock instead.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from flotilla.api.errors import ManifestErrors
from flotilla.queue import jobs
from flotilla.queue import workloads as wls
from flotilla.queue.build import ApiObjects, QueueSnapshots, queue_snapshots
from flotilla.queue.cycles import CycleRunner
from flotilla.queue.driver import KINDS, MAX_CYCLES, PassReport, Policy, default_policy, log
from flotilla.queue.index import WorkloadIndex
from flotilla.queue.metrics import QueueMetrics
from flotilla.queue.reconcile import Reconciler
from flotilla.queue.status import QueueView, queue_statuses
from flotilla.queue.types import QueueConfig
from flotilla.store import AlreadyExists, Conflict, NotFound
from flotilla.store.informer import Informer
from flotilla.store.service import ResourceService, resource_type

JSON = dict[str, Any]
__all__ = ["Policy", "QueueController"]
_QUOTA_KINDS = frozenset({"ClusterQueue", "Cohort", "ResourceFlavor"})


def _config_part(obj: JSON | None) -> Any:
    """An object less its status and resourceVersion: what a change of configuration changes."""
    if obj is None:
        return None
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _labels(obj: JSON | None) -> Any:
    return None if obj is None else (obj.get("metadata") or {}).get("labels")


def _spec(obj: JSON | None) -> Any:
    return None if obj is None else obj.get("spec")


class QueueController(Reconciler, CycleRunner):
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
        self._informer = Informer(self._store, self._types, self._on_change)
        self._objs = self._api_objects()
        self._index = WorkloadIndex(self._objs, self.config)
        self._queues: QueueSnapshots | None = None  # None: queues changed, derive again
        self._dirty: dict[str, set[str]] = {"Workload": set(), "Job": set()}  # to reconcile
        self._timers: dict[str, float] = {}  # workload -> when it needs another look
        self._jobs_by_uid: dict[tuple[str, str], str] = {}
        self._owned: dict[tuple[str, str], set[str]] = {}  # Job (namespace, uid) -> its Workloads
        self._capacity_everywhere = True  # the next unpark frees every parked workload
        self._changed_local_queues: set[str] = set()
        # (kind, key) -> (resourceVersion, counts) its status was last made from
        self._status_basis: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._penalties: dict[str, dict[str, float]] = {}  # admission fair sharing, until the next sample
        self._view: tuple[QueueView, ApiObjects] | None = None
        self._next_wakeup: float | None = None
        self._retry = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
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
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    @property
    def parked(self) -> frozenset[str]:
        """Workloads set aside until a capacity event ("namespace/name")."""
        return self._index.pending.parked_keys()

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

    # -- the cache and what it feeds ---------------------------------------------------------------
    def _api_objects(self) -> ApiObjects:
        o = self._informer.objects
        return ApiObjects(
            cluster_queues=o["ClusterQueue"],
            cohorts=o["Cohort"],
            flavors=o["ResourceFlavor"],
            local_queues=o["LocalQueue"],
            workloads=o["Workload"],
            priority_classes=o["WorkloadPriorityClass"],
            namespaces=o["Namespace"],
        )

    def _on_change(self, kind: str, key: str, old: JSON | None, new: JSON | None) -> None:
        """Every change to the cache: keep the indexes, and note what to reconcile or unpark."""
        if kind == "Workload":
            self._index.update(key, new)
            self._dirty["Workload"].add(key)
            self._link_owner(key, old, -1)
            self._link_owner(key, new, +1)
            if new is None:
                self._timers.pop(key, None)
        elif kind == "Job":
            self._dirty["Job"].add(key)
            for obj, sign in ((old, -1), (new, +1)):
                if obj is not None:
                    self._link_job(key, obj, sign)
        elif _config_part(old) != _config_part(new):
            self._queues = None  # derive snapshots, indexes and Workload state again
            if kind == "LocalQueue" and new is not None and _spec(old) != _spec(new):
                self._changed_local_queues.add(key)
            elif (kind in _QUOTA_KINDS and _spec(old) != _spec(new)) or (
                kind == "Namespace" and (old is None or new is None or _labels(old) != _labels(new))
            ):
                self._capacity_everywhere = True

    def _link_owner(self, key: str, wl: JSON | None, sign: int) -> None:
        uid = None if wl is None else jobs.owner_uid(wl)
        if wl is None or uid is None:
            return
        owner = (wl["metadata"]["namespace"], uid)
        if sign > 0:
            self._owned.setdefault(owner, set()).add(key)
        elif owner in self._owned:
            self._owned[owner].discard(key)

    def _link_job(self, key: str, job: JSON, sign: int) -> None:
        owner = (job["metadata"]["namespace"], str(job["metadata"].get("uid", "")))
        if sign > 0:
            self._jobs_by_uid[owner] = key
        elif self._jobs_by_uid.get(owner) == key:
            del self._jobs_by_uid[owner]
            self._dirty["Workload"].update(self._owned.get(owner, ()))  # orphans now

    def _rebuild(self) -> None:
        """After a relist or a change of queues: derive every index again."""
        self._objs = self._index.objs = self._api_objects()
        self._index.rebuild()
        self._jobs_by_uid.clear()
        self._owned.clear()
        for key, job in self._objs_of("Job").items():
            self._link_job(key, job, +1)
        for key, wl in self._objs.workloads.items():
            self._link_owner(key, wl, +1)
        self._timers = {k: at for k, at in self._timers.items() if k in self._objs.workloads}

    def _objs_of(self, kind: str) -> dict[str, JSON]:
        return self._informer.objects[kind]

    # -- one pass ----------------------------------------------------------------------------------
    def run_once(self) -> PassReport:
        """Take in what changed, reconcile it, and run scheduling cycles until they change nothing;
        report what happened."""
        with self._lock:
            if self._policy is None:
                self._policy = default_policy()
            now = self._clock()
            report = PassReport()
            self._retry = False
            listed = self._informer.sync()
            self._capacity_everywhere |= listed  # nothing tells what changed: every queue may have room
            full = listed or self._queues is None
            if full:
                self._status_basis.clear()
                self._rebuild()
                self._queues = queue_snapshots(self._objs)
            due = [k for k, at in self._timers.items() if at <= now]
            self._dirty["Workload"].update(due)
            wakes: list[float] = []
            self._reconcile(now, report, wakes, full)
            self._unpark(now)
            # The policy offers one head per ClusterQueue a cycle: cycle while heads change (one
            # was admitted, parked or made room by preempting), reconciling in between.
            for _ in range(MAX_CYCLES):
                progressed = self._cycle(now, report)
                self._reconcile(now, report, wakes)
                if not progressed:
                    break
            self._queue_statuses(now, report, wakes)
            wakes += self._timers.values()
            retry = self._index.pending.next_retry()
            if retry is not None:
                wakes.append(retry)
            self._next_wakeup = now if self._retry else min(wakes, default=None)
            report.next_wakeup = self._next_wakeup
            return report

    def _write(self, write: jobs.Write, report: PassReport) -> JSON | None:
        """Carry out one write; on a conflict (someone changed the object) the next pass retries."""
        rt, obj = self._types[write.kind], write.obj
        meta = obj["metadata"]
        items = self._objs_of(write.kind)
        key = wls.key(obj) if rt.namespaced else str(meta["name"])
        try:
            if write.op == "create":
                _, obj = self._service.validate(obj)  # the Workloads Flotilla makes are validated too
                saved = self._store.create(rt, obj)
            elif write.op == "update":
                saved = self._store.update(rt, obj)
            elif write.op == "status":
                current = items.get(key) or obj
                saved = self._store.update_status(rt, {**current, "status": obj.get("status") or {}})
            else:
                gone = self._store.delete(rt, meta["name"], meta.get("namespace"))
                report.writes += 1
                if gone["metadata"].get("deletionTimestamp") and gone["metadata"].get("finalizers"):
                    self._informer.put(write.kind, gone)  # only marked: finalizers hold it
                else:
                    self._informer.remove(write.kind, gone)
                return None
        except (Conflict, NotFound, AlreadyExists) as exc:
            log.debug("%s %s %s: %s (retrying)", write.op, write.kind, meta.get("name"), exc)
            report.conflicts += 1
            self._retry = True
            if write.kind in self._dirty:
                self._dirty[write.kind].add(key)
            return None
        except ManifestErrors as exc:
            log.error("cannot create %s %s: %s", write.kind, wls.key(obj), exc)
            return None
        before = items.get(key)
        if before is None or before["metadata"].get("resourceVersion") != saved["metadata"].get("resourceVersion"):
            report.writes += 1
        self._informer.put(write.kind, saved)
        return saved

    # -- parking -------------------------------------------------------------------------------------
    def _unpark(self, now: float) -> None:
        """Requeue parked workloads whose cohort tree saw a capacity event (quota released there,
        their LocalQueue changed; everywhere when a ClusterQueue, cohort, flavor or namespace
        changed), or whose timed retry (inadmissibleRetrySeconds) is due. (A parked workload
        whose spec changes is requeued at once.)"""
        pending, objs = self._index.pending, self._objs
        released = self._index.take_released()
        if self._capacity_everywhere:
            pending.unpark_queues(None)
        else:
            cqs = set(released)
            changed = (objs.local_queues.get(k) for k in self._changed_local_queues)
            cqs.update(lq["spec"]["clusterQueue"] for lq in changed if lq is not None)
            roots = {self._cohort_root(cq) for cq in cqs}
            pending.unpark_queues(q for q in pending.parked_queues if self._root_of_queue(q) in roots)
        self._capacity_everywhere = False
        self._changed_local_queues.clear()
        pending.retry_due(now)

    def _root_of_queue(self, queue: str) -> str | None:
        lq = self._objs.local_queues.get(queue)
        return None if lq is None else self._cohort_root(str(lq["spec"]["clusterQueue"]))

    # -- queue status ----------------------------------------------------------------------------------
    def _queue_statuses(self, now: float, report: PassReport, wakes: list[float]) -> None:
        """Status of the queues whose object or counts changed since their status was last made
        (every LocalQueue with admission fair sharing: its usage is resampled on a clock)."""
        objs, basis = self._objs, self._status_basis
        assert self._queues is not None
        view = self._index.view(now, self._queues.open_queues)
        cqs = {
            n: (cq["metadata"].get("resourceVersion"), view.cluster_queues.get(n))
            for n, cq in objs.cluster_queues.items()
        }
        lqs = {
            k: (lq["metadata"].get("resourceVersion"), view.local_queues.get(k)) for k, lq in objs.local_queues.items()
        }
        every_lq = self.config.admissionFairSharing is not None
        todo = {
            "ClusterQueue": [n for n, b in cqs.items() if basis.get(("ClusterQueue", n)) != b],
            "LocalQueue": [k for k, b in lqs.items() if every_lq or basis.get(("LocalQueue", k)) != b],
        }
        statuses = queue_statuses(
            objs, view, self.config, now, wakes, cluster_queues=todo["ClusterQueue"], local_queues=todo["LocalQueue"]
        )
        failed = set()
        for kind, new, resampled in statuses:
            if resampled:
                self._penalties.pop(wls.key(new), None)  # the new sample includes what it stood for
            if self._write(jobs.Write("status", kind, new), report) is None:
                failed.add((kind, wls.key(new) if kind == "LocalQueue" else new["metadata"]["name"]))
        for kind, table, counts in (("ClusterQueue", objs.cluster_queues, cqs), ("LocalQueue", objs.local_queues, lqs)):
            for k in todo[kind]:
                if (kind, k) in failed:
                    basis.pop((kind, k), None)
                else:
                    basis[(kind, k)] = (table[k]["metadata"].get("resourceVersion"), counts[k][1])
        # The metrics read this from the HTTP thread: hand over copies, never the pass's dicts.
        self._view = (view, ApiObjects(cluster_queues=dict(objs.cluster_queues), flavors=dict(objs.flavors)))

    # -- the background loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        """A pass when the store changes (`debounce` seconds after the first change, so that the
        rest of a burst joins it: under load, each pass takes in what came in meanwhile, and the
        API's thread gets the interpreter in between) or a deadline comes."""
        work = True
        while not self._stopping.is_set():
            try:
                due = self._next_wakeup is not None and self._clock() >= self._next_wakeup
                if work or due:
                    self.run_once()
                    work = any(self._dirty.values())  # the last round's writes: reconcile them too
                    if work:
                        self._stopping.wait(self._debounce)
                    continue
                wait = 1.0 if self._next_wakeup is None else self._next_wakeup - self._clock()
                with self._lock:
                    work = self._informer.wait(min(max(wait, 0.01), 1.0))
                if work:
                    self._stopping.wait(self._debounce)
            except Exception:
                if self._store.closed or self._stopping.is_set():
                    break
                log.exception("queue controller pass failed; retrying in 1s")
                self._stopping.wait(1.0)
        with self._lock:
            self._informer.close()
