"""The front: an OpenAI API in front of llama.cpp's server, with vLLM's `/metrics`.

Requests are checked here (JSON body, model name, size) and forwarded unchanged to llama.cpp;
streams are passed through chunk by chunk as they arrive (each SSE event is also parsed, after its
arrival time is taken, for TTFT and inter-token latency). Errors use OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`:

| status | when                                                            | code                      |
|--------|-----------------------------------------------------------------|---------------------------|
| 400    | body is not a JSON object, or llama.cpp rejects the request     | `invalid_json`, ...       |
| 404    | `model` is not the served model; unknown path                   | `model_not_found`         |
| 413    | prompt longer than the KV cache                                 | `context_length_exceeded` |
| 413    | body over the size limit (16 MiB)                               | `request_too_large`       |
| 503    | the model is still loading (or failed to load); engine gone     | `model_not_ready`         |
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flotilla.serving.llm.translate import RequestObserver, SseSplitter, engine_state, parse_exposition
from flotilla.serving.vllm_metrics import CONTENT_TYPE, VllmMetrics

MAX_BODY_BYTES = 16 * 1024 * 1024
UPSTREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=3600.0, write=60.0, pool=None)
SCRAPE_TIMEOUT = 5.0


@dataclass
class FrontState:
    """What the front knows: the served model, its metrics, and the engine's URL once it is ready."""

    served_name: str
    kv_capacity: int
    metrics: VllmMetrics
    upstream: str | None = None
    error: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    created: int = field(default_factory=lambda: int(time.time()))
    clock: Callable[[], float] = time.monotonic

    @property
    def ready(self) -> bool:
        return self.upstream is not None


def openai_error(
    status: int, message: str, type_: str, code: str | None = None, param: str | None = None
) -> JSONResponse:
    """OpenAI's error body with `status`."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def not_ready(state: FrontState) -> JSONResponse:
    message = f"model {state.served_name!r} failed to load: {state.error}" if state.error else "the model is loading"
    return openai_error(503, message, "server_error", "model_not_ready")


def upstream_error(status: int, raw: bytes, prompt_param: str = "messages") -> JSONResponse:
    """llama.cpp's error -> OpenAI's shape; its context-size error becomes 413 (naming `prompt_param`)."""
    try:
        err = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    if not isinstance(err, dict):
        err = {}
    message = str(err.get("message") or raw.decode("utf-8", "replace")[:500] or f"llama.cpp answered {status}")
    if err.get("type") == "exceed_context_size_error":
        return openai_error(413, message, "invalid_request_error", "context_length_exceeded", prompt_param)
    if 400 <= status < 500:
        return openai_error(status, message, "invalid_request_error", str(err.get("type") or "") or None)
    return openai_error(status if status >= 500 else 500, message, "server_error")


def create_app(state: FrontState, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The front's app over `state`; `transport` replaces the network (tests)."""
    clients: list[httpx.AsyncClient] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # No keep-alive to llama.cpp: its HTTP server closes idle connections on its own schedule, and a
        # request sent on one it has just closed fails; a new loopback connection costs well under 1 ms.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT, limits=limits, transport=transport) as client:
            clients.append(client)
            yield
            clients.clear()

    app = FastAPI(title="Flotilla LLM server", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.front = state

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return openai_error(exc.status_code, str(exc.detail), "invalid_request_error", code)

    @app.get("/health")
    async def health() -> Response:
        """200 once the model is loaded; 503 before (or when it failed to load)."""
        return JSONResponse({"status": "ok"}) if state.ready else not_ready(state)

    @app.get("/v1/models")
    async def models() -> Response:
        if not state.ready:
            return not_ready(state)
        card = {
            "id": state.served_name,
            "object": "model",
            "created": state.created,
            "owned_by": "flotilla",
            "root": state.served_name,
            "parent": None,
            "max_model_len": state.kv_capacity,
        }
        return JSONResponse({"object": "list", "data": [card]})

    @app.get("/metrics")
    async def metrics() -> Response:
        """vLLM's metrics; the engine gauges are read from llama.cpp at each scrape."""
        if state.ready and clients:
            await refresh_engine_state(state, clients[0])
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await proxy(state, clients, request, "/v1/chat/completions")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await proxy(state, clients, request, "/v1/completions")

    return app


async def refresh_engine_state(state: FrontState, client: httpx.AsyncClient) -> None:
    """Set running/waiting/KV usage from llama.cpp's `/metrics` and `/slots`; keep the last values on failure."""
    try:
        got_metrics, got_slots = await asyncio.gather(
            client.get(f"{state.upstream}/metrics", timeout=SCRAPE_TIMEOUT),
            client.get(f"{state.upstream}/slots", timeout=SCRAPE_TIMEOUT),
        )
        got_metrics.raise_for_status()
        slots: Any = got_slots.json() if got_slots.status_code == 200 else []
        current = engine_state(
            parse_exposition(got_metrics.text), slots if isinstance(slots, list) else [], state.kv_capacity
        )
    except (httpx.HTTPError, ValueError):
        return
    state.metrics.set_state(current.running, current.waiting, current.kv_usage)


async def proxy(state: FrontState, clients: list[httpx.AsyncClient], request: Request, path: str) -> Response:
    """Check the request, forward it to llama.cpp and record its metrics."""
    if not state.ready or not clients:
        return not_ready(state)
    raw = await request.body()
    if len(raw) > state.max_body_bytes:
        message = f"request body of {len(raw)} bytes is over the limit of {state.max_body_bytes}"
        return openai_error(413, message, "invalid_request_error", "request_too_large")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return openai_error(400, f"the request body is not valid JSON: {exc}", "invalid_request_error", "invalid_json")
    if not isinstance(body, dict):
        return openai_error(400, "the request body must be a JSON object", "invalid_request_error", "invalid_json")
    model = body.get("model")
    if model is not None and model != state.served_name:
        message = f"The model `{model}` does not exist; this server serves `{state.served_name}`."
        return openai_error(404, message, "invalid_request_error", "model_not_found", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        return openai_error(400, "`stream` must be true or false", "invalid_request_error", None, "stream")

    observer = RequestObserver(state.metrics, state.clock)
    client = clients[0]
    upstream = client.build_request(
        "POST", f"{state.upstream}{path}", content=raw, headers={"Content-Type": "application/json"}
    )
    try:
        response = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        return openai_error(503, f"the engine is unavailable: {exc}", "server_error", "model_not_ready")
    if response.status_code != 200:
        error_body = await response.aread()
        await response.aclose()
        return upstream_error(response.status_code, error_body, "prompt" if path == "/v1/completions" else "messages")
    if not stream:
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            observer.on_body(parsed)
        observer.finish()
        return Response(content, media_type="application/json")
    return StreamingResponse(
        passthrough(response, observer, state.clock),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def passthrough(
    response: httpx.Response, observer: RequestObserver, clock: Callable[[], float]
) -> AsyncIterator[bytes]:
    """llama.cpp's SSE bytes, each chunk yielded as it arrives; a stream cut short counts as aborted.

    A chunk is parsed before it is yielded: a client that closes right after the last event (the
    OpenAI client does, on `[DONE]`) has still received a complete response."""
    splitter = SseSplitter()
    try:
        async for chunk in response.aiter_raw():
            now = clock()
            for payload in splitter.feed(chunk):
                observer.on_event(payload, now)
            yield chunk
    finally:
        observer.finish(aborted=not observer.complete)
        with anyio.CancelScope(shield=True):  # closing the upstream stream is what stops llama.cpp's generation
            await response.aclose()
