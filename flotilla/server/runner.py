"""Run the embedded control plane: open the store, build the app, serve it with uvicorn."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from flotilla.api.catalog import build_registry
from flotilla.pipelines.controller import PipelineController
from flotilla.queue.controller import Policy, QueueController
from flotilla.queue.types import QueueConfig
from flotilla.runtime.config import RuntimeConfig
from flotilla.runtime.controller import RuntimeController
from flotilla.server.app import create_app
from flotilla.slicer.backends import BackendChoice, GPUBackend, detect
from flotilla.slicer.inventory import EmulatedGPUConfig
from flotilla.store import Store
from flotilla.store.service import ResourceService
from flotilla.telemetry.checks import HealthConfig
from flotilla.telemetry.monitor import HealthMonitor

DEFAULT_PORT = 8470
DEFAULT_HOST = "127.0.0.1"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("flotilla.controlplane")


def _quiet_signals() -> dict[int, Any]:
    """SIGTERM and SIGINT handled by doing nothing (main thread only); the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


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
    """The store, the resource service, the queue controller, the runtime (GPU backend, pod
    scheduler, slicer, process runner), the health monitor, the pipeline controller and the HTTP app,
    wired together.

    `queue_config` configures admission (Kueue semantics); `queue_policy` replaces the admission
    policy (default: flotilla.queue.cycle.schedule, imported when the controller starts).
    `gpus` declares emulated GPUs (default: 1 node x 2 A100-40GB when no GPU is found);
    `gpu_backend` chooses: auto (NVML when a GPU is present), nvml or emulated. `runtime=False`
    leaves pods unrun (a control plane for tests or for objects only)."""

    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    queue_config: QueueConfig | None = None
    queue_policy: Policy | None = None
    gpus: EmulatedGPUConfig | None = None
    gpu_backend: BackendChoice = "auto"
    runtime_config: RuntimeConfig | None = None
    health_config: HealthConfig | None = None
    runtime: bool = True
    backend: GPUBackend | None = None
    gateway_port: int | None = None  # the inference gateway over this plane's InferencePools (None: off)
    gateway_profile: str = "default"
    service: ResourceService = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store.open(self.data_dir / "state.db")
        self.service = ResourceService(self.store, build_registry())
        self.service.ensure_namespace("default")
        self.queue = QueueController(self.service, self.queue_config, policy=self.queue_policy)
        self.runtime_controller: RuntimeController | None = None
        self.health: HealthMonitor | None = None
        if self.runtime:
            backend = self.backend or detect(self.gpus, self.gpu_backend)
            self.runtime_controller = RuntimeController(
                self.service, backend, self.data_dir / "runtime", self.runtime_config
            )
        logs = None if self.runtime_controller is None else self.runtime_controller.kubelet.read_log
        self.app = create_app(self.service, pod_logs=logs)
        registry = self.app.state.metrics.registry
        registry.register(self.queue.metrics)
        if self.runtime_controller is not None:
            self.health = HealthMonitor(
                self.service,
                self.health_config,
                ping_target=(self.host if self.host not in ("0.0.0.0", "::") else DEFAULT_HOST, self.port),
                busy=self.runtime_controller.gpu_busy,
            )
            self.runtime_controller.on_faults = self.health.trigger
            registry.register(self.health.collector())
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._gateway_server: uvicorn.Server | None = None
        self._gateway_thread: threading.Thread | None = None
        self.pipelines: PipelineController | None = None
        if self.runtime_controller is not None:
            self.pipelines = PipelineController(self.service, lambda: self.gateway_url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _config(self, log_level: str) -> uvicorn.Config:
        return uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level=log_level, access_log=False, lifespan="off"
        )

    def serve(self, log_level: str = "info") -> None:
        """Serve in the foreground until interrupted (Ctrl-C or SIGTERM), then stop the controllers and
        every pod process the runtime started.

        uvicorn re-raises the signal that stopped it once it has shut down, with the handler that was
        there before it ran: the default SIGTERM handler would end the process there and then, before
        the pods are stopped. So, while serving, SIGTERM and SIGINT have a handler that does nothing;
        uvicorn's own handlers (which it installs over them) do the stopping."""
        self._server = uvicorn.Server(self._config(log_level))
        self._start_controllers()
        self._start_gateway(log_level)
        previous = _quiet_signals()
        try:
            self._server.run()
        finally:
            self._stop_gateway()
            self._stop_controllers()
            self.store.close()
            _restore_signals(previous)

    def start_in_thread(self, log_level: str = "warning") -> ControlPlane:
        """Serve on a background thread (tests, demo); returns once the port accepts connections."""
        self._server = uvicorn.Server(self._config(log_level))
        self._start_controllers()
        self._start_gateway(log_level)
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
        self._stop_gateway()
        self._stop_controllers()
        self.store.close()

    @property
    def gateway_url(self) -> str | None:
        return None if self.gateway_port is None else f"http://{self.host}:{self.gateway_port}"

    def _start_gateway(self, log_level: str) -> None:
        """The inference gateway (the Python front door) in this process, routing to the ready pods
        of the InferencePools in this plane's store."""
        if self.gateway_port is None:
            return
        from flotilla.gateway.config import GatewayConfig
        from flotilla.gateway.dispatch import InferenceGateway
        from flotilla.gateway.endpoints import PoolEndpoints, StoreLister
        from flotilla.gateway.policy import default_scheduling
        from flotilla.gateway.server import create_gateway_app

        source = PoolEndpoints(StoreLister(self.store, self.service.registry), None)
        gateway = InferenceGateway(source, default_scheduling(), GatewayConfig(profile=self.gateway_profile))
        config = uvicorn.Config(
            create_gateway_app(gateway), host=self.host, port=self.gateway_port, log_level=log_level, access_log=False
        )
        self._gateway_server = uvicorn.Server(config)
        self._gateway_thread = threading.Thread(target=self._gateway_server.run, name="flotilla-gateway", daemon=True)
        self._gateway_thread.start()

    def _stop_gateway(self) -> None:
        if self._gateway_server is not None:
            self._gateway_server.should_exit = True
        if self._gateway_thread is not None:
            self._gateway_thread.join(10)
            self._gateway_thread = None

    def _start_controllers(self) -> None:
        """The controllers start now; the health monitor once the API listens (its node ping
        check connects to the API's port, which must not fail before the server is up)."""
        self.queue.start()
        if self.runtime_controller is not None:
            self.runtime_controller.start()
        if self.health is not None:
            threading.Thread(target=self._start_health, name="flotilla-health-start", daemon=True).start()
        if self.pipelines is not None:
            self.pipelines.start()

    def _start_health(self) -> None:
        while self._server is not None and not self._server.started:
            if self._server.should_exit:
                return
            time.sleep(0.02)
        if self.health is not None and self._server is not None and not self._server.should_exit:
            self.health.start()

    def _stop_controllers(self) -> None:
        """The controllers stop; the processes of running pods stop too (a local runtime has no
        node to outlive it on; after a crash, a restart finds them again)."""
        if self.pipelines is not None:
            self.pipelines.stop()
        if self.health is not None:
            self.health.stop()
        if self.runtime_controller is not None:
            self.runtime_controller.shutdown()
        self.queue.stop()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
