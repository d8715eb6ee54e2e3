"""The Envoy data plane: Envoy carries the requests, Flotilla's picker (ext_proc) says where each goes.

    plane = EnvoyDataPlane(StaticEndpoints(["http://127.0.0.1:8001"]), default_scheduling(), port=8081)
    await plane.start()     # the data layer (scrapes, KV events, topology resync), the picker on a free
                            # loopback port, then Envoy on host:port
    ...                     # clients talk to plane.url (Envoy); plane.gateway has the picker's state
    await plane.stop()      # Envoy, then the picker, then the data layer

`start` waits (up to `ready_timeout`) for every endpoint's first scrape before Envoy listens, so the
first requests are picked on real metrics. Envoy's bootstrap is made from the topology at start:

- failure mode: FailOpen when every pool fails open (an InferencePool's
  `spec.endpointPickerRef.failureMode`, or `--failure-mode` for static endpoints), else FailClose
  (GAIE's default) — the rule the front door applies to a request that spans several pools;
- fallback endpoints (FailOpen: where Envoy sends requests while the picker cannot answer): every
  endpoint of the topology at start. Envoy's bootstrap is static, so endpoints that appear later are
  picked but not in the fallback list until the plane restarts; FailOpen with no endpoint yet at
  start runs FailClose (logged);
- the body limit, request timeout and connect timeout are the gateway config's; the picker's
  message timeout (35 s) is above flow control's longest wait (30 s).

`create_plane_app(plane)` is the plane's own small HTTP app (`/metrics`, `/health`), served on a
separate port; its lifespan starts and stops the plane (as `create_gateway_app` does for the front door).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from flotilla.gateway.config import GatewayConfig
from flotilla.gateway.dispatch import InferenceGateway
from flotilla.gateway.endpoints import EndpointSource, FailureMode, Topology
from flotilla.gateway.envoy.config import EnvoyConfig
from flotilla.gateway.envoy.extproc import ExtProcServer, serve_extproc
from flotilla.gateway.envoy.launcher import EnvoyProcess, start_envoy
from flotilla.gateway.envoy.picker import EnvoyPicker
from flotilla.gateway.policy import Scheduling

log = logging.getLogger("flotilla.gateway.envoy")
PICKER_HOST = "127.0.0.1"  # the picker's gRPC is plaintext: loopback only


def failure_mode_of(topology: Topology) -> FailureMode:
    """FailOpen when every pool fails open (and there is one), else FailClose."""
    pools = list(topology.pools.values())
    return "FailOpen" if pools and all(p.failure_mode == "FailOpen" for p in pools) else "FailClose"


def check_ip_addresses(addresses: list[str]) -> None:
    """Envoy connects to `ip:port` only (the picked address and the fallback cluster): no host names."""
    for address in addresses:
        host = address.rpartition(":")[0].strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"endpoint {address}: the Envoy data plane needs IP addresses (e.g. 127.0.0.1:8000), not host names"
            ) from None


class EnvoyDataPlane:
    """Envoy on `host:port` in front of the endpoints of `source`, Flotilla's picker beside it."""

    def __init__(
        self,
        source: EndpointSource,
        scheduling: Scheduling,
        config: GatewayConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        envoy_binary: str | os.PathLike[str] | None = None,
        envoy_concurrency: int = 2,
        message_timeout_s: float = 35.0,
        access_log: bool = False,
        ready_timeout: float = 5.0,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.gateway = InferenceGateway(source, scheduling, config)
        self.picker = EnvoyPicker(self.gateway)
        self.host, self.port = host, port
        self.on_exit = on_exit  # called when Envoy exits on its own
        self._binary = envoy_binary
        self._concurrency = envoy_concurrency
        self._message_timeout = message_timeout_s
        self._access_log = access_log
        self._ready_timeout = ready_timeout
        self.extproc: ExtProcServer | None = None
        self.envoy: EnvoyProcess | None = None
        self.envoy_config: EnvoyConfig | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop the picker runs on
        self.exit_code: int | None = None  # Envoy's, when it exited on its own
        self._done = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._gateway_started = False

    @property
    def url(self) -> str:
        """Envoy's listener, `http://host:port` (the OpenAI base URL is this plus `/v1`)."""
        assert self.envoy is not None, "start the plane first"
        return self.envoy.url

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._done.clear()
        try:
            await self.gateway.start()
            self._gateway_started = True
            await self.gateway.data.wait_scraped(self._ready_timeout)
            self.extproc = await serve_extproc(self.picker, PICKER_HOST, 0)
            self.envoy_config = self.build_envoy_config(self.extproc.address)
            self.envoy = await asyncio.to_thread(
                start_envoy, self.envoy_config, binary=self._binary, concurrency=self._concurrency
            )
        except BaseException:
            await self.stop()
            raise
        self._watch = asyncio.create_task(self._watch_envoy(), name="envoy watch")
        mode, picker = self.envoy_config.failure_mode, self.extproc.address
        log.info("Envoy on %s (%s), endpoint picker on %s", self.envoy.url, mode, picker)

    def build_envoy_config(self, picker_address: str) -> EnvoyConfig:
        """Envoy's bootstrap for the current topology (see the module docstring)."""
        topology, config = self.gateway.topology, self.gateway.config
        fallback = sorted(e.address for e in topology.endpoints())
        check_ip_addresses(fallback)
        mode = failure_mode_of(topology)
        if mode == "FailOpen" and not fallback:
            log.warning("the pools fail open but have no endpoint yet: Envoy has no fallback and fails closed")
            mode = "FailClose"
        return EnvoyConfig(
            picker_address=picker_address,
            failure_mode=mode,
            fallback_endpoints=tuple(fallback) if mode == "FailOpen" else (),
            listen_host=self.host,
            listen_port=self.port,
            max_request_body_bytes=config.max_body_bytes,
            message_timeout_s=self._message_timeout,
            request_timeout_s=config.request_timeout,
            connect_timeout_s=config.connect_timeout,
            access_log=self._access_log,
        )

    async def stop(self) -> None:
        """Stop Envoy (no new requests), then the picker, then the data layer. Idempotent."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        if self.envoy is not None:
            envoy, self.envoy = self.envoy, None
            await asyncio.to_thread(envoy.stop)
        if self.extproc is not None:
            extproc, self.extproc = self.extproc, None
            await extproc.stop(0.5)
        if self._gateway_started:
            self._gateway_started = False
            await self.gateway.stop()
        self._done.set()

    async def wait(self) -> int | None:
        """Until the plane is stopped, or Envoy exits on its own; Envoy's exit code in that case."""
        await self._done.wait()
        return self.exit_code

    async def serve(self) -> int | None:
        """Start, serve until stopped (or Envoy exits), stop; Envoy's exit code if it died."""
        await self.start()
        try:
            return await self.wait()
        finally:
            await self.stop()

    async def _watch_envoy(self) -> None:
        while self.envoy is not None:
            code = self.envoy.process.poll()
            if code is not None:
                log.error("Envoy exited with code %s:\n%s", code, self.envoy.log_tail())
                self.exit_code = code
                self._done.set()
                if self.on_exit is not None:
                    self.on_exit()
                return
            await asyncio.sleep(0.5)

    # -- what the plane's own HTTP app shows --------------------------------------------------------
    def health(self) -> dict[str, Any]:
        gw = self.gateway
        endpoints = gw.topology.endpoints()
        return {
            "status": "ok" if self.envoy is not None and self.exit_code is None else "stopped",
            "data_plane": "envoy",
            "envoy": self.envoy.url if self.envoy is not None else None,
            "picker": self.extproc.address if self.extproc is not None else None,
            "failure_mode": self.envoy_config.failure_mode if self.envoy_config is not None else None,
            "pools": {p.name: len(p.endpoints) for p in gw.topology.pools.values()},
            "endpoints": len(endpoints),
            "fresh_endpoints": sum(1 for e in endpoints if gw.data.metrics(e.address).fresh),
        }

    def metrics_exposition(self) -> bytes:
        gw = self.gateway
        gw.metrics.observe_pools(gw.topology.pools.values(), gw.data.metrics, gw.data.in_flight)
        return gw.metrics.exposition()


def create_plane_app(plane: EnvoyDataPlane) -> FastAPI:
    """`GET /metrics` (the picker's series, GAIE's names) and `GET /health`; the lifespan runs the plane."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await plane.start()
        try:
            yield
        finally:
            await plane.stop()

    app = FastAPI(title="Flotilla endpoint picker", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.plane = plane

    @app.get("/health")
    async def health() -> JSONResponse:
        body = plane.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(plane.metrics_exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
