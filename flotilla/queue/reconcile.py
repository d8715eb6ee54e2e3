"""The controller's reconcilers: Kueue's job reconciler (pkg/controller/jobframework) and workload
controller (pkg/controller/core/workload_controller.go) over the Jobs and Workloads that changed.

A mixin of `QueueController` (controller.py), which owns the cache, the indexes and the writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flotilla.queue import jobs
from flotilla.queue import workloads as wls
from flotilla.queue.build import ApiObjects
from flotilla.queue.driver import PassReport
from flotilla.queue.metrics import QueueMetrics
from flotilla.queue.status import reconcile_workload
from flotilla.queue.types import QueueConfig

JSON = dict[str, Any]


class Reconciler:
    config: QueueConfig
    metrics: QueueMetrics
    _objs: ApiObjects
    _dirty: dict[str, set[str]]
    _timers: dict[str, float]
    _jobs_by_uid: dict[tuple[str, str], str]
    _owned: dict[tuple[str, str], set[str]]

    def _write(self, write: jobs.Write, report: PassReport) -> JSON | None:
        raise NotImplementedError

    def _objs_of(self, kind: str) -> dict[str, JSON]:
        raise NotImplementedError

    def _take_dirty(self) -> tuple[set[str], set[str]]:
        taken = self._dirty["Workload"], self._dirty["Job"]
        self._dirty = {"Workload": set(), "Job": set()}
        return taken

    def _reconcile(self, now: float, report: PassReport, wakes: list[float], full: bool = False) -> None:
        """Jobs, then Workloads and Jobs again while that changes something (a released workload
        may now be Inadmissible, an evicted one's Job must stop), at most three rounds: those that
        changed since the last reconcile (their own writes included), or every one when `full`.
        What the last round wrote is reconciled by the next call."""
        workloads, job_keys = self._take_dirty()
        if full:
            workloads, job_keys = set(self._objs.workloads), set(self._objs_of("Job"))
        self._reconcile_jobs(now, report, workloads, job_keys, full)
        for _ in range(3):
            writes = report.writes
            more_workloads, more_jobs = self._take_dirty()
            workloads |= more_workloads
            job_keys |= more_jobs
            for k in sorted(workloads):
                wl = self._objs.workloads.get(k)
                if wl is not None:
                    self._reconcile_workload(k, wl, now, report, wakes)
            self._reconcile_jobs(now, report, workloads | self._dirty["Workload"], job_keys, full)
            if report.writes == writes:
                return

    def _reconcile_workload(self, key: str, wl: JSON, now: float, report: PassReport, wakes: list[float]) -> None:
        if wls.is_finished(wl) and not (wls.is_evicted(wl) and wls.has_quota_reservation(wl)):
            self._timers.pop(key, None)  # the workload controller leaves finished workloads alone
            return
        result = reconcile_workload(wl, self._objs.queue_context(wl), self.config, now)
        body = result.workload
        if jobs.owner_uid(body) is None and wls.is_evicted(body) and wls.has_quota_reservation(body):
            result.status_changed |= wls.release_after_eviction(body, now)  # no Job to stop first
        if result.spec_changed:
            self._write(jobs.Write("update", "Workload", body), report)
        if result.status_changed:
            self._write(jobs.Write("status", "Workload", body), report)
        if result.evicted is not None:
            self.metrics.evicted.labels(*result.evicted).inc()
        if result.wake_at is not None:
            self._timers[key] = result.wake_at
            wakes.append(result.wake_at)
        else:
            self._timers.pop(key, None)

    def _reconcile_jobs(
        self, now: float, report: PassReport, workload_keys: Iterable[str], job_keys: Iterable[str], full: bool
    ) -> None:
        """The Jobs given and those owning the Workloads given, with all their Workloads; given
        every Job (`full`), also delete Workloads whose Job is gone; otherwise do that for the
        Workloads given."""
        objs, all_jobs = self._objs, self._objs_of("Job")
        ctx = jobs.JobContext(self.config, now, objs.flavors, objs.priority_classes)
        if full:
            for write in jobs.plan(list(all_jobs.values()), list(objs.workloads.values()), ctx):
                self._write(write, report)
            return
        chosen = {k: all_jobs[k] for k in job_keys if k in all_jobs}
        keys = {k for k in workload_keys if k in objs.workloads}
        for job in list(chosen.values()):
            keys |= self._owned.get((job["metadata"]["namespace"], str(job["metadata"].get("uid", ""))), set())
        orphans = []
        for k in sorted(keys):
            wl = objs.workloads[k]
            uid = jobs.owner_uid(wl)
            owner = None if uid is None else self._jobs_by_uid.get((wl["metadata"]["namespace"], uid))
            if owner is not None:
                chosen[owner] = all_jobs[owner]
            elif uid is not None:
                orphans.append(wl)
        owned = [objs.workloads[k] for k in sorted(keys)]
        writes = jobs.plan([chosen[k] for k in sorted(chosen)], owned, ctx, delete_orphans=False)
        for write in writes + [jobs.Write("delete", "Workload", dict(w)) for w in orphans]:
            self._write(write, report)
