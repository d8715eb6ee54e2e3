"""A fake OpenAI-compatible server with known latencies: TTFT `ttft` seconds, then a chunk every `itl`
seconds, one token per chunk (max_tokens of them), then a usage chunk and [DONE].

Models: `fail-500` answers HTTP 500; `drop` closes the connection after two chunks; anything else streams.
Runs uvicorn on a free 127.0.0.1 port in a thread; `stop()` ends it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from flotilla.server.runner import free_port

SERVED = "10.0.0.7:8000"
PROMPT_TOKENS = 7


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class FakeOpenAI:
    def __init__(self, ttft: float = 0.1, itl: float = 0.02) -> None:
        self.ttft, self.itl = ttft, itl
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.complete, methods=["POST"]),
                Route("/v1/completions", self.complete, methods=["POST"]),
            ]
        )
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="fake-openai", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the fake server did not start")
            self.thread.join(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def complete(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((request.url.path, body, dict(request.headers)))
        if body.get("model") == "fail-500":
            return JSONResponse({"error": {"message": "the engine fell over", "type": "server_error"}}, 500)
        chat = request.url.path.endswith("/chat/completions")
        return StreamingResponse(
            self._stream(body, chat),
            media_type="text/event-stream",
            headers={"x-gateway-destination-endpoint-served": SERVED},
        )

    async def _stream(self, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
        n = int(body.get("max_tokens") or 1)
        await asyncio.sleep(self.ttft)
        for k in range(n):
            if k:
                await asyncio.sleep(self.itl)
            if body.get("model") == "drop" and k == 2:
                raise RuntimeError("connection dropped on purpose")
            choice = {"index": 0, "delta": {"content": f"tok{k} "}} if chat else {"index": 0, "text": f"tok{k} "}
            yield _sse({"id": "x", "choices": [choice]})
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n, "total_tokens": PROMPT_TOKENS + n}
        yield _sse({"id": "x", "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
