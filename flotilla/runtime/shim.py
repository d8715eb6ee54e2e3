"""The per-container supervisor, like containerd-shim: it outlives the control plane that started it.

    python -I .../flotilla/runtime/shim.py --exit-file F --log-file L --pid-file P [--cwd D]
        [--unset NAME]... [--set NAME=VALUE]... -- argv...
    (or: python -m flotilla.runtime.shim ...)

The runtime starts the shim in a new session (`start_new_session=True`), so the shim leads a
process group; the container process is its child in that group and inherits the shim's
environment (the container's environment, computed by env.py). The shim:

1. spawns argv with stdout and stderr on the log file opened in append mode (the child writes
   straight to the file; nothing is copied) and writes the child's pid to the pid file;
2. forwards SIGTERM and SIGINT it receives to the child: the runtime signals the shim, not the
   group, so only the container's main process gets SIGTERM, as in Kubernetes (where it goes to
   PID 1 of the container);
3. when the child exits, SIGKILLs whatever is left in the group (Kubernetes tears the whole
   container down with its main process), then writes the exit file atomically (temp + replace):
   `{"exitCode": N, "signal": S | null, "finishedAt": "...Z"}`, with exitCode 128+S for a child
   killed by signal S, as Kubernetes reports it.

An argv that cannot be executed gives exitCode 127 (not found) or 126 (not executable, or any
other exec failure) with `"reason": "ContainerCannotRun"` and the error in `"message"` and the log.

The runtime runs this file as a script under `python -I` (isolated mode): the container's
PYTHONPATH/PYTHONHOME cannot break the shim, and no Flotilla import slows its start. Hence
stdlib only. `--unset NAME` and `--set NAME=VALUE` undo what the interpreter changed in its own
environment at startup (PEP 538 locale coercion sets LC_CTYPE=C.UTF-8 when the locale is C), so
the container sees exactly the environment it was given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

CONTAINER_CANNOT_RUN = "ContainerCannotRun"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def rfc3339_now() -> str:
    """The current UTC time as Kubernetes prints timestamps (seconds precision)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see either nothing or all of it (temp file + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, pgid) from /proc/<pid>/stat; None when the process or /proc is not there.

    The command name may contain spaces and parentheses, so fields are split after the last ')'.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[2])


def group_members(pgid: int, exclude: int | None = None) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, from /proc; [] where there is no /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    members = []
    for name in names:
        if not name.isdigit() or int(name) == exclude:
            continue
        stat = proc_stat(int(name))
        if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
            members.append(int(name))
    return members


def kill_leftovers(pgid: int, exclude: int) -> None:
    """SIGKILL every process left in the group but `exclude`; a few rounds catch forks in between."""
    for _ in range(20):
        members = group_members(pgid, exclude)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _cannot_run(exc: OSError, argv0: str, cwd: str | None) -> tuple[int, str]:
    """runc-like messages: 127 when the file is missing, 126 otherwise (shell conventions)."""
    if cwd is not None and exc.filename == cwd:
        return 127, f'chdir to working directory "{cwd}": {exc.strerror}'
    if isinstance(exc, FileNotFoundError):
        detail = "no such file or directory" if "/" in argv0 else "executable file not found in $PATH"
        return 127, f'exec: "{argv0}": {detail}'
    return 126, f'exec: "{argv0}": {exc.strerror or exc}'


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="flotilla-shim", description="Supervise one container process.")
    parser.add_argument("--exit-file", required=True, type=Path)
    parser.add_argument("--log-file", required=True, type=Path)
    parser.add_argument("--pid-file", required=True, type=Path)
    parser.add_argument("--cwd", default=None)
    parser.add_argument("--unset", action="append", default=[], metavar="NAME")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("the container's argv must follow --")
    split = argv.index("--")
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def main(argv: list[str] | None = None) -> int:
    """Run the container process to completion; return its exit code (0-255)."""
    args, command = _parse(sys.argv[1:] if argv is None else argv)
    if os.getpgid(0) != os.getpid():  # started without start_new_session: lead a group anyway
        with contextlib.suppress(OSError):
            os.setsid()
    for name in args.unset:
        os.environ.pop(name, None)
    for assignment in args.set:
        name, _, value = assignment.partition("=")
        os.environ[name] = value
    args.log_file.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(args.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    child: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not child:
            pending.append(signum)  # arrived before the child existed: deliver once it does
            return
        if child[0].returncode is None:
            with contextlib.suppress(OSError):
                os.kill(child[0].pid, signum)

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)  # not inherited as ignored (nohup) by the container

    result: dict[str, Any]
    try:
        child.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, cwd=args.cwd))
    except OSError as exc:
        code, message = _cannot_run(exc, command[0], args.cwd)
        os.write(log_fd, f"flotilla-shim: {message}\n".encode())
        result = {"exitCode": code, "signal": None, "reason": CONTAINER_CANNOT_RUN, "message": message}
    else:
        write_atomic(args.pid_file, f"{child[0].pid}\n")
        for signum in pending:
            forward(signum, None)
        returncode = child[0].wait()
        signum_or_none = -returncode if returncode < 0 else None
        code = 128 + signum_or_none if signum_or_none is not None else returncode
        result = {"exitCode": code, "signal": signum_or_none}
    kill_leftovers(os.getpgid(0), exclude=os.getpid())
    result["finishedAt"] = rfc3339_now()
    write_atomic(args.exit_file, json.dumps(result) + "\n")
    os.close(log_fd)
    return int(result["exitCode"]) & 0xFF


if __name__ == "__main__":
    sys.exit(main())
