"""Pod and container status as the kubelet reports it: container states, pod phase, conditions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flotilla.queue.workloads import rfc3339
from flotilla.runtime.process import ExitStatus

JSON = dict[str, Any]


def terminated(status: ExitStatus, started: str | None) -> JSON:
    reason = status.reason or ("Completed" if status.exit_code == 0 else "Error")
    out: JSON = {"exitCode": status.exit_code, "reason": reason, "finishedAt": status.finished_at}
    if started:
        out["startedAt"] = started
    if status.signal is not None:
        out["signal"] = status.signal
    if status.message:
        out["message"] = status.message
    return out


def container_status(container: Mapping[str, Any], state: JSON, ready: bool = False, restarts: int = 0) -> JSON:
    out: JSON = {"name": container["name"], "image": container.get("image", ""), "ready": ready}
    if ready:
        out["started"] = True
    return {**out, "restartCount": restarts, "state": state}


def settle_phase(status: JSON, policy: str, now: float) -> None:
    states = [cs.get("state") or {} for cs in status.get("containerStatuses") or []]
    if any("running" in s or "waiting" in s for s in states):
        status["phase"] = "Running"
        ready = all("running" in (cs.get("state") or {}) and cs.get("ready") for cs in status["containerStatuses"])
        pod_conditions(status, ready=ready, now=now)
        return
    codes = [int((s.get("terminated") or {}).get("exitCode", 1)) for s in states]
    if policy == "Always":
        return
    status["phase"] = "Succeeded" if all(c == 0 for c in codes) else "Failed"
    pod_conditions(status, ready=False, now=now)


def pod_conditions(status: JSON, ready: bool, now: float) -> None:
    stamp = rfc3339(now)
    wanted = {"PodScheduled": True, "Initialized": True, "ContainersReady": ready, "Ready": ready}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    for ctype, value in wanted.items():
        text = "True" if value else "False"
        c = conditions.get(ctype)
        if c is None or c.get("status") != text:
            conditions[ctype] = {"type": ctype, "status": text, "lastTransitionTime": stamp}
    status["conditions"] = list(conditions.values())
