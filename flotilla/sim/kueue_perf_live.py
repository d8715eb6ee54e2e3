"""Kueue's scheduler-performance scenario in real time, through the embedded control plane.

What Kueue's own runner does against its API server, done against `flotilla up`: start the control
plane as a separate process (its own interpreter, so its own GIL), apply the ResourceFlavor, the
ClusterQueues, Namespaces and LocalQueues, then create each Workload over HTTP at its scheduled
time; watch the Workloads, and when one is admitted (QuotaReserved and Admitted) start its clock:
`runtimeMs` later it is marked finished (a `Finished` condition, reason `Succeeded`, through the
status subresource, retried on conflicts). A workload evicted before that is cancelled and waits
to be admitted again (an eviction is counted).

Measured on this side of the API, as Kueue's runner measures on its side: the wall time from the
first creation to the last finish, per ClusterQueue class the usage (the integral of admitted cpu
over time, over nominal quota times the time from the first to the last event), and per workload
class the average time from creation (the create call returning) to the first admission seen.
"""

from __future__ import annotations

import heapq
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.sim.kueue_perf import FLAVOR, RESOURCE, PerfScenario, setup_objects, workload_object
from flotilla.sim.live_plane import Api, control_plane, cpu_seconds, log_tail

JSON = dict[str, Any]
WORKLOADS = "/apis/kueue.x-k8s.io/v1beta2/workloads"
APPLY = "/apis/flotilla.dev/v1/apply"
WORKERS = 8  # concurrent requests (one keep-alive connection each)


def _workload_path(key: str) -> str:
    namespace, name = key.split("/", 1)
    return f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads/{name}"


def _condition(wl: JSON, ctype: str) -> bool:
    return any(
        c.get("type") == ctype and c.get("status") == "True" for c in wl.get("status", {}).get("conditions") or []
    )


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# -- the run -------------------------------------------------------------------------------------------
@dataclass
class Tracked:
    """One workload as this side sees it."""

    key: str
    cluster_queue: str
    workload_class: str
    cpu: float  # cores
    runtime: float
    created_at: float | None = None
    admitted_at: float | None = None  # first admission seen
    finished_at: float | None = None
    running: int = 0  # the admission being timed (1, 2, ... after evictions); 0 while waiting
    latest: JSON | None = None  # the last version seen
    evictions: int = 0


@dataclass
class LiveRun:
    """The workloads of a scenario, their clocks, the usage bookkeeping, and what the run counted.
    Threads share it under `lock`."""

    tracked: dict[str, Tracked]
    clock: Callable[[], float] = time.monotonic
    level: dict[str, float] = field(default_factory=dict)  # ClusterQueue -> admitted cores now
    integral: dict[str, float] = field(default_factory=dict)  # ClusterQueue -> core-seconds
    first_event: float | None = None
    last_event: float | None = None
    conflicts: int = 0
    finished: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)
    _timers: list[tuple[float, str, int]] = field(default_factory=list)  # (due, key, admission)
    _timer_added: threading.Condition = field(default_factory=threading.Condition)
    _admissions: int = 0

    def touch(self, cq: str | None = None, delta: float = 0.0) -> float:
        """An event now: account usage up to now, then change `cq`'s level by `delta` cores."""
        now = self.clock()
        if self.last_event is not None:
            for queue, level in self.level.items():
                self.integral[queue] = self.integral.get(queue, 0.0) + level * (now - self.last_event)
        self.first_event = now if self.first_event is None else self.first_event
        self.last_event = now
        if cq is not None:
            self.level[cq] = self.level.get(cq, 0.0) + delta
        return now

    def observe(self, wl: JSON) -> None:
        """A watch event: start the clock of an admitted workload; stop it on an eviction."""
        meta = wl.get("metadata") or {}
        with self.lock:
            t = self.tracked.get(f"{meta.get('namespace')}/{meta.get('name')}")
            if t is None or t.finished_at is not None or _condition(wl, "Finished"):
                return
            t.latest = wl
            admitted = _condition(wl, "QuotaReserved") and _condition(wl, "Admitted") and not _condition(wl, "Evicted")
            if admitted and not t.running:
                now = self.touch(t.cluster_queue, t.cpu)
                t.admitted_at = now if t.admitted_at is None else t.admitted_at
                self._admissions += 1
                t.running = self._admissions
                with self._timer_added:
                    heapq.heappush(self._timers, (now + t.runtime, t.key, t.running))
                    self._timer_added.notify()
            elif not admitted and t.running:
                t.running = 0
                t.evictions += 1
                self.touch(t.cluster_queue, -t.cpu)

    def due(self, stop: threading.Event) -> Iterator[tuple[Tracked, int]]:
        """Workloads whose runtime is over (and their admission), as the clock reaches them."""
        while not stop.is_set():
            with self._timer_added:
                wait = self._timers[0][0] - self.clock() if self._timers else 0.5
                if wait > 0:
                    self._timer_added.wait(min(wait, 0.5))
                    continue
                _, key, admission = heapq.heappop(self._timers)
            yield self.tracked[key], admission

    def finished_one(self, t: Tracked, admission: int) -> None:
        with self.lock:
            if t.running != admission:
                return
            t.running = 0
            t.finished_at = self.touch(t.cluster_queue, -t.cpu)
            self.finished += 1
            if self.finished == len(self.tracked):
                self.done.set()


def finish_workload(api: Api, run: LiveRun, t: Tracked, admission: int) -> None:
    """Mark `t` finished through the status subresource; on a conflict, read it again and retry
    while it is still admitted (an eviction in between shows up on the watch)."""
    path = _workload_path(t.key)
    while True:
        with run.lock:
            if t.running != admission or t.latest is None:
                return
            body = json.loads(json.dumps(t.latest))
        condition = {
            "type": "Finished",
            "status": "True",
            "reason": "Succeeded",
            "message": "Reached expected runtime",
            "lastTransitionTime": _rfc3339(time.time()),
        }
        body.setdefault("status", {}).setdefault("conditions", []).append(condition)
        status, answer = api.request("PUT", path + "/status", body)
        if status == 200:
            run.finished_one(t, admission)
            return
        if status != 409:
            raise RuntimeError(f"finish {t.key}: HTTP {status} {str(answer)[:200]}")
        status, current = api.request("GET", path)
        with run.lock:
            run.conflicts += 1
            if status != 200 or _condition(current, "Evicted") or not _condition(current, "Admitted"):
                return  # evicted: the watch tells (or told) the rest
            if t.running == admission:
                t.latest = current


def create_workload(api: Api, run: LiveRun, body: JSON, t: Tracked) -> None:
    namespace = t.key.split("/")[0]
    status, answer = api.request("POST", f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads", body)
    if status not in (201, 409):  # 409: a retried create whose first try went through
        raise RuntimeError(f"create {t.key}: HTTP {status} {str(answer)[:200]}")
    with run.lock:
        now = run.touch()
        t.created_at = now if t.admitted_at is None else min(now, t.admitted_at)


def _watch(api: Api, run: LiveRun, since: str, stop: threading.Event) -> None:
    """Follow every Workload (from `since`; again from the last version seen if the stream ends)."""
    while not stop.is_set():
        for event in api.stream(f"{WORKLOADS}?watch=true&resourceVersion={since}"):
            since = event["object"]["metadata"].get("resourceVersion", since)
            run.observe(event["object"])


class Driver:
    """Runs a scenario against the control plane on `port` with a pool of worker threads."""

    def __init__(self, spec: PerfScenario, port: int) -> None:
        self.spec, self.port = spec, port
        self.run = LiveRun(
            {
                a.workload.key: Tracked(
                    a.workload.key,
                    spec.local_queues[a.workload.local_queue_key].cluster_queue,
                    a.workload_class,
                    sum(ps.requests.get(RESOURCE, 0) * ps.count for ps in a.workload.pod_sets) / 1000,
                    a.runtime,
                )
                for a in spec.arrivals
            }
        )
        self._local = threading.local()
        self._stop = threading.Event()

    def _api(self) -> Api:
        if not hasattr(self._local, "api"):
            self._local.api = Api(self.port)
        api: Api = self._local.api
        return api

    def _create(self, body: JSON, t: Tracked) -> None:
        create_workload(self._api(), self.run, body, t)

    def _finish(self, t: Tracked, admission: int) -> None:
        finish_workload(self._api(), self.run, t, admission)

    def _guard(self, future: Future[None]) -> None:
        if future.exception() is not None:
            with self.run.lock:
                self.run.errors.append(repr(future.exception()))
            self._stop.set()

    def _thread(self, name: str, target: Any, *args: Any) -> threading.Thread:
        def body() -> None:
            try:
                target(*args)
            except Exception as exc:
                if not self._stop.is_set():  # failures while stopping are the stopping
                    with self.run.lock:
                        self.run.errors.append(f"{name}: {exc!r}")
                self._stop.set()

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread

    def __call__(self, limit: float) -> float:
        """Set up, create every workload on schedule, finish them as they run out; the start time."""
        api, run = Api(self.port), self.run
        items = [{"source": "setup", "index": i, "object": o} for i, o in enumerate(setup_objects(self.spec), 1)]
        status, answer = api.request("POST", APPLY, {"items": items})
        if status != 200:
            raise RuntimeError(f"setup: HTTP {status} {str(answer)[:300]}")
        _, listed = api.request("GET", WORKLOADS)
        watch = Api(self.port)
        self._thread("watch", _watch, watch, run, listed["metadata"]["resourceVersion"], self._stop)
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="request") as pool:

            def finish_due() -> None:
                for t, admission in run.due(self._stop):
                    pool.submit(self._finish, t, admission).add_done_callback(self._guard)

            self._thread("finish", finish_due)
            start = run.clock()
            deadline = start + limit
            for arrival in self.spec.arrivals:
                if self._stop.wait(max(0.0, start + arrival.at - run.clock())):
                    break
                body, t = workload_object(arrival), run.tracked[arrival.workload.key]
                pool.submit(self._create, body, t).add_done_callback(self._guard)
            while not run.done.is_set() and not self._stop.is_set() and run.clock() < deadline:
                run.done.wait(0.2)
            if not run.done.is_set() and not self._stop.is_set():
                run.errors.append(
                    f"stopped at --limit-seconds {limit:.0f}: {run.finished} of {len(run.tracked)} finished"
                )
            self._stop.set()
            watch.abort()
            pool.shutdown(wait=True, cancel_futures=True)
        return start


def run_live(spec: PerfScenario, scenario: str, *, limit_seconds: float = 900.0, port: int | None = None) -> JSON:
    """Run `spec` in real time against a fresh `flotilla up`; the figures Kueue's runner reports."""
    from flotilla.server.runner import free_port

    with tempfile.TemporaryDirectory(prefix="flotilla-kueue-perf-") as tmp:
        port = port or free_port()
        with control_plane(Path(tmp), port) as proc:
            driver = Driver(spec, port)
            cpu = (cpu_seconds(proc.pid), time.process_time())
            start = driver(limit_seconds)
            cpu_used = (cpu_seconds(proc.pid), time.process_time())
            run = driver.run
            if proc.poll() is not None:
                run.errors.insert(0, f"flotilla up exited with {proc.returncode}")
            if run.errors:
                run.errors.insert(1, f"flotilla up's log ends: {log_tail(Path(tmp) / 'up.log')}")
    result = summarize(spec, scenario, run, start)
    plane = None if cpu[0] is None or cpu_used[0] is None else cpu_used[0] - cpu[0]
    result.update(control_plane_cpu_s=plane, driver_cpu_s=cpu_used[1] - cpu[1])
    return result


def summarize(spec: PerfScenario, scenario: str, run: LiveRun, start: float) -> JSON:
    """Kueue's figures from what the run recorded."""
    waits: dict[str, list[float]] = {}
    for t in run.tracked.values():
        if t.admitted_at is not None and t.created_at is not None:
            waits.setdefault(t.workload_class, []).append((t.admitted_at - t.created_at) * 1000)
    span = (run.last_event or 0.0) - (run.first_event or 0.0)
    usage: dict[str, list[float]] = {}  # class -> [core-seconds, nominal cores]
    for cq, snap in spec.cluster_queues.items():
        used = usage.setdefault(spec.queue_classes[cq], [0.0, 0.0])
        used[0] += run.integral.get(cq, 0.0)
        used[1] += snap.quotas[(FLAVOR, RESOURCE)].nominal / 1000
    last_finish = max((t.finished_at for t in run.tracked.values() if t.finished_at is not None), default=start)
    return {
        "scenario": scenario,
        "mode": "live",
        "workloads": len(run.tracked),
        "cluster_queues": len(spec.cluster_queues),
        "wall_s": last_finish - start,
        "makespan_s": span,
        "evictions": sum(t.evictions for t in run.tracked.values()),
        "unfinished": len(run.tracked) - run.finished,
        "finish_conflicts": run.conflicts,
        "usage_pct": {c: (u[0] / (u[1] * span) * 100 if span > 0 else 0.0) for c, u in usage.items()},
        "avg_time_to_admission_ms": {c: sum(v) / len(v) for c, v in sorted(waits.items())},
        "errors": run.errors[:20],
    }
