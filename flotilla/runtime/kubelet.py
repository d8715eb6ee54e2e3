"""The node agent: runs a bound pod's containers as local processes and reports their state.

Like the kubelet, for every node of the embedded platform (all of them run on this host): the
containers of a pod start together once its devices are ready, each as `command + args` (argv,
never a shell string) under a supervisor (`flotilla.runtime.shim`), in the pod's sandbox, with
the environment Kubernetes would give it plus the device binding (`CUDA_VISIBLE_DEVICES` and
`NVIDIA_VISIBLE_DEVICES`: the MIG device UUIDs or whole-GPU UUIDs of its AllocationClaims).
Images are recorded, never pulled. A pod's processes are recorded in its sandbox
(`pods/<uid>/containers.json` under the runtime folder), so a restarted control plane finds them
again; the record never lives in the API object, where a tenant could point it at another
process.

Phases: Pending until started, Running while any container runs, then Succeeded (every container
exited 0) or Failed. restartPolicy OnFailure restarts a container that failed, Always any that
exited, after `restart_backoff x 2^restarts` seconds (capped at 300 s, as kubelet's CrashLoopBackOff).
Stopping a pod (deletion, preemption, eviction) sends SIGTERM to its process groups, then SIGKILL
after the grace period; it runs on a worker thread so a pass never waits for it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flotilla.queue.workloads import copy_json, parse_time, rfc3339
from flotilla.runtime.devices import visible_devices
from flotilla.runtime.env import EnvError, container_env, expand_argv
from flotilla.runtime.jobs import INDEX_KEY
from flotilla.runtime.podstatus import container_status, pod_conditions, settle_phase, terminated
from flotilla.runtime.probes import Prober
from flotilla.runtime.process import Launch, ProcessRecord, ProcessRuntime, log_tail
from flotilla.runtime.sandbox import Sandbox, SandboxError

JSON = dict[str, Any]
INIT = "init:"  # record keys of init containers
RECORDS = "containers.json"  # in the pod's sandbox: the runtime's own record, never the API's
DEVICES = "flotilla.dev/devices"
MAX_BACKOFF = 300.0
log = logging.getLogger("flotilla.kubelet")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def log_path(root: Path, namespace: str, pod: str, container: str) -> Path:
    """Where a container's output goes: derived from names only (never from an annotation)."""
    parts = [_SAFE.sub("_", p) for p in (namespace, pod, container)]
    return root / "logs" / parts[0] / parts[1] / f"{parts[2]}.log"


def _base_env() -> dict[str, str]:
    """What a process needs from the host to run at all: PATH (the venv's bin first), locale."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
    env = {"PATH": path}
    for k in ("LANG", "LC_ALL", "TZ"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


class Kubelet:
    def __init__(
        self,
        processes: ProcessRuntime,
        root: Path,
        clock: Callable[[], float],
        on_stopped: Callable[[], None],
        restart_backoff: float = 10.0,
    ) -> None:
        self.processes = processes
        self.root = root
        self._clock = clock
        self._on_stopped = on_stopped
        self._restart_backoff = restart_backoff
        self._stopper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="flotilla-stop")
        self.prober = Prober(on_stopped)
        self._stopping: set[str] = set()  # pod uids being stopped
        self._lock = threading.Lock()

    # -- starting ---------------------------------------------------------------------------------
    def start(
        self,
        pod: Mapping[str, Any],
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
        claims: Sequence[Mapping[str, Any]],
        pod_ip: str = "127.0.0.1",
    ) -> JSON:
        """Start every container of a bound pod at `pod_ip`; returns the pod with its new status and
        records. A configuration error leaves it Pending with the container waiting
        (CreateContainerConfigError)."""
        out: JSON = copy_json(dict(pod))
        meta, spec = out["metadata"], out["spec"]
        out.setdefault("status", {}).update(podIP=pod_ip, podIPs=[{"ip": pod_ip}], hostIP="127.0.0.1")
        try:
            sandbox = Sandbox.create(self.root, str(meta["uid"]), spec.get("volumes") or [], configmaps, secrets)
            inits = spec.get("initContainers") or []
            if inits:
                return self._start_init(out, 0, sandbox, configmaps, secrets, claims, {})
            return self._start_main(out, sandbox, configmaps, secrets, claims, {})
        except (EnvError, SandboxError) as exc:
            status = out.setdefault("status", {})
            status["phase"] = "Pending"
            waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            status["containerStatuses"] = [container_status(c, waiting) for c in spec["containers"]]
            return out

    def _start_main(
        self,
        out: JSON,
        sandbox: Sandbox,
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
        claims: Sequence[Mapping[str, Any]],
        recs: dict[str, ProcessRecord],
    ) -> JSON:
        """Start the app containers (after the init containers, if any, succeeded)."""
        meta, spec = out["metadata"], out["spec"]
        now = rfc3339(self._clock())
        launches = [self._launch(out, c, sandbox, configmaps, secrets, claims) for c in spec["containers"]]
        started = {launch.container: self.processes.start(launch) for launch in launches}
        self._save(str(meta["uid"]), {**recs, **started})
        meta.setdefault("annotations", {})
        devices = sorted({str(c["spec"]["gpuUUID"]) + ":" + str(c["spec"].get("profile")) for c in claims})
        if devices:
            meta["annotations"][DEVICES] = ",".join(devices)
        status = out.setdefault("status", {})
        status.update(phase="Running", startTime=status.get("startTime") or now)
        status.pop("reason", None)
        status.pop("message", None)
        running = {"running": {"startedAt": now}}
        for c in spec["containers"]:
            self.prober.watch(str(meta["uid"]), c, str(status.get("podIP") or "127.0.0.1"))
        status["containerStatuses"] = [
            container_status(c, running, ready=not c.get("readinessProbe")) for c in spec["containers"]
        ]
        pod_conditions(status, ready=all(cs["ready"] for cs in status["containerStatuses"]), now=self._clock())
        return out

    def _start_init(
        self,
        out: JSON,
        n: int,
        sandbox: Sandbox,
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
        claims: Sequence[Mapping[str, Any]],
        recs: dict[str, ProcessRecord],
    ) -> JSON:
        """Start init container `n` (they run one at a time, in order, before the app containers)."""
        spec, status = out["spec"], out.setdefault("status", {})
        container = spec["initContainers"][n]
        recs = {
            **recs,
            INIT + container["name"]: self.processes.start(
                self._launch(out, container, sandbox, configmaps, secrets, claims)
            ),
        }
        self._save(str(out["metadata"]["uid"]), recs)
        now = rfc3339(self._clock())
        previous = {s["name"]: s for s in status.get("initContainerStatuses") or []}
        initializing = {"waiting": {"reason": "PodInitializing"}}
        statuses = []
        for i, c in enumerate(spec["initContainers"]):
            if i < n:
                statuses.append(previous[c["name"]])
            elif i == n:
                restarts = int((previous.get(c["name"]) or {}).get("restartCount") or 0)
                statuses.append(container_status(c, {"running": {"startedAt": now}}, restarts=restarts))
            else:
                statuses.append(container_status(c, initializing))
        status["initContainerStatuses"] = statuses
        status["containerStatuses"] = [container_status(c, initializing) for c in spec["containers"]]
        status.update(phase="Pending", startTime=status.get("startTime") or now)
        return out

    def _sync_init(
        self,
        pod: Mapping[str, Any],
        recs: dict[str, ProcessRecord],
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
        claims: Sequence[Mapping[str, Any]],
    ) -> JSON | None:
        """Advance a pod still initialising: next init container, the app containers, a restart
        (restartPolicy OnFailure/Always) or failure (Never). None: nothing changed."""
        out: JSON = copy_json(dict(pod))
        spec, status = out["spec"], out.setdefault("status", {})
        inits = spec["initContainers"]
        n = sum(1 for c in inits if INIT + c["name"] in recs) - 1
        current = inits[n]
        result = self.processes.poll(recs[INIT + current["name"]])
        if result is None:
            return None
        cs = status["initContainerStatuses"][n]
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt")
        cs.update(state={"terminated": terminated(result, started)}, ready=result.exit_code == 0)
        sandbox = Sandbox.at(self.root, str(out["metadata"]["uid"]))
        try:
            if result.exit_code == 0:
                if n + 1 < len(inits):
                    return self._start_init(out, n + 1, sandbox, configmaps, secrets, claims, recs)
                return self._start_main(out, sandbox, configmaps, secrets, claims, recs)
            if (spec.get("restartPolicy") or "Always") == "Never":
                status.update(phase="Failed", reason="Init:Error", message=f"init container {current['name']} failed")
                return out
            cs["restartCount"] = int(cs.get("restartCount") or 0) + 1
            cs["lastState"] = cs.pop("state")
            return self._start_init(out, n, sandbox, configmaps, secrets, claims, recs)
        except (EnvError, SandboxError) as exc:
            cs["state"] = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            return out

    def _launch(
        self,
        pod: JSON,
        container: Mapping[str, Any],
        sandbox: Sandbox,
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
        claims: Sequence[Mapping[str, Any]],
    ) -> Launch:
        meta = pod["metadata"]
        extra = {"HOSTNAME": str(pod["spec"].get("hostname") or meta["name"]), "FLOTILLA_SANDBOX": str(sandbox.path)}
        index = (meta.get("annotations") or {}).get(INDEX_KEY)
        if index is not None:
            extra["JOB_COMPLETION_INDEX"] = str(index)
        devices = visible_devices(claims, container["name"])
        if devices:
            extra["CUDA_VISIBLE_DEVICES"] = extra["NVIDIA_VISIBLE_DEVICES"] = devices
        env = {**_base_env(), **container_env(pod, container, configmaps, secrets, extra)}
        argv = expand_argv(container.get("command"), container.get("args"), env)
        sandbox.mount(container)
        path = log_path(self.root, meta["namespace"], meta["name"], container["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        return Launch(
            pod_uid=str(meta["uid"]),
            container=container["name"],
            argv=argv,
            env=env,
            cwd=sandbox.workdir(container),
            log_path=path,
        )

    # -- records ----------------------------------------------------------------------------------
    def records(self, pod: Mapping[str, Any]) -> dict[str, ProcessRecord]:
        """The pod's processes, by container (empty before it started)."""
        path = Sandbox.at(self.root, str(pod["metadata"].get("uid"))).path / RECORDS
        try:
            raw = json.loads(path.read_text())
            return {name: ProcessRecord.from_dict(r) for name, r in raw.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError):
            log.warning("pod %s: unreadable %s", pod["metadata"].get("name"), path)
            return {}

    def started(self, pod: Mapping[str, Any]) -> bool:
        return bool(self.records(pod))

    def _save(self, uid: str, recs: Mapping[str, ProcessRecord]) -> None:
        path = Sandbox.at(self.root, uid).path / RECORDS
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: r.to_dict() for k, r in recs.items()}, sort_keys=True))
        os.replace(tmp, path)

    # -- watching ---------------------------------------------------------------------------------
    def sync(
        self,
        pod: Mapping[str, Any],
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
        claims: Sequence[Mapping[str, Any]],
    ) -> tuple[JSON | None, float | None]:
        """Poll a running pod's processes and restart what its restartPolicy says: (the pod with
        its new status, or None if nothing changed; when to look again for a restart in back-off)."""
        recs = self.records(pod)
        if not recs:
            return None, None
        if any(name.startswith(INIT) for name in recs) and not any(not name.startswith(INIT) for name in recs):
            return self._sync_init(pod, recs, configmaps, secrets, claims), None
        recs = {k: r for k, r in recs.items() if not k.startswith(INIT)}
        out: JSON = copy_json(dict(pod))
        status = out.setdefault("status", {})
        policy = out["spec"].get("restartPolicy") or "Always"
        statuses = {s["name"]: s for s in status.get("containerStatuses") or []}
        stopping = bool(out["metadata"].get("deletionTimestamp")) or status.get("reason") == "Evicted"
        changed = False
        wake: float | None = None
        now = self._clock()
        for name, rec in recs.items():
            cs = statuses.setdefault(name, {"name": name, "ready": False, "restartCount": 0, "state": {}})
            state = cs.get("state") or {}
            uid = str(out["metadata"]["uid"])
            if "running" in state:
                result = self.processes.poll(rec)
                if result is None:
                    container = next(c for c in out["spec"]["containers"] if c["name"] == name)
                    self.prober.ensure(uid, container, str(status.get("podIP") or "127.0.0.1"))  # after a restart
                    probed = self.prober.ready(uid, name)
                    ready = True if probed is None else probed
                    if cs.get("ready") != ready:
                        cs["ready"], changed = ready, True
                    if not self.prober.alive(uid, name) and not stopping:
                        log.info(
                            "pod %s container %s failed its liveness probe: restarting", out["metadata"]["name"], name
                        )
                        self.prober.forget(uid, name)
                        self._stopper.submit(
                            self.processes.stop, rec, float(out["spec"].get("terminationGracePeriodSeconds", 30))
                        )
                    continue
                cs["state"] = state = {"terminated": terminated(result, state["running"].get("startedAt"))}
                cs["ready"] = False
                changed = True
            term = state.get("terminated")
            if term is None and (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                term = (cs.get("lastState") or {}).get("terminated")
            if term is None or stopping or policy == "Never" or (policy == "OnFailure" and term.get("exitCode") == 0):
                continue
            delay = min(self._restart_backoff * 2 ** int(cs.get("restartCount") or 0), MAX_BACKOFF)
            restart_at = parse_time(term.get("finishedAt"), now) + delay
            if restart_at > now:
                wake = restart_at if wake is None else min(wake, restart_at)
                if "waiting" not in state:
                    message = f"back-off {delay:g}s restarting failed container={name} pod={out['metadata']['name']}"
                    cs.update(state={"waiting": {"reason": "CrashLoopBackOff", "message": message}}, lastState=state)
                    changed = True
                continue
            container = next(c for c in out["spec"]["containers"] if c["name"] == name)
            try:
                sandbox = Sandbox.at(self.root, str(out["metadata"]["uid"]))
                launch = self._launch(out, container, sandbox, configmaps, secrets, claims)
            except (EnvError, SandboxError) as exc:
                cs["state"] = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
                changed = True
                continue
            recs[name] = self.processes.start(launch)
            self.prober.forget(uid, name)
            self.prober.watch(uid, container, str(status.get("podIP") or "127.0.0.1"))
            self._save(str(out["metadata"]["uid"]), recs)
            cs.update(
                restartCount=int(cs.get("restartCount") or 0) + 1,
                ready=not container.get("readinessProbe"),
                state={"running": {"startedAt": rfc3339(now)}},
                lastState={"terminated": term},
            )
            changed = True
        if changed:
            status["containerStatuses"] = [
                statuses[c["name"]] for c in out["spec"]["containers"] if c["name"] in statuses
            ]
            if not stopping:
                settle_phase(status, policy, now)
        return (out if changed else None), wake

    def alive(self, pod: Mapping[str, Any]) -> bool:
        """Any of the pod's processes still running (or being stopped)."""
        uid = str(pod["metadata"].get("uid"))
        with self._lock:
            if uid in self._stopping:
                return True
        return any(self.processes.poll(r) is None for r in self.records(pod).values())

    # -- stopping ---------------------------------------------------------------------------------
    def stop(self, pod: Mapping[str, Any], grace: float | None = None) -> None:
        """Stop the pod's processes on a worker thread (SIGTERM, grace, SIGKILL); `on_stopped`
        is called when they are gone."""
        uid = str(pod["metadata"].get("uid"))
        recs = [r for r in self.records(pod).values() if self.processes.poll(r) is None]
        if not recs:
            return
        seconds = float(pod["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else grace)
        with self._lock:
            if uid in self._stopping:
                return
            self._stopping.add(uid)

        def run() -> None:
            try:
                for r in recs:
                    self.processes.stop(r, seconds)
            finally:
                with self._lock:
                    self._stopping.discard(uid)
                self._on_stopped()

        self._stopper.submit(run)

    def finish_stopped(self, pod: Mapping[str, Any], reason: str, message: str) -> JSON:
        """The pod's status once its processes were stopped from outside (eviction)."""
        out: JSON = copy_json(dict(pod))
        status = out.setdefault("status", {})
        for cs in status.get("containerStatuses") or []:
            state = cs.get("state") or {}
            if "running" in state:
                rec = self.records(pod).get(cs["name"])
                result = self.processes.poll(rec) if rec else None
                cs["state"] = {
                    "terminated": terminated(result, state["running"].get("startedAt"))
                    if result
                    else {"exitCode": 137, "reason": "Error", "finishedAt": rfc3339(self._clock())}
                }
                cs["ready"] = False
        status.update(phase="Failed", reason=reason, message=message)
        pod_conditions(status, ready=False, now=self._clock())
        return out

    def remove(self, pod: Mapping[str, Any]) -> None:
        """Forget a deleted pod: its probes, sandbox and logs go."""
        meta = pod["metadata"]
        self.prober.forget(str(meta.get("uid")))
        Sandbox.at(self.root, str(meta.get("uid"))).remove()
        logs = log_path(self.root, meta["namespace"], meta["name"], "x").parent
        for f in logs.glob("*.log"):
            f.unlink(missing_ok=True)
        if logs.exists():
            logs.rmdir()

    def read_log(self, namespace: str, pod: str, container: str, tail_lines: int | None = None) -> str | None:
        """A container's output so far (None when it never started)."""
        path = log_path(self.root, namespace, pod, container)
        return log_tail(path, tail_lines) if path.exists() else None

    def close(self, grace: float = 5.0) -> None:
        self.prober.close()
        self._stopper.shutdown(wait=True)
        self.processes.close(grace)
