"""Sending a request to a model server and passing its response through, chunk by chunk, never buffered.

This is the front door's hot path, so it speaks HTTP/1.1 to the model servers itself: one asyncio
protocol per connection, kept alive in an `UpstreamPool` (idle connections LIFO per address). A
general-purpose client cost more than the rest of the request path together (httpx's pool checks
every open connection on each request; see benchmarks/gateway_bench.py).

    pool = UpstreamPool()
    watch = DisconnectWatch(receive)                       # one task per request
    reply, address = await open_upstream(pool, UpstreamRequest(...), [first, fallback], ...)
    await UpstreamResponse(reply, headers, on_chunk, on_done, watch, clock)(scope, receive, send)

`open_upstream` sends the request to the picked endpoint and, when that one fails before answering
(refused, reset, closed without a response), once more to the next; it returns when the response's
head is in (504 when it does not come before the deadline). A kept-alive connection the model server
closed while idle is replaced by a new one to the same endpoint, not counted as a failure. The
deadline bounds the body too: a response still streaming past it is cut.

`DisconnectWatch` waits for the client to leave (ASGI `receive` answering `http.disconnect`). While
the request waits (in flow control, for the first byte, for the next chunk), a client leaving
cancels the wait (`until_left`, `UpstreamResponse`), the upstream connection is closed at once (the
model server sees the disconnect and aborts the request), and `on_done` runs with the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Scope, Send

from flotilla.gateway.requests import GatewayError
from flotilla.gateway.scheduling.types import DESTINATION_HEADER
from flotilla.gateway.upstream import (
    _BODYLESS_METHODS,
    HOP_BY_HOP,
    NOT_FORWARDED_BACK,
    ClientDisconnected,
    RawHeaders,
    StreamDeadline,
    T,
    UpstreamError,
    UpstreamPool,
    UpstreamReply,
    UpstreamTimeout,
)

log = logging.getLogger("flotilla.gateway")

_DESTINATION = frozenset({DESTINATION_HEADER.encode()})


def forward_headers(headers: Iterable[tuple[bytes, bytes]], extra: Mapping[str, str]) -> RawHeaders:
    """The client's headers (ASGI's: lower-case names) minus hop-by-hop ones and the destination header
    (the gateway sets it per attempt), plus `extra` (replacing same-named ones)."""
    drop = HOP_BY_HOP | _DESTINATION | {k.lower().encode("latin-1") for k in extra}
    return [(k, v) for k, v in headers if k not in drop] + [(k.encode(), v.encode()) for k, v in extra.items()]


def backward_headers(reply: UpstreamReply, extra: Mapping[str, str]) -> RawHeaders:
    """The model server's response headers, minus those the client's own server sets, plus `extra`."""
    drop = NOT_FORWARDED_BACK | {k.lower().encode("latin-1") for k in extra}
    return [(k, v) for k, v in reply.headers if k not in drop] + [(k.encode(), v.encode()) for k, v in extra.items()]


# -- the client leaving ----------------------------------------------------------------------------------
async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class DisconnectWatch:
    """One task per request waiting for `http.disconnect`; `left` once the client is gone. Made in the
    request's own task, which is the one a disconnect interrupts."""

    def __init__(self, receive: Receive) -> None:
        self.left = False
        self.finished = False  # the response is complete: a disconnect now is no news
        self._interrupting = False
        request_task = asyncio.current_task()
        assert request_task is not None
        self._request_task: asyncio.Task[object] = request_task
        self._task = asyncio.ensure_future(_disconnected(receive))
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if self.finished or task.cancelled() or task.exception() is not None:
            return
        self.left = True
        if self._interrupting:
            self._request_task.cancel()

    def interrupting(self) -> asyncio.Task[object]:
        """From now on a disconnect cancels the request's task (ClientDisconnected if it already happened)."""
        if self.left:
            raise ClientDisconnected()
        self._interrupting = True
        return self._request_task

    def caught(self, task: asyncio.Task[object]) -> bool:
        """After a CancelledError: True (and the cancellation undone) when it was this watch's."""
        self._interrupting = False
        if self.left:
            task.uncancel()
            return True
        return False

    async def until_left(self, work: Awaitable[T]) -> T:
        """`await work` in this task; when the client leaves first, `work` is cancelled and
        ClientDisconnected raised."""
        task = self.interrupting()
        try:
            return await work
        except asyncio.CancelledError:
            if self.caught(task):
                raise ClientDisconnected() from None
            raise
        finally:
            self._interrupting = False

    def quiet(self) -> None:
        """A disconnect no longer cancels the request's task (it waits for nothing now)."""
        self._interrupting = False

    def stop(self) -> None:
        self.finished = True
        self._interrupting = False
        self._task.cancel()


class InFlight(Protocol):
    def begin(self, address: str) -> None: ...

    def end(self, address: str) -> None: ...


@dataclass(frozen=True)
class UpstreamRequest:
    """What is sent upstream: `target` is the path with its query string; `headers` without host,
    content-length and the destination header (set per attempt)."""

    method: str
    target: bytes
    headers: RawHeaders
    body: bytes

    def head(self, address: str) -> bytes:
        """The request line and headers for `address`."""
        lines = [
            self.method.encode(),
            b" ",
            self.target,
            b" HTTP/1.1\r\nhost: ",
            address.encode(),
            b"\r\n",
            DESTINATION_HEADER.encode(),
            b": ",
            address.encode(),
            b"\r\n",
        ]
        for name, value in self.headers:
            if b"\r" in value or b"\n" in value:
                continue  # never let a header value split the request
            lines += (name, b": ", value, b"\r\n")
        if self.body or self.method not in _BODYLESS_METHODS:
            lines.append(b"content-length: %d\r\n" % len(self.body))
        lines.append(b"\r\n")
        return b"".join(lines)


async def open_upstream(
    pool: UpstreamPool,
    request: UpstreamRequest,
    addresses: Sequence[str],
    *,
    deadline: float,
    clock: Callable[[], float],
    in_flight: InFlight,
    on_retry: Callable[[], None],
    watch: DisconnectWatch,
) -> tuple[UpstreamReply, str]:
    """Send to `addresses[0]`, then to the next after a failure before any answer. Returns the reply (head
    in, body not read) and the address that answered; `in_flight.begin(address)` is left open for the
    caller to end. GatewayError 504 (no answer by `deadline`) or 503 (all failed); ClientDisconnected when
    the client leaves first."""
    failure: Exception | None = None
    for i, address in enumerate(addresses):
        remaining = deadline - clock()
        if remaining <= 0:
            break
        in_flight.begin(address)
        try:
            return await _attempt(pool, request, address, remaining, watch), address
        except UpstreamTimeout:
            in_flight.end(address)
            raise GatewayError(504, f"the model server at {address} did not answer in time") from None
        except (OSError, UpstreamError) as exc:  # TimeoutError (connecting) is an OSError
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


async def _attempt(
    pool: UpstreamPool, request: UpstreamRequest, address: str, remaining: float, watch: DisconnectWatch
) -> UpstreamReply:
    task = watch.interrupting()
    try:
        expires = asyncio.get_running_loop().time() + remaining
        return await pool.send(address, request.method, request.head(address), request.body, expires)
    except asyncio.CancelledError:
        if watch.caught(task):
            raise ClientDisconnected() from None
        raise
    finally:
        watch.quiet()


# -- the response, passed through ---------------------------------------------------------------------------
@dataclass
class StreamOutcome:
    """How passing a response through ended."""

    first_chunk_at: float | None = None
    completed: bool = False
    disconnected: bool = False
    timed_out: bool = False
    error: BaseException | None = None


class UpstreamResponse:
    """The ASGI response passing an upstream reply through (see the module docstring)."""

    def __init__(
        self,
        reply: UpstreamReply,
        headers: RawHeaders,
        on_chunk: Callable[[bytes], None],
        on_done: Callable[[StreamOutcome], None],
        watch: DisconnectWatch,
        clock: Callable[[], float],
    ) -> None:
        self.status_code = reply.status
        self.raw_headers = headers
        self._reply = reply
        self._on_chunk = on_chunk
        self._on_done = on_done
        self._watch = watch
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome, reply, watch = StreamOutcome(), self._reply, self._watch
        task: asyncio.Task[object] | None = None
        try:
            task = watch.interrupting()
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            while chunk := await reply.read():
                if outcome.first_chunk_at is None:
                    outcome.first_chunk_at = self._clock()
                self._on_chunk(chunk)
                last = reply.at_end
                if last:
                    outcome.completed = watch.finished = True
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                if last:
                    break
            else:
                outcome.completed = watch.finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except ClientDisconnected:
            outcome.disconnected = True
        except asyncio.CancelledError:
            if task is None or not watch.caught(task):
                raise
            outcome.disconnected = True
        except UpstreamTimeout:
            outcome.timed_out = True
            outcome.error = StreamDeadline("the request ran past its timeout while streaming")
        except (UpstreamError, OSError) as exc:
            outcome.error = exc
            outcome.disconnected = isinstance(exc, OSError)  # the client's socket broke
        finally:
            watch.stop()
            reply.close()
            self._on_done(outcome)
        if outcome.error is not None and not outcome.disconnected:
            raise outcome.error  # ends the client's connection: the response is incomplete
