"""Small builders for gateway tests: servers on loopback threads, a fake vLLM, a server that dies.

with serve(fake_vllm(state)) as url: ...                # any ASGI app on a free loopback port
fake = FakeVllm("a"); with fake.serve(): fake.url      # a vLLM-shaped server with settable load
with DyingServer() as dead: ...                          # /metrics answers, inference drops the connection
with running_gateway(source, ...) as gw: gw.url, gw.gateway
topology(pool("ns/p", fake_a, fake_b, models={"m"}))    # a fixed Topology as an endpoint source
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from flotilla.gateway.config import GatewayConfig
from flotilla.gateway.dispatch import InferenceGateway
from flotilla.gateway.endpoints import EndpointSource, FailureMode, Objective, Pool, Topology
from flotilla.gateway.policy import Scheduling, default_scheduling
from flotilla.gateway.scheduling.types import DESTINATION_HEADER, Endpoint
from flotilla.gateway.server import create_gateway_app

MODEL = "fake-model"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn serving `app` on a background thread; `with` starts and stops it."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.address = f"{host}:{self.port}"
        config = uvicorn.Config(app, host=host, port=self.port, log_level="error", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def signal_exit(self) -> None:
        """Ask it to stop without waiting (stop several at once, then join each)."""
        self._server.should_exit = True

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@contextlib.contextmanager
def serving(*fakes: FakeVllm) -> Iterator[tuple[FakeVllm, ...]]:
    """Every fake on its own server; on exit they all stop at once."""
    with contextlib.ExitStack() as stack:
        for fake in fakes:
            stack.enter_context(fake.serve())

        def stop_all() -> None:
            for f in fakes:
                if f.server is not None:
                    f.server.signal_exit()

        stack.callback(stop_all)
        yield fakes


# -- a vLLM-shaped fake ----------------------------------------------------------------------------
@dataclass
class FakeVllm:
    """A model server whose load (waiting, running, kv) the test sets; it records every request.

    Chat/completions answer `{"served_by": name, "destination": <x-gateway-destination-endpoint>}`
    (non-streaming) or `chunks` SSE chunks (streaming), waiting `chunk_delay` between chunks and, when
    `gate` is set, after the first chunk until the gate opens. `delay` holds the answer back (headers
    included); a client that leaves meanwhile, or mid-stream, sets `cancelled`. Any other path answers
    `{"served_by": name}` (for HTTPRoute tests)."""

    name: str
    model: str = MODEL
    host: str = "127.0.0.1"
    port: int | None = None
    waiting: int = 0
    running: int = 0
    kv: float = 0.0
    delay: float = 0.0
    chunks: int = 3
    chunk_delay: float = 0.0
    gate: threading.Event | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)  # a stream was sent to its end
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ServerThread | None = None

    @property
    def address(self) -> str:
        assert self.server is not None, "start it first: with fake.serve(): ..."
        return self.server.address

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def endpoint(self, pool: str = "static") -> Endpoint:
        return Endpoint(self.name, self.address, pool)

    @contextlib.contextmanager
    def serve(self) -> Iterator[FakeVllm]:
        with ServerThread(fake_vllm_app(self), self.host, self.port) as server:
            self.server = server
            yield self

    def served(self) -> int:
        return sum(1 for r in self.requests if r["method"] == "POST")


def _metrics(fake: FakeVllm) -> str:
    labels = f'engine="0",model_name="{fake.model}"'
    return (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f"vllm:num_requests_running{{{labels}}} {fake.running}\n"
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f"vllm:num_requests_waiting{{{labels}}} {fake.waiting}\n"
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        f"vllm:kv_cache_usage_perc{{{labels}}} {fake.kv}\n"
    )


def fake_vllm_app(fake: FakeVllm) -> FastAPI:
    app = FastAPI()

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(_metrics(fake), media_type="text/plain")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": fake.model, "object": "model", "owned_by": "fake"}]}

    async def held_back(request: Request) -> bool:
        """Wait `delay`; True when the client left meanwhile."""
        deadline = time.monotonic() + fake.delay
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                fake.cancelled.set()
                return True
            await asyncio.sleep(0.01)
        return False

    async def stream(body: dict[str, Any]) -> AsyncIterator[bytes]:
        finished = False
        try:
            for i in range(fake.chunks):
                chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                if i == 0 and fake.gate is not None:
                    await asyncio.to_thread(fake.gate.wait, 5)
                if fake.chunk_delay:
                    await asyncio.sleep(fake.chunk_delay)
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 7, "completion_tokens": fake.chunks, "total_tokens": 7 + fake.chunks}
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"
            finished = True
            fake.finished.set()
        finally:
            if not finished:
                fake.cancelled.set()

    async def inference(request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw.startswith(b"{") else {}
        fake.requests.append(
            {"method": request.method, "path": request.url.path, "headers": dict(request.headers), "body": body}
        )
        if fake.delay and await held_back(request):
            return Response(status_code=499)
        if body.get("stream"):
            return StreamingResponse(stream(body), media_type="text/event-stream")
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        answer = {
            "object": "chat.completion",
            "model": body.get("model"),
            "served_by": fake.name,
            "destination": request.headers.get(DESTINATION_HEADER),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": usage,
        }
        return JSONResponse(answer)

    app.add_route("/{path:path}", inference, methods=["GET", "POST"])
    return app


# -- a server that dies before answering ----------------------------------------------------------
class DyingServer:
    """Answers GET /metrics (an idle vLLM) and GET /v1/models; closes the connection on anything else."""

    def __init__(self, model: str = MODEL) -> None:
        self.model = model
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dropped = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode()
                if line.startswith("GET /metrics"):
                    body = b'vllm:num_requests_waiting{engine="0"} 0\n'
                elif line.startswith("GET /v1/models"):
                    body = json.dumps({"object": "list", "data": [{"id": self.model}]}).encode()
                else:
                    self.dropped += 1
                    break
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        writer.close()

    def __enter__(self) -> DyingServer:
        self._thread.start()
        start = asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(5)
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


# -- gateways --------------------------------------------------------------------------------------
class FixedTopology:
    """An endpoint source answering one Topology (tests swap `current`)."""

    def __init__(self, current: Topology) -> None:
        self.current = current

    async def topology(self) -> Topology:
        return self.current


def pool(
    name: str,
    *fakes: FakeVllm,
    models: frozenset[str] | set[str] = frozenset(),
    failure_mode: FailureMode = "FailClose",
    addresses: tuple[str, ...] = (),
) -> Pool:
    endpoints = tuple(f.endpoint(name) for f in fakes) + tuple(Endpoint(a, a, name) for a in addresses)
    return Pool(name, endpoints, failure_mode, frozenset(models))


def topology(*pools: Pool, routes: tuple[Any, ...] = (), objectives: tuple[Objective, ...] = ()) -> FixedTopology:
    return FixedTopology(Topology({p.name: p for p in pools}, routes, objectives))


@dataclass
class RunningGateway:
    url: str
    gateway: InferenceGateway

    def scrape_metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics").text

    def wait_fresh(self, count: int, timeout: float = 5.0) -> None:
        """Until `count` endpoints have fresh metrics."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/health").json()["fresh_endpoints"] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} endpoints became fresh")
            time.sleep(0.02)

    def wait_scrape(self) -> None:
        """Until every endpoint has been scraped once more (the data layer saw the latest load)."""
        seen = self.gateway.data.scrapes
        deadline = time.monotonic() + 5
        while self.gateway.data.scrapes < seen + 2 * max(1, len(self.gateway.topology.endpoints())):
            if time.monotonic() > deadline:
                raise TimeoutError("no scrape happened")
            time.sleep(0.01)


@contextlib.contextmanager
def running_gateway(
    source: EndpointSource, scheduling: Scheduling | None = None, fresh: int = 0, **config: Any
) -> Iterator[RunningGateway]:
    """The gateway app on a loopback port, stopped on exit."""
    config.setdefault("seed", 7)
    gateway = InferenceGateway(source, scheduling or default_scheduling(), GatewayConfig(**config))
    with ServerThread(create_gateway_app(gateway)) as server:
        running = RunningGateway(server.url, gateway)
        if fresh:
            running.wait_fresh(fresh)
        yield running


def chat(model: str = MODEL, content: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}
