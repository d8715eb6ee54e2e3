"""Run the embedded control plane: open the store, build the app, serve it with uvicorn."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from flotilla.api.catalog import build_registry
from flotilla.queue.controller import Policy, QueueController
from flotilla.queue.types import QueueConfig
from flotilla.server.app import create_app
from flotilla.store import Store
from flotilla.store.service import ResourceService

DEFAULT_PORT = 8470
DEFAULT_HOST = "127.0.0.1"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("flotilla.controlplane")


def default_data_dir() -> Path:
    """`$FLOTILLA_DATA_DIR`, else `$XDG_DATA_HOME/flotilla`, else `~/.local/share/flotilla`."""
    if env := os.environ.get("FLOTILLA_DATA_DIR"):
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "flotilla"


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ControlPlane:
    """The store, the resource service, the queue controller and the HTTP app, wired together.

    `queue_config` configures admission (Kueue semantics); `queue_policy` replaces the admission
    policy (default: flotilla.queue.cycle.schedule, imported when the controller starts)."""

    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    queue_config: QueueConfig | None = None
    queue_policy: Policy | None = None
    service: ResourceService = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store.open(self.data_dir / "state.db")
        self.service = ResourceService(self.store, build_registry())
        self.service.ensure_namespace("default")
        self.queue = QueueController(self.service, self.queue_config, policy=self.queue_policy)
        self.app = create_app(self.service)
        self.app.state.metrics.registry.register(self.queue.metrics)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _config(self, log_level: str) -> uvicorn.Config:
        return uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level=log_level, access_log=False, lifespan="off"
        )

    def serve(self, log_level: str = "info") -> None:
        """Serve in the foreground until interrupted (Ctrl-C or SIGTERM)."""
        self._server = uvicorn.Server(self._config(log_level))
        self.queue.start()
        try:
            self._server.run()
        finally:
            self.queue.stop()
            self.store.close()

    def start_in_thread(self, log_level: str = "warning") -> ControlPlane:
        """Serve on a background thread (tests, demo); returns once the port accepts connections."""
        self._server = uvicorn.Server(self._config(log_level))
        self.queue.start()
        self._thread = threading.Thread(target=self._server.run, name="flotilla-api", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the control plane failed to start on {self.url}")
            self._thread.join(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.queue.stop()
        self.store.close()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
