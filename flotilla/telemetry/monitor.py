"""The health monitor: Autopilot's periodic checks over every Node's GPUs, written back to the Nodes.

One pass (`run_once`): list the Nodes with `status.gpus`; read each GPU (`EmulatedReader` for an
emulated GPU, `NvmlReader` for a real one, or what the `readers` factory returns), evaluate the
enabled checks (`HealthConfig`), probe the ping target once for the node checks, and where a
verdict changed write the Node:

- `status.gpus[i].health` and `.healthMessage` (the first failing check's message, worst first)
  through the status subresource;
- the label `autopilot.ibm.com/gpuhealth` = the node's verdict (PASS, WARN, EVICT or ERR), as
  Autopilot labels nodes, through a metadata update.

Writes carry the resourceVersion read: on Conflict (someone, e.g. `flotilla fault inject`, wrote
in between) the Node is read again and the verdicts applied again. A pass that changes nothing
writes nothing. Each pass also replaces the metrics snapshot `GPUMetricsCollector` exports, and
returns what changed (`NodeVerdictChange`), so a caller can stop what runs on GPUs that became
EVICT or ERR; other components see the same through the Node objects.

`start()` runs passes every `config.interval` seconds on a daemon thread; `trigger()` runs one
soon (after a fault is injected); `stop()` ends the thread.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flotilla.store import Conflict, NotFound
from flotilla.store.service import ResourceService
from flotilla.telemetry.checks import (
    CheckRegistry,
    HealthConfig,
    NodeReadings,
    Verdict,
    default_registry,
    node_verdict,
)
from flotilla.telemetry.dcgm import GPUMetricsCollector, GPUSample, NodeHealth
from flotilla.telemetry.nvml import NvmlReader
from flotilla.telemetry.ping import tcp_ping
from flotilla.telemetry.readings import EmulatedReader, GPUReadings, Reader

JSON = dict[str, Any]
NODE_LABEL = "autopilot.ibm.com/gpuhealth"
UNUSABLE: frozenset[str] = frozenset({"EVICT", "ERR"})
MAX_WRITE_ATTEMPTS = 5
PING_TIMEOUT_S = 1.0
log = logging.getLogger(__name__)

ReaderFactory = Callable[[JSON], Reader]
BusyFn = Callable[[str, str], float]
PingFn = Callable[[str, int, float], float | None]


@dataclass(frozen=True, slots=True)
class GPUHealthChange:
    """One GPU whose health changed: from `previous` (None: never checked) to `verdict`."""

    index: int
    uuid: str
    previous: str | None
    verdict: Verdict
    message: str | None


@dataclass(frozen=True, slots=True)
class NodeVerdictChange:
    """What one pass changed on one Node: its label (`previous` -> `verdict`) and GPUs."""

    node: str
    previous: str | None
    verdict: Verdict
    gpus: tuple[GPUHealthChange, ...] = ()

    @property
    def turned_unusable(self) -> tuple[GPUHealthChange, ...]:
        """GPUs that became EVICT or ERR (from a usable or unknown state): stop what runs there."""
        return tuple(g for g in self.gpus if g.verdict in UNUSABLE and g.previous not in UNUSABLE)


def default_reader(gpu: JSON) -> Reader:
    """`EmulatedReader` for an emulated GPU, `NvmlReader` (by UUID) for a real one."""
    return EmulatedReader() if gpu.get("emulated") else NvmlReader(str(gpu.get("uuid", "")))


class HealthMonitor:
    """Periodic GPU and node health checks over the Nodes in `service` (see the module docstring).

    `readers` builds a reader per GPU (called once per GPU, by node and UUID; default
    `default_reader`); `busy(node, uuid)` gives the share of a GPU's slots allocated (default 0);
    `ping_target` (host, port) enables the node `ping` check; `ping` is the probe (tests fake it);
    `on_change` is called with each background pass's changes."""

    def __init__(
        self,
        service: ResourceService,
        config: HealthConfig | None = None,
        readers: ReaderFactory | None = None,
        ping_target: tuple[str, int] | None = None,
        busy: BusyFn | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        registry: CheckRegistry | None = None,
        ping: PingFn = tcp_ping,
        on_change: Callable[[list[NodeVerdictChange]], None] | None = None,
    ) -> None:
        self.config = config or HealthConfig()
        self._checks = (registry or default_registry()).bind(self.config)  # bad config fails here
        self._service = service
        self._kind = service.registry.resolve("nodes")
        self._reader_factory = readers or default_reader
        self._readers: dict[tuple[str, str, bool], Reader] = {}
        self._ping_target = ping_target
        self._ping = ping
        self._busy = busy
        self._clock = clock
        self._on_change = on_change
        self._last_xid: dict[str, int] = {}
        self._snapshot: tuple[NodeHealth, ...] = ()
        self.last_pass_at: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- outputs -----------------------------------------------------------------------------------
    @property
    def snapshot(self) -> tuple[NodeHealth, ...]:
        """The last pass's nodes, GPUs, readings and verdicts (immutable; replaced each pass)."""
        return self._snapshot

    def collector(self, cpu_model: str = "N/A") -> GPUMetricsCollector:
        """A Prometheus collector over this monitor's snapshot (register it on a CollectorRegistry)."""
        return GPUMetricsCollector(lambda: self._snapshot, cpu_model)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> HealthMonitor:
        """Run a pass now and then every `config.interval` seconds on a daemon thread, until `stop()`."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="flotilla-health", daemon=True)
        self._thread.start()
        return self

    def trigger(self) -> None:
        """Run the next pass now rather than at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the background thread (a pass under way finishes first) and release the readers."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._lock:
            for key in list(self._readers):
                self._drop_reader(key)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                changes = self.run_once()
                if changes and self._on_change is not None:
                    self._on_change(changes)
            except Exception:  # keep checking: one failed pass must not end health monitoring
                log.exception("health check pass failed")
            self._wake.wait(self.config.interval)
            self._wake.clear()

    # -- one pass ----------------------------------------------------------------------------------
    def run_once(self) -> list[NodeVerdictChange]:
        """Check every Node's GPUs once, write what changed, and return the changes."""
        with self._lock:
            nodes, _ = self._service.list_objects(self._kind)
            latency = self._probe()
            healths: list[NodeHealth] = []
            changes: list[NodeVerdictChange] = []
            seen: set[tuple[str, str, bool]] = set()
            for node in sorted(nodes, key=lambda n: str(n["metadata"]["name"])):
                gpus = (node.get("status") or {}).get("gpus") or []
                if not gpus:
                    continue
                health = self._evaluate(node["metadata"]["name"], gpus, latency, seen)
                healths.append(health)
                change = self._write(node, health)
                if change is not None:
                    changes.append(change)
            for key in set(self._readers) - seen:
                self._drop_reader(key)
            self._snapshot = tuple(healths)
            self.last_pass_at = self._clock()
            return changes

    def _probe(self) -> float | None:
        if self._ping_target is None:
            return None
        host, port = self._ping_target
        return self._ping(host, port, PING_TIMEOUT_S)

    def _reader(self, node: str, gpu: JSON, seen: set[tuple[str, str, bool]]) -> Reader:
        key = (node, str(gpu.get("uuid", "")), bool(gpu.get("emulated")))
        seen.add(key)
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = self._reader_factory(gpu)
        return reader

    def _drop_reader(self, key: tuple[str, str, bool]) -> None:
        close = getattr(self._readers.pop(key), "close", None)
        if callable(close):
            close()

    def _read(self, node: str, gpu: JSON, seen: set[tuple[str, str, bool]]) -> GPUReadings:
        uuid = str(gpu.get("uuid", ""))
        try:
            busy = self._busy(node, uuid) if self._busy is not None else 0.0
            return self._reader(node, gpu, seen).read(gpu, busy)
        except Exception:  # a reader that cannot read the GPU: it cannot be used either
            log.exception("reading GPU %s on node %s failed; treating it as unreachable", uuid, node)
            return GPUReadings(uuid=uuid, reachable=False)

    def _evaluate(
        self, node: str, gpus: list[JSON], latency: float | None, seen: set[tuple[str, str, bool]]
    ) -> NodeHealth:
        samples = []
        for gpu in gpus:
            readings = self._read(node, gpu, seen)
            if readings.xid_events:
                self._last_xid[readings.uuid] = readings.xid_events[-1]
            samples.append(
                GPUSample(
                    index=int(gpu.get("index", 0)),
                    uuid=str(gpu.get("uuid", "")),
                    model_name=str(gpu.get("product") or gpu.get("model") or ""),
                    readings=readings,
                    verdict=self._checks.evaluate_gpu(readings),
                    last_xid=self._last_xid.get(readings.uuid, 0),
                )
            )
        node_results: tuple[Any, ...] = ()
        target = None
        if self._ping_target is not None:
            target = f"{self._ping_target[0]}:{self._ping_target[1]}"
            node_results = self._checks.evaluate_node(NodeReadings(node, target, latency))
        verdict = node_verdict((s.verdict for s in samples), node_results)
        return NodeHealth(node, verdict, tuple(samples), node_results, target)

    # -- writing -----------------------------------------------------------------------------------
    def _write(self, node: JSON, health: NodeHealth) -> NodeVerdictChange | None:
        """Bring the Node's GPU health and label to `health`; re-read and re-apply on Conflict."""
        name = node["metadata"]["name"]
        wanted = {g.uuid: (g.verdict.verdict, g.verdict.message) for g in health.gpus}
        gpu_changes: dict[str, GPUHealthChange] = {}
        previous_label: str | None = (node["metadata"].get("labels") or {}).get(NODE_LABEL)
        label_changed = False
        obj = node
        for attempt in range(MAX_WRITE_ATTEMPTS):
            try:
                if attempt:
                    obj = self._service.get(self._kind, name)
                status_obj, changed = _with_gpu_health(obj, wanted)
                if changed:
                    obj = self._service.update_status(status_obj, self._kind)
                    for change in changed:
                        gpu_changes.setdefault(change.uuid, change)
                labels = obj["metadata"].get("labels") or {}
                if labels.get(NODE_LABEL) != health.verdict:
                    updated = copy.deepcopy(obj)
                    updated["metadata"]["labels"] = {**labels, NODE_LABEL: health.verdict}
                    obj = self._service.update(updated, self._kind)
                    label_changed = True
                break
            except Conflict:
                log.debug("node %s changed while writing its health; reading it again", name)
                continue
            except NotFound:
                return None
        else:
            log.warning("node %s: gave up writing its health after %d conflicts", name, MAX_WRITE_ATTEMPTS)
        if not gpu_changes and not label_changed:
            return None
        return NodeVerdictChange(name, previous_label, health.verdict, tuple(gpu_changes.values()))


def _with_gpu_health(obj: JSON, wanted: dict[str, tuple[Verdict, str | None]]) -> tuple[JSON, list[GPUHealthChange]]:
    """A copy of `obj` with each GPU's health and message as `wanted` (by UUID), and what changed."""
    changes: list[GPUHealthChange] = []
    gpus = (obj.get("status") or {}).get("gpus") or []
    for gpu in gpus:
        want = wanted.get(str(gpu.get("uuid", "")))
        if want is not None and (gpu.get("health"), gpu.get("healthMessage")) != want:
            changes.append(GPUHealthChange(int(gpu.get("index", 0)), gpu["uuid"], gpu.get("health"), *want))
    if not changes:
        return obj, changes
    new = copy.deepcopy(obj)
    for gpu in new["status"]["gpus"]:
        want = wanted.get(str(gpu.get("uuid", "")))
        if want is None:
            continue
        gpu["health"] = want[0]
        if want[1] is None:
            gpu.pop("healthMessage", None)
        else:
            gpu["healthMessage"] = want[1]
    return new, changes
