"""The pipeline controller: runs every Pipeline object in the store (one driver each), in `flotilla up`.

Level-triggered like the other controllers: every `poll_seconds` it lists the Pipelines, starts a
driver for each one that has not finished (Succeeded or Failed), calls each driver's `reconcile()`,
and drops the drivers of Pipelines that finished or were deleted. A driver is keyed by the object's
uid, so deleting a Pipeline and creating it again (`flotilla pipeline run` does this for a re-run)
starts a new run, which skips the recordings the last one finished.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flotilla.pipelines.driver import SpeechToSummary
from flotilla.store import NotFound
from flotilla.store.service import ResourceService

log = logging.getLogger("flotilla.pipelines")
FINISHED = ("Succeeded", "Failed")


def render_report(run_dir: Path) -> object:
    """`flotilla report RUN_DIR`'s renderer, imported when a run ends (it pulls in matplotlib)."""
    from flotilla.reports.report import write_report

    return write_report(run_dir)


class PipelineController:
    def __init__(
        self,
        service: ResourceService,
        gateway: Callable[[], str | None],
        poll_seconds: float = 0.25,
        driver_factory: Callable[..., SpeechToSummary] = SpeechToSummary,
        report: Callable[[Path], object] | None = render_report,
    ) -> None:
        self.service = service
        self.kind = service.registry.resolve("pipelines")
        self._gateway = gateway
        self._poll = poll_seconds
        self._factory = driver_factory
        self._report = report
        self._drivers: dict[str, SpeechToSummary] = {}
        self._known: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="flotilla-pipelines", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for driver in self._drivers.values():
            driver.close()
        self._drivers.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:  # a bad pass must not stop the controller; the next pass retries
                log.exception("pipeline controller pass failed")
            self._stop.wait(self._poll)

    def sync(self) -> None:
        """One pass over every Pipeline."""
        items, _ = self.service.list_objects(self.kind)
        live: set[str] = set()
        for obj in items:
            uid = obj["metadata"]["uid"]
            phase = (obj.get("status") or {}).get("phase")
            if phase in FINISHED and uid not in self._drivers:
                continue
            live.add(uid)
            driver = self._drivers.get(uid) or self._start(obj)
            if driver is None:
                continue
            self._drivers[uid] = driver
            if driver.reconcile():
                driver.close()
                del self._drivers[uid]
        for uid in set(self._drivers) - live:  # deleted while running
            self._drivers.pop(uid).close()
        uids = {o["metadata"]["uid"] for o in items}
        if uids != self._known:
            self._known = uids
            self.collect_orphans(uids)

    def collect_orphans(self, pipelines: set[str]) -> None:
        """Delete the Jobs of Pipelines that are gone (Kubernetes' garbage collector does this for
        ownerReferences; here the owner is a Pipeline, which the runtime's collector does not know)."""
        jobs = self.service.registry.resolve("jobs")
        for job in self.service.list_objects(jobs)[0]:
            meta = job["metadata"]
            owners = [r for r in meta.get("ownerReferences") or [] if r.get("kind") == "Pipeline"]
            if owners and all(r.get("uid") not in pipelines for r in owners):
                with contextlib.suppress(NotFound):
                    self.service.delete(jobs, meta["name"], meta.get("namespace"))

    def _start(self, obj: dict[str, Any]) -> SpeechToSummary | None:
        try:
            return self._factory(self.service, obj, self._gateway(), render_report=self._report)
        except Exception as exc:  # the spec was valid when stored; a driver that cannot start says why
            meta = obj["metadata"]
            log.exception("pipeline %s/%s cannot start", meta.get("namespace"), meta["name"])
            obj["status"] = {"phase": "Failed", "message": f"cannot start: {exc}"}
            self.service.update_status(obj, self.kind)
            return None
