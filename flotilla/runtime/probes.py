"""Readiness and liveness probes, run as the kubelet runs them, on a thread of their own.

A probe (`httpGet`, `tcpSocket` or `exec`) runs every `periodSeconds` (default 10) after
`initialDelaySeconds`, with `timeoutSeconds` (default 1). `successThreshold` consecutive
successes (default 1) make it pass, `failureThreshold` consecutive failures (default 3) make it
fail. A readiness probe starts failed (not ready until it first passes); a liveness probe starts
passing (the container is restarted only after it fails). HTTP probes succeed on a status in
[200, 400); they go to the pod's IP (a loopback address) unless `host` is set to a loopback one:
a probe never leaves the machine. `exec` probes run their argv (no shell) with a timeout.

When a probe's outcome changes, `on_change` is called (the runtime then looks at the pod again).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("flotilla.probes")


@dataclass
class _Probe:
    pod_uid: str
    container: str
    kind: str  # "readiness" | "liveness"
    spec: Mapping[str, Any]
    host: str
    ports: Mapping[str, int]
    started: float
    next_at: float
    passing: bool
    successes: int = 0
    failures: int = 0
    last_error: str = field(default="")


def _port(value: Any, ports: Mapping[str, int]) -> int:
    if isinstance(value, int):
        return value
    if str(value).isdigit():
        return int(value)
    if value in ports:
        return ports[value]
    raise ValueError(f"no container port named {value!r}")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Prober:
    def __init__(self, on_change: Callable[[], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._on_change = on_change
        self._clock = clock
        self._probes: dict[tuple[str, str, str], _Probe] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- registration ----------------------------------------------------------------------------
    def watch(self, pod_uid: str, container: Mapping[str, Any], host: str) -> None:
        """Start probing a container (its readinessProbe and livenessProbe, if any)."""
        ports = {str(p["name"]): int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name")}
        now = self._clock()
        with self._lock:
            for kind in ("readiness", "liveness"):
                spec = container.get(f"{kind}Probe")
                if not spec:
                    continue
                start = now + float(spec.get("initialDelaySeconds", 0))
                self._probes[(pod_uid, container["name"], kind)] = _Probe(
                    pod_uid, container["name"], kind, spec, host, ports, now, start, passing=kind == "liveness"
                )
        self._ensure_thread()
        self._wake.set()

    def ensure(self, pod_uid: str, container: Mapping[str, Any], host: str) -> None:
        """Watch a container unless already watched (a restarted runtime finds running pods)."""
        with self._lock:
            known = any(k[0] == pod_uid and k[1] == container["name"] for k in self._probes)
        if not known and (container.get("readinessProbe") or container.get("livenessProbe")):
            self.watch(pod_uid, container, host)

    def forget(self, pod_uid: str, container: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._probes if k[0] == pod_uid and (container is None or k[1] == container)]:
                del self._probes[key]

    def ready(self, pod_uid: str, container: str) -> bool | None:
        """The readiness probe's outcome (None: the container has none)."""
        with self._lock:
            probe = self._probes.get((pod_uid, container, "readiness"))
            return None if probe is None else probe.passing

    def alive(self, pod_uid: str, container: str) -> bool:
        with self._lock:
            probe = self._probes.get((pod_uid, container, "liveness"))
            return True if probe is None else probe.passing

    def last_error(self, pod_uid: str, container: str, kind: str) -> str:
        with self._lock:
            probe = self._probes.get((pod_uid, container, kind))
            return "" if probe is None else probe.last_error

    # -- running ---------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="flotilla-probes", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            now = self._clock()
            with self._lock:
                due = [p for p in self._probes.values() if p.next_at <= now]
                upcoming = min((p.next_at for p in self._probes.values()), default=now + 1.0)
            changed = False
            for probe in due:
                ok, error = self._run(probe)
                changed |= self._record(probe, ok, error)
            if changed:
                self._on_change()
            self._wake.wait(max(0.01, min(upcoming - self._clock(), 1.0)) if not due else 0.01)
            self._wake.clear()

    def _record(self, probe: _Probe, ok: bool, error: str) -> bool:
        spec = probe.spec
        with self._lock:
            if self._probes.get((probe.pod_uid, probe.container, probe.kind)) is not probe:
                return False  # forgotten meanwhile
            probe.next_at = self._clock() + float(spec.get("periodSeconds", 10))
            probe.last_error = error
            before = probe.passing
            if ok:
                probe.successes, probe.failures = probe.successes + 1, 0
                if probe.successes >= int(spec.get("successThreshold", 1)):
                    probe.passing = True
            else:
                probe.failures, probe.successes = probe.failures + 1, 0
                if probe.failures >= int(spec.get("failureThreshold", 3)):
                    probe.passing = False
            return probe.passing != before

    def _run(self, probe: _Probe) -> tuple[bool, str]:
        spec, timeout = probe.spec, float(probe.spec.get("timeoutSeconds", 1))
        try:
            if "httpGet" in spec:
                get = spec["httpGet"]
                host = str(get.get("host") or probe.host)
                if not _loopback(host):
                    return False, f"probe host {host} is not a loopback address"
                scheme = str(get.get("scheme", "HTTP")).lower()
                url = f"{scheme}://{host}:{_port(get.get('port'), probe.ports)}{get.get('path', '/')}"
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                response = httpx.get(url, timeout=timeout, headers=headers, verify=False)
                ok = 200 <= response.status_code < 400
                return ok, "" if ok else f"HTTP probe failed with statuscode: {response.status_code}"
            if "tcpSocket" in spec:
                tcp = spec["tcpSocket"]
                host = str(tcp.get("host") or probe.host)
                if not _loopback(host):
                    return False, f"probe host {host} is not a loopback address"
                with socket.create_connection((host, _port(tcp.get("port"), probe.ports)), timeout=timeout):
                    return True, ""
            if "exec" in spec:
                argv = [str(a) for a in spec["exec"].get("command") or []]
                result = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
                return result.returncode == 0, "" if result.returncode == 0 else f"exit code {result.returncode}"
            return True, ""  # grpc probes are not run: treated as passing
        except (httpx.HTTPError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            return False, f"{type(exc).__name__}: {exc}"
