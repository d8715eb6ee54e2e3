"""A `flotilla up` of its own for live experiments, and a lean HTTP client of it.

The control plane runs as a separate process (its own interpreter, so its own GIL), started and
stopped by `control_plane()`. `Api` speaks HTTP/1.1 over one keep-alive connection with the
standard library's http.client: about a tenth of the CPU per request of an async httpx client,
which would make a load generator, not the control plane, the bottleneck.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

JSON = dict[str, Any]


# -- the control plane process ------------------------------------------------------------------------
@contextlib.contextmanager
def control_plane(data_dir: Path, port: int, ready_timeout: float = 60.0) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m flotilla up` on `port` with its state in `data_dir`, until the block ends (then
    SIGTERM, and SIGKILL if it has not stopped within 10 s). Its output goes to `data_dir/up.log`."""
    argv = [
        sys.executable,
        "-m",
        "flotilla",
        "up",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--gateway-port",
        "0",
    ]
    argv += ["--log-level", "warning"]
    with open(data_dir / "up.log", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"flotilla up exited with {proc.returncode}: {log_tail(data_dir / 'up.log')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"flotilla up was not ready within {ready_timeout:.0f}s: {log_tail(data_dir / 'up.log')}"
                )
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file ("" if it cannot be read)."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# -- talking to the control plane ---------------------------------------------------------------------
class Api:
    """JSON over one keep-alive HTTP/1.1 connection to the control plane on `port` (see the module
    docstring). One thread at a time."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self._port, self._timeout = port, timeout
        self._stream: http.client.HTTPConnection | None = None
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: JSON | None = None) -> tuple[int, Any]:
        """(status, parsed JSON body); reconnects and retries (twice) when the connection drops."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(3):
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
            except (OSError, http.client.HTTPException):
                self._conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def stream(self, path: str) -> Iterator[JSON]:
        """The lines of a watch stream, parsed, until the server ends it (or `abort()`)."""
        self._stream = conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=None)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"watch: HTTP {response.status} {response.read()[:200]!r}")
            rest = b""
            while chunk := response.read1(1 << 16):
                *lines, rest = (rest + chunk).split(b"\n")
                yield from (json.loads(line) for line in lines if line.strip())
        finally:
            conn.close()

    def abort(self) -> None:
        """End a stream being read in another thread."""
        stream = self._stream
        if stream is not None and stream.sock is not None:
            with contextlib.suppress(OSError):
                stream.sock.shutdown(socket.SHUT_RDWR)
