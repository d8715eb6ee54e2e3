"""The emulator's HTTP server: vLLM's OpenAI-compatible API over an EngineDriver.

    POST /v1/chat/completions   POST /v1/completions     (stream or not; usage with cached_tokens)
    GET  /v1/models             GET  /health             GET /metrics (vLLM's names)   GET /version
    GET  /v1/kv_events?since=SEQ&timeout=S   KV-cache events, long-poll (see kvevents.py)
    POST /reset_prefix_cache    GET  /v1/emulator        the engine's configuration and capacity

Errors are OpenAI-shaped: 400 invalid request, 404 unknown model (or LoRA adapter), 413 prompt plus
max_tokens over max_model_len (vLLM answers this with 400), 429 when the engine's waiting queue
holds --max-queue-len requests. A client's `X-Request-Id` header names the request (echoed back).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from flotilla.serving.emulator import protocol as p
from flotilla.serving.emulator.driver import EngineDriver, QueueFullError, RequestHandle
from flotilla.serving.emulator.engine import ContextLengthError
from flotilla.serving.emulator.lora import UnknownLoraError
from flotilla.serving.emulator.tokenizer import chat_prompt
from flotilla.serving.vllm_metrics import CONTENT_TYPE

VLLM_VERSION = "0.11.0"  # the vLLM whose behaviour and calibration the emulator follows


def create_app(driver: EngineDriver, gpu: str = "") -> FastAPI:
    """The app for the driver's engine, served as `engine.model_name`; its lifespan runs the engine loop."""
    engine = driver.engine
    base = engine.model_name
    tokenizer = engine.tokenizer
    created_at = int(time.time())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        driver.start()
        yield
        await driver.stop()

    app = FastAPI(title="Flotilla vLLM engine emulator", lifespan=lifespan)
    app.state.driver = driver

    @app.exception_handler(p.APIError)
    async def api_error(_request: Request, exc: p.APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    def resolve_model(name: str | None) -> str | None:
        """None for the base model, the adapter name for a LoRA; 404 otherwise."""
        if name is None or name in (base, engine.perf.model.name, engine.perf.model.hf_id):
            return None
        if name in engine.loras.adapters:
            return name
        raise p.APIError(404, f"The model `{name}` does not exist.", "NotFoundError", "model")

    async def parse(request: Request, model: type[p._Common]) -> Any:
        try:
            return model.model_validate(await request.json())
        except json.JSONDecodeError as exc:
            raise p.bad_request(f"the body is not valid JSON: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise p.bad_request(f"{where}: {first['msg']}", where or None) from None

    def submit(
        request: Request, prefix: str, body: p._Common, prompt: list[int], max_tokens: int | None
    ) -> RequestHandle:
        if body.n != 1:
            raise p.bad_request("n > 1 is not supported by the emulator", "n")
        lora = resolve_model(body.model)
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        rid = f"{prefix}-{rid}"
        if rid in engine.requests:
            rid = f"{rid}-{uuid.uuid4().hex[:8]}"
        try:
            return driver.submit(
                rid,
                prompt,
                max_tokens=max_tokens,
                output_len=max_tokens if body.ignore_eos else None,
                min_tokens=body.min_tokens,
                lora=lora,
            )
        except ContextLengthError as exc:
            raise p.APIError(413, str(exc), "BadRequestError", "messages") from None
        except QueueFullError as exc:
            raise p.APIError(429, str(exc), "RateLimitError") from None
        except UnknownLoraError as exc:
            raise p.APIError(404, str(exc), "NotFoundError", "model") from None

    def usage_of(handle: RequestHandle) -> dict[str, Any]:
        r = handle.request
        return p.usage(r.num_prompt_tokens, r.num_output_tokens, max(r.num_cached_tokens, 0))

    async def collect(handle: RequestHandle) -> str:
        tokens: list[int] = []
        try:
            while True:
                token, done = await handle.tokens.get()
                tokens.append(token)
                if done:
                    return tokenizer.decode_output(tokens)
        finally:
            if not handle.request.is_finished:
                driver.abort(handle.request.request_id)

    async def stream(handle: RequestHandle, body: p._Common, chat: bool) -> AsyncIterator[bytes]:
        r, model_name = handle.request, body.model or base
        opts = body.stream_options or p.StreamOptions()
        obj = "chat.completion.chunk" if chat else "text_completion"
        created = int(time.time())
        try:
            if chat:
                yield p.sse(p.chat_chunk(r.request_id, created, model_name, {"role": "assistant", "content": ""}, None))
            while True:
                token, done = await handle.tokens.get()
                text = tokenizer.decode_output([token])
                finish = r.finish_reason.value if done and r.finish_reason is not None else None
                if chat:
                    chunk = p.chat_chunk(r.request_id, created, model_name, {"content": text}, finish)
                else:
                    chunk = p.completion_chunk(r.request_id, created, model_name, text, finish)
                if opts.include_usage and opts.continuous_usage_stats:
                    chunk["usage"] = usage_of(handle)
                yield p.sse(chunk)
                if done:
                    break
            if opts.include_usage:
                yield p.sse(p.usage_chunk(r.request_id, created, model_name, obj, usage_of(handle)))
            yield p.SSE_DONE
        finally:
            if not r.is_finished:
                driver.abort(r.request_id)

    async def respond(handle: RequestHandle, body: p._Common, chat: bool) -> Response:
        headers = {"x-request-id": handle.request.request_id}
        if body.stream:
            return StreamingResponse(stream(handle, body, chat), media_type="text/event-stream", headers=headers)
        text = await collect(handle)
        r, model_name = handle.request, body.model or base
        finish = r.finish_reason.value if r.finish_reason is not None else None
        build = p.chat_response if chat else p.completion_response
        return JSONResponse(
            build(r.request_id, int(time.time()), model_name, text, finish, usage_of(handle)), headers=headers
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body: p.ChatCompletionRequest = await parse(request, p.ChatCompletionRequest)
        prompt = tokenizer.encode(chat_prompt(body.messages))
        max_tokens = body.max_completion_tokens or body.max_tokens
        handle = submit(request, "chatcmpl", body, prompt, max_tokens)
        return await respond(handle, body, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body: p.CompletionRequest = await parse(request, p.CompletionRequest)
        prompt = body.prompt
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
            prompt = prompt[0]
        if isinstance(prompt, str):
            ids = tokenizer.encode(prompt)
        elif all(isinstance(t, int) for t in prompt):
            ids = [int(t) for t in prompt]  # type: ignore[arg-type]
        else:
            raise p.bad_request("batched prompts are not supported by the emulator: send one prompt", "prompt")
        handle = submit(request, "cmpl", body, ids, body.max_tokens)
        return await respond(handle, body, chat=False)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"object": "model", "created": created_at, "owned_by": "vllm", "max_model_len": engine.max_model_len}
        data = [{"id": base, "root": engine.perf.model.hf_id, "parent": None, **card}]
        data += [{"id": name, "root": name, "parent": base, **card} for name in engine.loras.adapters]
        return {"object": "list", "data": data}

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/version")
    async def version() -> dict[str, str]:
        return {"version": VLLM_VERSION}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(driver.metrics.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/v1/kv_events")
    async def kv_events(since: int = 0, timeout: float = 0.0, limit: int = 1000) -> dict[str, Any]:
        if timeout > 0:
            await driver.wait_kv_events(since, min(timeout, 60.0))
        log = driver.kv_events
        batches = log.since(since, max(1, min(limit, 10_000)))
        return {"first_seq": log.first_seq, "last_seq": log.last_seq, "batches": [b.to_json() for b in batches]}

    @app.post("/reset_prefix_cache")
    async def reset_prefix_cache() -> Response:
        if not driver.reset_prefix_cache():
            raise p.APIError(409, "requests hold KV blocks; reset when the engine is idle", "ConflictError")
        return Response(status_code=200)

    @app.get("/v1/emulator")
    async def emulator_state() -> dict[str, Any]:
        perf, cfg = engine.perf, engine.config
        return {
            "gpu": gpu or perf.accelerator.name,
            "model": perf.model.hf_id,
            "speed": driver.speed,
            "num_gpu_blocks": engine.kv.num_gpu_blocks,
            "kv_cache_tokens": (engine.kv.num_gpu_blocks - 1) * cfg.block_size,
            "kv_bytes_per_token": perf.kv_bytes_per_token,
            "max_model_len": engine.max_model_len,
            "max_num_seqs": cfg.max_num_seqs,
            "max_num_batched_tokens": cfg.max_num_batched_tokens,
            "running": engine.num_running,
            "waiting": engine.num_waiting,
            "kv_cache_usage": engine.kv_usage,
            "engine_time": driver.now(),
        }

    return app


class ServerThread:
    """Serve an app with uvicorn on a background thread (tests, demos); `with` stops it."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import socket

        import uvicorn

        if port == 0:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False))
        self._thread: threading.Thread | None = None

    def start(self) -> ServerThread:
        self._thread = threading.Thread(target=self._server.run, name="flotilla-emulator", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the emulator failed to start on {self.url}")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
