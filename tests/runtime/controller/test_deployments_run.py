"""Deployments of real HTTP servers: one loopback address per pod, readiness probes, restarts
after a crash, liveness restarts, scaling and rolling updates."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import httpx

from .harness import Harness, alive

JSON = dict[str, Any]
SERVER = [sys.executable, "-m", "http.server", "8080", "--bind", "$(POD_IP)"]


def deployment(name: str, replicas: int, *, version: str = "v1", liveness: JSON | None = None) -> JSON:
    container: JSON = {
        "name": "web",
        "image": f"python:{version}",
        "command": SERVER,
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }
    if liveness:
        container["livenessProbe"] = liveness
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "version": version}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
            },
        },
    }


def pods(h: Harness, app: str) -> list[JSON]:
    return [p for p in h.list("pods") if (p["metadata"].get("labels") or {}).get("app") == app]


def ready(h: Harness, app: str) -> int:
    dep = h.get("deployments", app)
    return int(((dep or {}).get("status") or {}).get("readyReplicas") or 0)


def test_replicas_get_their_own_address_and_become_ready_through_the_probe(h: Harness) -> None:
    h.create(deployment("web", 2))
    h.until(lambda: ready(h, "web") == 2, timeout=30, message="2 ready replicas")
    live = pods(h, "web")
    ips = sorted(p["status"]["podIP"] for p in live)
    assert len(set(ips)) == 2 and all(ip.startswith("127.1.") for ip in ips)
    for ip in ips:  # each replica serves on its own address, the same port
        assert httpx.get(f"http://{ip}:8080/", timeout=5).status_code == 200
    dep = h.get("deployments", "web")
    assert dep is not None
    conditions = {c["type"]: c["status"] for c in dep["status"]["conditions"]}
    assert conditions == {"Available": "True", "Progressing": "True"}


def test_a_crashed_server_is_restarted_in_place(h: Harness) -> None:
    h.create(deployment("crash", 1))
    h.until(lambda: ready(h, "crash") == 1, timeout=30)
    (pod,) = pods(h, "crash")
    record = h.ctl.kubelet.records(pod)["web"]
    pid = h.ctl.kubelet.processes.container_pid(record)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        (p,) = pods(h, "crash")
        return bool(p["status"]["containerStatuses"][0]["restartCount"] == 1 and ready(h, "crash") == 1)

    h.until(restarted, timeout=30, message="restart")
    (p,) = pods(h, "crash")
    assert p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137


def test_scale_and_rolling_update(h: Harness) -> None:
    h.create(deployment("roll", 1))
    h.until(lambda: ready(h, "roll") == 1, timeout=30)
    dep = h.get("deployments", "roll")
    assert dep is not None
    h.service.update({**dep, "spec": {**dep["spec"], "replicas": 3}})
    h.until(lambda: ready(h, "roll") == 3, timeout=30, message="scaled to 3")
    old = {p["metadata"]["name"] for p in pods(h, "roll")}
    new = deployment("roll", 3, version="v2")
    dep = h.get("deployments", "roll")
    assert dep is not None
    h.service.update({**dep, "spec": new["spec"]})

    def rolled() -> bool:
        current = [p for p in pods(h, "roll") if not p["metadata"].get("deletionTimestamp")]
        return (
            len(current) == 3
            and all(p["metadata"]["labels"]["version"] == "v2" for p in current)
            and ready(h, "roll") == 3
        )

    h.until(rolled, timeout=60, message="rolled out")
    assert not old & {p["metadata"]["name"] for p in pods(h, "roll")}
    dep = h.get("deployments", "roll")
    assert dep is not None and dep["status"]["updatedReplicas"] == 3


def test_failing_liveness_probe_restarts_the_container(h: Harness) -> None:
    liveness = {"httpGet": {"path": "/missing", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    h.create(deployment("sick", 1, liveness=liveness))
    (pod,) = h.until(lambda: [p for p in pods(h, "sick") if (p.get("status") or {}).get("phase") == "Running"])
    first = h.until(lambda: h.ctl.kubelet.processes.container_pid(h.ctl.kubelet.records(pod)["web"]))

    def restarts() -> int:
        (p,) = pods(h, "sick")
        return int(p["status"]["containerStatuses"][0].get("restartCount") or 0)

    h.until(lambda: restarts() >= 1, timeout=30, message="liveness restart")
    assert first is not None and not alive(first)
