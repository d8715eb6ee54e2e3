"""What the Envoy tests run on loopback: fake model servers, a picker on its own thread, gates.

Upstream("a").start()        a uvicorn model server on a free port answering /v1/chat/completions
                             with its name and the body it got; `"stream": true` sends SSE: one
                             chunk, then waits for the request's gate (header x-test-gate), then more
PickerThread(pick).start()   serve_extproc on its own event loop thread; .stop() ends it
Gates                        named threading.Events that a test opens when it has seen a chunk
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from flotilla.gateway.envoy import ExtProcServer, PickDecision, PickFn, serve_extproc

GATE_HEADER = "x-test-gate"
GATE_WAIT_S = 10.0  # a bound, never a pause: the gate is opened by the test as soon as it can


class Gates:
    """Events by name, shared by the test thread and the upstream's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def get(self, name: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def open(self, name: str) -> None:
        self.get(name).set()

    def open_all(self) -> None:
        with self._lock:
            for event in self._events.values():
                event.set()


def sse(data: Mapping[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def model_server(name: str, gates: Gates) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        raw = await request.body()
        payload = json.loads(raw or b"{}")
        if not payload.get("stream"):
            return JSONResponse({"served_by": name, "body": raw.decode()})
        gate = gates.get(request.headers.get(GATE_HEADER, "none"))

        async def chunks() -> AsyncIterator[bytes]:
            yield sse({"served_by": name, "chunk": 1})
            opened = await asyncio.to_thread(gate.wait, GATE_WAIT_S)
            yield sse({"served_by": name, "chunk": 2, "gate_opened": opened})
            yield sse("[DONE]")

        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.post("/v1/wait")
    async def wait(request: Request) -> JSONResponse:
        gate = gates.get(request.headers.get(GATE_HEADER, "none"))
        opened = await asyncio.to_thread(gate.wait, GATE_WAIT_S)
        return JSONResponse({"served_by": name, "gate_opened": opened})

    return app


@dataclass
class Upstream:
    """A fake model server on 127.0.0.1, on its own thread."""

    name: str
    gates: Gates
    port: int = 0
    _server: uvicorn.Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Upstream:
        config = uvicorn.Config(model_server(self.name, self.gates), host="127.0.0.1", port=0, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"upstream-{self.name}", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"upstream {self.name} did not start")
            self._thread.join(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


class PickerThread:
    """serve_extproc on a private event loop thread, so sync tests can start and stop it."""

    def __init__(self, pick: PickFn, port: int = 0) -> None:
        self._pick = pick
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="picker", daemon=True)
        self.server: ExtProcServer | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return self.server.address

    def start(self) -> PickerThread:
        self._thread.start()
        self.server = self._call(serve_extproc(self._pick, "127.0.0.1", self._port))
        return self

    def stop(self) -> None:
        if self.server is not None:
            self._call(self.server.stop(0))
            self.server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(10)


@dataclass
class RecordingPicker:
    """Picks by the `x-pick` header (an upstream's name, `reject`, `fail`), else alternates; keeps
    every (headers, body) it was asked about."""

    upstreams: Mapping[str, str]
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    _turn: int = 0

    async def __call__(self, headers: Mapping[str, str], body: bytes) -> PickDecision:
        self.seen.append((dict(headers), body))
        choice = headers.get("x-pick")
        if choice == "reject":
            return PickDecision.reject(429, "the pool is saturated; retry later", headers={"retry-after": "1"})
        if choice == "fail":
            raise RuntimeError("picker broke")
        if choice is not None and choice in self.upstreams:
            return PickDecision.route(self.upstreams[choice], headers={"x-picked-by": "flotilla"})
        names = sorted(self.upstreams)
        self._turn += 1
        return PickDecision.route(self.upstreams[names[self._turn % len(names)]])
