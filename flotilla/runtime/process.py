"""ProcessRuntime: start containers as local processes under a shim, poll, stop, re-adopt.

Each start spawns `python -I shim.py ... -- argv` in a new session (see shim.py), so the shim
leads a process group holding the container process and everything it forks. What identifies a
running container is a ProcessRecord (shim pid, process group, the pid/exit/log files); the
controller stores `record.to_dict()` in the pod's annotations, and a restarted control plane
builds a new ProcessRuntime and polls the same record: the shim keeps running without its parent,
and the exit file it writes is the container's status.

Stopping follows kubelet: SIGTERM to the container's main process (the runtime signals the shim,
which forwards it), `grace_seconds` to exit, then SIGKILL to the whole group.

Liveness of a shim that is not our child (a record from a previous run) is `kill(pid, 0)` plus
/proc/<pid>/stat (a zombie is dead) plus /proc/<pid>/cmdline naming the record's exit file (a
reused pid is not our shim).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.runtime import shim as shim_module
from flotilla.runtime.shim import group_members, proc_stat, rfc3339_now

SHIM_SCRIPT = Path(shim_module.__file__).resolve()
POLL_INTERVAL = 0.02
REAP_SECONDS = 1.0  # how long stop() waits for a SIGKILLed group to disappear


def _safe_name(value: str, what: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise ValueError(f'{what} "{value}" cannot be used as a path component')
    return value


@dataclass(frozen=True)
class Launch:
    """One container start: argv and env are final (env.py expanded them); log_path is appended to."""

    pod_uid: str
    container: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path


@dataclass(frozen=True)
class ProcessRecord:
    """What identifies a started container across control-plane restarts (JSON via to_dict/from_dict)."""

    pod_uid: str
    container: str
    shim_pid: int
    pgid: int
    pid_file: Path
    exit_file: Path
    log_file: Path
    started_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "podUID": self.pod_uid,
            "container": self.container,
            "shimPid": self.shim_pid,
            "pgid": self.pgid,
            "pidFile": str(self.pid_file),
            "exitFile": str(self.exit_file),
            "logFile": str(self.log_file),
            "startedAt": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            pod_uid=str(data["podUID"]),
            container=str(data["container"]),
            shim_pid=int(data["shimPid"]),
            pgid=int(data["pgid"]),
            pid_file=Path(data["pidFile"]),
            exit_file=Path(data["exitFile"]),
            log_file=Path(data["logFile"]),
            started_at=str(data["startedAt"]),
        )


@dataclass(frozen=True)
class ExitStatus:
    """A terminated container, as Kubernetes' ContainerStateTerminated reports it.

    reason: "Completed" (exit 0), "Error" (non-zero, or the shim died), "ContainerCannotRun".
    """

    exit_code: int
    signal: int | None
    reason: str
    message: str | None
    finished_at: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exitCode": self.exit_code, "signal": self.signal, "reason": self.reason}
        if self.message:
            out["message"] = self.message
        out["finishedAt"] = self.finished_at
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExitStatus:
        code = int(data["exitCode"])
        return cls(
            exit_code=code,
            signal=None if data.get("signal") is None else int(data["signal"]),
            reason=str(data.get("reason") or ("Completed" if code == 0 else "Error")),
            message=data.get("message"),
            finished_at=str(data.get("finishedAt") or rfc3339_now()),
        )


def read_exit_status(exit_file: Path) -> ExitStatus | None:
    """The exit file's status; None while it does not exist (it is written atomically)."""
    try:
        return ExitStatus.from_dict(json.loads(exit_file.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def _write_exit_if_absent(exit_file: Path, status: ExitStatus) -> None:
    """Record a status the shim could not write; never replaces one it did (link fails if present)."""
    tmp = exit_file.with_name(f".{exit_file.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(status.to_dict()) + "\n", encoding="utf-8")
    try:
        os.link(tmp, exit_file)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


class ProcessRuntime:
    """Starts shims under `root/shims/<pod uid>/<container>-<id>/` and tracks the ones it started.

    Thread-safe: the controller may poll and stop from several threads.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        # Shims this instance spawned and has not reaped yet: pid -> (process, record).
        self._children: dict[int, tuple[subprocess.Popen[bytes], ProcessRecord]] = {}

    # -- start -------------------------------------------------------------------------------------
    def start(self, launch: Launch) -> ProcessRecord:
        """Spawn the shim for one container; returns at once (the shim reports exec failures)."""
        if not launch.argv:
            raise ValueError("Launch.argv is empty")
        state = (
            self.root
            / "shims"
            / _safe_name(launch.pod_uid, "pod uid")
            / f"{_safe_name(launch.container, 'container name')}-{uuid.uuid4().hex[:12]}"
        )
        state.mkdir(parents=True)
        pid_file, exit_file = state / "pid", state / "exit.json"
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-I", str(SHIM_SCRIPT), "--exit-file", str(exit_file), "--log-file"]
        argv += [str(launch.log_path), "--pid-file", str(pid_file), "--cwd", str(launch.cwd)]
        # The shim's interpreter may coerce LC_CTYPE (PEP 538); the shim puts the given value back.
        lc_ctype = launch.env.get("LC_CTYPE")
        argv += ["--unset", "LC_CTYPE"] if lc_ctype is None else ["--set", f"LC_CTYPE={lc_ctype}"]
        argv += ["--", *launch.argv]
        with open(launch.log_path, "ab") as log:  # the shim's own errors (a traceback) land in the log
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=dict(launch.env),
                cwd=state,
                start_new_session=True,
            )
        pgid = popen.pid  # start_new_session: the shim leads its own session and process group
        record = ProcessRecord(
            pod_uid=launch.pod_uid,
            container=launch.container,
            shim_pid=popen.pid,
            pgid=pgid,
            pid_file=pid_file,
            exit_file=exit_file,
            log_file=launch.log_path,
            started_at=rfc3339_now(),
        )
        with self._lock:
            self._children[popen.pid] = (popen, record)
        return record

    # -- observe -----------------------------------------------------------------------------------
    def container_pid(self, record: ProcessRecord) -> int | None:
        """The container process's pid once the shim has started it."""
        try:
            return int(record.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def poll(self, record: ProcessRecord) -> ExitStatus | None:
        """None while the container runs; its ExitStatus once it has exited.

        A shim that died without writing the exit file (kill -9) cannot supervise its container
        any more: the orphaned group is SIGKILLed (as containerd does when a shim is lost) and the
        status is exit 137, reason "Error", recorded in the exit file so later polls agree.
        """
        self._reap_children()
        return self._status(record)

    def _status(self, record: ProcessRecord) -> ExitStatus | None:
        status = read_exit_status(record.exit_file)
        alive = self._shim_alive(record)
        if status is not None:
            return status
        if alive:
            return None
        status = read_exit_status(record.exit_file)  # written just before the shim exited
        if status is not None:
            return status
        self._kill_orphans(record)
        lost = ExitStatus(137, None, "Error", "the shim died; its processes were killed", rfc3339_now())
        _write_exit_if_absent(record.exit_file, lost)
        return read_exit_status(record.exit_file) or lost

    def running(self) -> list[ProcessRecord]:
        """Containers started by this instance that have not exited."""
        self._reap_children()
        with self._lock:
            records = [record for _, record in self._children.values()]
        return [r for r in records if self.poll(r) is None]

    # -- stop --------------------------------------------------------------------------------------
    def stop(self, record: ProcessRecord, grace_seconds: float) -> None:
        """SIGTERM the container, SIGKILL its group after `grace_seconds`; idempotent, never raises.

        Returns within grace_seconds + ~1 s.
        """
        self.stop_many([record], grace_seconds)

    def close(self, grace_seconds: float = 0.0) -> None:
        """Stop every container this instance started (all at once: one grace period in total)."""
        with self._lock:
            children = list(self._children.values())
        self.stop_many([record for _, record in children], grace_seconds)
        deadline = time.monotonic() + REAP_SECONDS
        for popen, _ in children:  # dead by now: reap them
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        self._reap_children()

    def forget(self, record: ProcessRecord) -> None:
        """Drop a finished record's pid and exit files (the log stays)."""
        for path in (record.pid_file, record.exit_file):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            record.exit_file.parent.rmdir()

    def stop_many(self, records: Iterable[ProcessRecord], grace_seconds: float) -> None:
        """stop() for several containers (a pod's) at once, sharing one grace period."""
        records = list(records)
        # A shim still alive is stopped even if an exit status exists (it is finishing, or the status
        # was recorded by mistake): stop must never leave a process behind.
        live = [r for r in records if self.poll(r) is None or self._shim_alive(r)]
        unsignalled = list(live)
        deadline = time.monotonic() + max(0.0, grace_seconds)
        while True:
            # The shim writes the pid file after installing its SIGTERM handler; a SIGTERM before
            # that would kill the shim itself instead of reaching the container.
            for record in [r for r in unsignalled if r.pid_file.exists()]:
                self._signal_shim(record, signal.SIGTERM)
                unsignalled.remove(record)
            live = [r for r in live if self._shim_alive(r)]
            if not live or time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        killed = [r for r in live if self._shim_alive(r)]
        for record in killed:
            with contextlib.suppress(OSError):
                os.killpg(record.pgid, signal.SIGKILL)
        # SIGKILL is delivered asynchronously: wait (briefly) until the groups are empty.
        deadline = time.monotonic() + REAP_SECONDS
        while live and time.monotonic() < deadline:
            live = [r for r in live if self._shim_alive(r) or group_members(r.pgid)]
            if live:
                time.sleep(POLL_INTERVAL)
        for record in killed:  # SIGKILLed with its container, the shim wrote nothing: record the kill
            if read_exit_status(record.exit_file) is None and not self._shim_alive(record):
                _write_exit_if_absent(record.exit_file, ExitStatus(137, signal.SIGKILL, "Error", None, rfc3339_now()))
        self._reap_children()  # and a shim that died on its own: its orphans are killed, its status recorded

    def _reap_children(self) -> None:
        """waitpid every exited shim of ours, so none lingers as a zombie; settle the ones that died
        without an exit file (kill their orphans, record the loss) while we still know them."""
        with self._lock:
            reaped = [record for popen, record in self._children.values() if popen.poll() is not None]
            for record in reaped:
                del self._children[record.shim_pid]
        for record in reaped:
            if read_exit_status(record.exit_file) is None:
                self._status(record)

    def _signal_shim(self, record: ProcessRecord, signum: int) -> None:
        """The shim forwards SIGTERM to the container's main process only (Kubernetes' PID 1)."""
        if self._shim_alive(record):
            with contextlib.suppress(OSError):
                os.kill(record.shim_pid, signum)

    def _kill_orphans(self, record: ProcessRecord) -> None:
        """SIGKILL the group of a dead shim, if its container process (or, before the pid file was
        written, any process) is still in it."""
        pid = self.container_pid(record)
        if pid is not None:
            try:
                in_group = os.getpgid(pid) == record.pgid
            except OSError:
                in_group = False
        else:
            in_group = bool(group_members(record.pgid))
        if not in_group or record.pgid == os.getpgid(0):
            return
        with contextlib.suppress(OSError):
            os.killpg(record.pgid, signal.SIGKILL)
        deadline = time.monotonic() + REAP_SECONDS  # SIGKILL is delivered asynchronously
        while group_members(record.pgid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)

    def _shim_alive(self, record: ProcessRecord) -> bool:
        pid = record.shim_pid
        with self._lock:
            child = self._children.get(pid)
            if child is not None and child[1] == record:
                if child[0].poll() is None:
                    return True
                del self._children[pid]  # reaped: from now on the pid may belong to another process
                return False
        # Not (or no longer) our child: the pid may have been reused since.
        if not _pid_alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True  # no /proc: trust kill(pid, 0)
        if not cmdline:  # empty while an exec is still in progress: too early to tell, trust kill(pid, 0)
            return True
        return os.fsencode(str(record.exit_file)) in cmdline.split(b"\0")


def _pid_alive(pid: int) -> bool:
    """The pid exists and is not a zombie (an orphan's zombie may wait long for its reaper)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = proc_stat(pid)
    return stat is None or stat[0] not in ("Z", "X")


def log_tail(path: Path, lines: int | None = None) -> str:
    """The last `lines` lines of a log (all of it for None); "" when there is no log yet.

    Reads backwards in 64 KiB blocks, so tailing a large log costs what the tail needs.
    """
    try:
        with open(path, "rb") as f:
            if lines is None:
                return f.read().decode("utf-8", "replace")
            if lines <= 0:
                return ""
            data, pos = b"", f.seek(0, os.SEEK_END)
            # One more newline than lines: the file's final newline ends the last line.
            while pos > 0 and data.count(b"\n") <= lines:
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
    except FileNotFoundError:
        return ""
    # Lines end at "\n" only: a progress bar's "\r" does not start a new line.
    trailing = data.endswith(b"\n")
    parts = data.split(b"\n")[: -1 if trailing else None]
    return (b"\n".join(parts[-lines:]) + (b"\n" if trailing else b"")).decode("utf-8", "replace")
