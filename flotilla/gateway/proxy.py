"""Passing a response through: chunk by chunk as the model server sends it, never buffered.

`UpstreamResponse` is the ASGI response for an open httpx response: it sends the upstream status
and headers, then every raw chunk as it arrives (SSE streams reach the client token by token),
while a second task watches the client: when the client disconnects, the pump is cancelled and
the upstream connection is closed at once (the model server sees the disconnect and aborts the
request). The upstream response is always closed, and `on_done` always runs, with the outcome.

`until_disconnect(receive, work)` runs `work` (waiting in flow control, waiting for the model
server's first byte) and cancels it when the client goes away first.

`open_upstream` sends the request to the picked endpoint and, when that one fails before
answering (refused, reset, closed without a response), once more to the next; it returns when the
response's headers are in (504 when they do not come within the deadline).

`UsageTracker` reads token counts on the way through: the `usage` object of a JSON body or of an
SSE chunk (stream_options.include_usage); without one, the number of SSE chunks that carry choices
(vLLM streams one token per chunk) stands in for the output tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from flotilla.gateway.requests import GatewayError
from flotilla.gateway.scheduling.types import DESTINATION_HEADER

log = logging.getLogger("flotilla.gateway")

T = TypeVar("T")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Set by the server that answers the client (uvicorn), not copied from the model server's answer; the
# body is passed through byte for byte, so the model server's content-length stays true.
NOT_FORWARDED_BACK = (HOP_BY_HOP - {"content-length"}) | {"date", "server"}
MAX_JSON_BODY = 4 * 1024 * 1024  # bytes of a non-streamed body kept to read its usage


class ClientDisconnected(Exception):
    """The client went away before the work it waited for finished."""


class StreamDeadline(Exception):
    """The request's timeout ran out while its response was streaming (not an OSError, unlike TimeoutError)."""


def forward_headers(headers: Iterable[tuple[str, str]], extra: Mapping[str, str]) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop ones, plus `extra` (replacing same-named ones)."""
    drop = HOP_BY_HOP | {k.lower() for k in extra}
    return [(k, v) for k, v in headers if k.lower() not in drop] + list(extra.items())


def backward_headers(upstream: httpx.Response, extra: Mapping[str, str]) -> dict[str, str]:
    out = {k: v for k, v in upstream.headers.items() if k.lower() not in NOT_FORWARDED_BACK}
    out.update(extra)
    return out


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """`await work`, unless the client disconnects first: then cancel it and raise ClientDisconnected."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
    if task.cancelled():
        raise ClientDisconnected()
    return task.result()


class InFlight(Protocol):
    def begin(self, address: str) -> None: ...

    def end(self, address: str) -> None: ...


@dataclass(frozen=True)
class UpstreamRequest:
    """What is sent upstream: `headers` without the destination header (set per attempt)."""

    method: str
    path: str  # with its query string
    headers: Sequence[tuple[str, str]]
    body: bytes
    receive: Receive  # the client's, to notice it leaving


async def open_upstream(
    client: httpx.AsyncClient,
    request: UpstreamRequest,
    addresses: Sequence[str],
    *,
    deadline: float,
    connect_timeout: float,
    clock: Callable[[], float],
    in_flight: InFlight,
    on_retry: Callable[[], None],
) -> tuple[httpx.Response, str]:
    """Send to `addresses[0]`, then to the next after a failure before any answer. Returns the open
    response (headers read, body not) and the address that answered; `in_flight.begin(address)` is
    left open for the caller to end. GatewayError 504 (no answer by `deadline`) or 503 (all failed);
    ClientDisconnected when the client leaves first."""
    failure: Exception | None = None
    for i, address in enumerate(addresses):
        remaining = deadline - clock()
        if remaining <= 0:
            break
        headers = [*request.headers, (DESTINATION_HEADER, address)]
        timeout = httpx.Timeout(remaining, connect=min(connect_timeout, remaining))
        upstream = client.build_request(
            request.method, f"http://{address}{request.path}", headers=headers, content=request.body, timeout=timeout
        )
        in_flight.begin(address)
        try:
            return await until_disconnect(request.receive, client.send(upstream, stream=True)), address
        except httpx.ConnectTimeout as exc:
            failure = exc
        except httpx.TimeoutException:
            in_flight.end(address)
            raise GatewayError(504, f"the model server at {address} did not answer in time") from None
        except httpx.TransportError as exc:
            failure = exc
        except BaseException:
            in_flight.end(address)
            raise
        in_flight.end(address)
        log.info("endpoint %s failed before answering (%s: %s)", address, type(failure).__name__, failure)
        if i + 1 < len(addresses):
            on_retry()
    if failure is None:
        raise GatewayError(504, "the request ran out of time before it could be sent")
    raise GatewayError(
        503, f"the model server failed before answering ({type(failure).__name__}) and no other endpoint was left"
    )


class UsageTracker:
    """Token counts read from a response as it passes (see the module docstring)."""

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.chunks = 0
        self.size = 0
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if not self.sse:
            if len(self._buffer) + len(chunk) <= MAX_JSON_BODY:
                self._buffer += chunk
            return
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return
            event = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            self._event(event)

    def _event(self, event: bytes) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if b'"usage"' in data:
                with contextlib.suppress(ValueError):
                    self._usage(json.loads(data))
            if b'"choices":[{' in data.replace(b" ", b""):
                self.chunks += 1

    def _usage(self, body: Any) -> None:
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or self.prompt_tokens)
            self.completion_tokens = int(usage.get("completion_tokens") or self.completion_tokens)

    def finish(self) -> None:
        if not self.sse and self._buffer:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                self._usage(json.loads(self._buffer))

    @property
    def output_tokens(self) -> int:
        return self.completion_tokens or self.chunks


@dataclass
class StreamOutcome:
    """How passing a response through ended."""

    first_chunk_at: float | None = None
    completed: bool = False
    disconnected: bool = False
    timed_out: bool = False
    error: BaseException | None = None


async def _empty() -> Any:
    if False:  # pragma: no cover - an async generator that yields nothing
        yield b""


class UpstreamResponse(StreamingResponse):
    """An open upstream response, passed through to the client (see the module docstring)."""

    def __init__(
        self,
        upstream: httpx.Response,
        headers: Mapping[str, str],
        on_chunk: Callable[[bytes], None],
        on_done: Callable[[StreamOutcome], None],
        deadline: float,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(_empty(), status_code=upstream.status_code, headers=dict(headers))
        self._upstream = upstream
        self._on_chunk = on_chunk
        self._on_done = on_done
        self._deadline = deadline
        self._clock = clock

    async def _pump(self, send: Send, outcome: StreamOutcome) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self._upstream.aiter_raw():
            if outcome.first_chunk_at is None:
                outcome.first_chunk_at = self._clock()
            self._on_chunk(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if self._clock() > self._deadline:
                outcome.timed_out = True
                raise StreamDeadline("the request ran past its timeout while streaming")
        outcome.completed = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = StreamOutcome()
        pump = asyncio.ensure_future(self._pump(send, outcome))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():
                outcome.disconnected = True
            elif not pump.cancelled() and pump.exception() is not None:
                outcome.error = pump.exception()
                outcome.disconnected = isinstance(outcome.error, OSError)  # the client's socket broke
        finally:
            for task in (pump, watcher):
                task.cancel()
            for task in (pump, watcher):
                with contextlib.suppress(BaseException):
                    await task
            try:
                await asyncio.shield(self._upstream.aclose())
            finally:
                self._on_done(outcome)
        if outcome.error is not None and not outcome.disconnected:
            raise outcome.error  # ends the client's connection: the response is incomplete
