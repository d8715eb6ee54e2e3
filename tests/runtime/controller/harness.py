"""A store, a resource service, emulated GPUs and a runtime controller (optionally the queue
controller too), driven pass by pass in real time: the processes are real."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flotilla.api.catalog import build_registry
from flotilla.queue.controller import QueueController
from flotilla.runtime.config import RuntimeConfig
from flotilla.runtime.controller import RuntimeController
from flotilla.slicer import PlacementConfig, load_catalog
from flotilla.slicer.backends import EmulatedBackend
from flotilla.slicer.inventory import parse_gpu_spec
from flotilla.store import NotFound, Store
from flotilla.store.service import ResourceService

JSON = dict[str, Any]
FAST = RuntimeConfig(jobBackoffSeconds=0, restartBackoffSeconds=0, pollSeconds=0.02)


def py(code: str) -> list[str]:
    """A container command running Python code (argv, no shell)."""
    return [sys.executable, "-c", code]


def job(
    name: str,
    command: list[str],
    *,
    limits: dict[str, Any] | None = None,
    requests: dict[str, Any] | None = None,
    queue: str | None = None,
    restart: str = "Never",
    grace: int | None = None,
    **spec: Any,
) -> JSON:
    container: JSON = {"name": "main", "image": "busybox", "command": command}
    resources: JSON = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    if resources:
        container["resources"] = resources
    pod_spec: JSON = {"restartPolicy": restart, "containers": [container]}
    if grace is not None:
        pod_spec["terminationGracePeriodSeconds"] = grace
    meta: JSON = {"name": name, "namespace": "default"}
    if queue:
        meta["labels"] = {"kueue.x-k8s.io/queue-name": queue}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": {"spec": pod_spec}, **spec}}


class Harness:
    def __init__(
        self,
        root: Path,
        gpus: str = "1x2xA100-40GB",
        config: RuntimeConfig = FAST,
        queue: bool = False,
        placement: str = "first-fit",
    ) -> None:
        self.root = root
        self.gpus = gpus
        self.config = config.model_copy(update={"placement": PlacementConfig(policy=placement)})
        self.store = Store.open(root / "state.db")
        self.service = ResourceService(self.store, build_registry())
        self.service.ensure_namespace("default")
        self.queue = QueueController(self.service) if queue else None
        self.backend = self._backend()
        self.ctl = self._controller()

    def _backend(self) -> EmulatedBackend:
        return EmulatedBackend(parse_gpu_spec(self.gpus), load_catalog(), reason="tests")

    def _controller(self) -> RuntimeController:
        return RuntimeController(self.service, self.backend, self.root / "runtime", self.config)

    def crash(self) -> None:
        """The control plane dies (kill -9): a new controller and backend over the same store and
        processes; the old ones are dropped without cleanup."""
        self.ctl._informer.close()
        self.backend = self._backend()
        self.ctl = self._controller()

    def close(self) -> None:
        self.ctl.shutdown(grace=1)
        self.store.close()

    # -- objects -------------------------------------------------------------------------------------
    def kind(self, plural: str) -> Any:
        return self.service.registry.resolve(plural)

    def create(self, obj: JSON) -> JSON:
        return self.service.create(obj)

    def get(self, plural: str, name: str, ns: str | None = "default") -> JSON | None:
        kind = self.kind(plural)
        try:
            return self.service.get(kind, name, ns if kind.namespaced else None)
        except NotFound:
            return None

    def list(self, plural: str, ns: str | None = None) -> list[JSON]:
        items, _ = self.service.list_objects(self.kind(plural), ns)
        return list(items)

    def pods(self, job_name: str) -> list[JSON]:
        return [p for p in self.list("pods") if p["metadata"].get("labels", {}).get("job-name") == job_name]

    def update_status(self, obj: JSON) -> JSON:
        return self.service.update_status(obj)

    # -- driving -------------------------------------------------------------------------------------
    def step(self) -> None:
        if self.queue is not None:
            self.queue.run_once()
        self.ctl.run_once()

    def until(self, what: Callable[[], Any], timeout: float = 15.0, message: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.step()
            value = what()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {message or what}")
            time.sleep(0.02)

    def job_condition(self, name: str) -> str | None:
        j = self.get("jobs", name)
        for c in ((j or {}).get("status") or {}).get("conditions") or []:
            if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                return f"{c['type']}:{c.get('reason')}"
        return None

    def log(self, pod: JSON, container: str = "main") -> str:
        return self.ctl.kubelet.read_log(pod["metadata"]["namespace"], pod["metadata"]["name"], container) or ""


def alive(pid: int) -> bool:
    """A process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False
