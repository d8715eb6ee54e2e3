"""HTTP/1.1 to the model servers, for the gateway's hot path: one asyncio protocol per connection,
kept alive in an `UpstreamPool` (idle connections LIFO per address), and the response as it
arrives (`UpstreamReply`: status, headers, then body chunks, with back-pressure). See proxy.py for
why the gateway speaks HTTP itself."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from typing import TypeVar, cast

log = logging.getLogger("flotilla.gateway")

T = TypeVar("T")
RawHeaders = list[tuple[bytes, bytes]]
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
# Set by the server that answers the client (uvicorn), not copied from the model server's answer; the
# body is passed through byte for byte, so the model server's content-length stays true.
NOT_FORWARDED_BACK = (HOP_BY_HOP - {b"content-length"}) | {b"date", b"server"}
MAX_HEAD = 64 * 1024  # bytes of a response's status line and headers
HIGH_WATER, LOW_WATER = 256 * 1024, 64 * 1024  # unread body bytes: pause / resume reading from upstream
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _DONE = range(8)
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class ClientDisconnected(Exception):
    """The client went away before the work it waited for finished."""


class StreamDeadline(Exception):
    """The request's timeout ran out while its response was streaming (not an OSError, unlike TimeoutError)."""


class UpstreamTimeout(Exception):
    """The request's deadline passed while it waited for the model server."""


class UpstreamError(Exception):
    """The model server's connection failed or its answer was not HTTP/1.x; `answered`: some of it came."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


# -- HTTP/1.1 to the model servers ------------------------------------------------------------------------
class UpstreamReply:
    """A model server's response: `status` and `headers` (lower-case names) once its head is in, then its
    body with `read()` as it arrives (b"" at the end)."""

    def __init__(self, conn: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.headers: RawHeaders = []
        self._conn: _Connection | None = conn
        self._loop = loop
        self._head: asyncio.Future[None] = loop.create_future()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False  # every body byte is in _chunks (or was read)
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    @property
    def at_end(self) -> bool:
        """Everything was read: the next `read()` gives b""."""
        return self._complete and not self._chunks and self._error is None

    def expire_at(self, when: float) -> None:
        """Fail with UpstreamTimeout at loop time `when` (the head not in, or the body not read to its end)."""
        self._timer = self._loop.call_at(when, self.interrupt, UpstreamTimeout())

    async def wait_head(self) -> None:
        await self._head

    async def read(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._drain())
        self._buffered -= len(data)
        if self._buffered < LOW_WATER and self._conn is not None:
            self._conn.resume()
        return data

    def _drain(self) -> Iterable[bytes]:
        while self._chunks:
            yield self._chunks.popleft()

    def interrupt(self, exc: BaseException) -> None:
        """Stop now: the unread body is dropped, the connection closed, waiting readers get `exc`."""
        if self._error is None:
            self._error = exc
        self._chunks.clear()
        self.close()
        if not self._head.done():
            self._head.set_exception(exc)
        self._wake()

    def close(self) -> None:
        """Done with it: a body not read to its end closes the connection (the model server sees it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abandon(self)

    # -- fed by the connection --------------------------------------------------------------------------
    def _head_in(self, status: int, headers: RawHeaders) -> None:
        self.status, self.headers = status, headers
        if not self._head.done():
            self._head.set_result(None)

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _end(self) -> None:
        self._complete = True
        self._conn = None
        self._wake()

    def _fail(self, exc: UpstreamError) -> None:
        self._conn = None
        if self._error is None:
            self._error = exc
        if not self._head.done():
            self._head.set_exception(exc)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection to a model server: a request at a time, its response parsed
    as it arrives (content-length, chunked, or until close)."""

    def __init__(self, pool: UpstreamPool, address: str) -> None:
        self.pool, self.address = pool, address
        self.transport: asyncio.Transport | None = None
        self.reply: UpstreamReply | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buf = bytearray()
        self._state = _DONE
        self._remaining = 0
        self._answered = False
        self._bodyless = False
        self._keep_alive = True
        self._paused = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        reply, self.reply = self.reply, None
        if reply is None:
            return
        if self._state == _UNTIL_CLOSE:
            reply._end()
        else:
            reply._fail(UpstreamError(f"the model server closed the connection ({exc or 'EOF'})", self._answered))

    def data_received(self, data: bytes) -> None:
        if self.reply is None:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        self._answered = True
        self._buf += data
        try:
            self._parse()
        except (UpstreamError, ValueError) as exc:
            reply, self.reply = self.reply, None
            if reply is not None:
                reply._fail(exc if isinstance(exc, UpstreamError) else UpstreamError(str(exc), True))
            self.close()

    # -- requests ---------------------------------------------------------------------------------------
    def send(self, method: str, head: bytes, body: bytes) -> UpstreamReply:
        assert self.transport is not None and self.reply is None
        self.reply = reply = UpstreamReply(self, asyncio.get_running_loop())
        self._state, self._answered, self._bodyless = _HEAD, False, method == "HEAD"
        self._buf.clear()
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        return reply

    def abandon(self, reply: UpstreamReply) -> None:
        """`reply` is no longer wanted before its end: close rather than read the rest."""
        if self.reply is reply:
            self.reply = None
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    # -- parsing ----------------------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self._buf
        while self.reply is not None:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise UpstreamError(f"the response head is over {MAX_HEAD} bytes", True)
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._parse_head(head)
            elif state in (_LENGTH, _CHUNK_DATA):
                if not buf:
                    return
                n = min(self._remaining, len(buf))
                self.reply._feed(bytes(buf) if n == len(buf) else bytes(buf[:n]))
                del buf[:n]
                self._remaining -= n
                if not self._remaining:
                    if state == _LENGTH:
                        self._finish()
                    else:
                        self._state = _CHUNK_END
            elif state in (_CHUNK_SIZE, _CHUNK_END, _TRAILER):
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 4096:
                        raise UpstreamError("a chunk-size or trailer line is over 4096 bytes", True)
                    return
                line = bytes(buf[:end])
                del buf[: end + 2]
                if state == _CHUNK_END:
                    if line:
                        raise UpstreamError("a chunk does not end with CRLF", True)
                    self._state = _CHUNK_SIZE
                elif state == _CHUNK_SIZE:
                    self._remaining = int(line.split(b";", 1)[0].strip(), 16)
                    self._state = _CHUNK_DATA if self._remaining else _TRAILER
                elif not line:  # the empty line after the trailers
                    self._finish()
            else:  # _UNTIL_CLOSE
                if buf:
                    self.reply._feed(bytes(buf))
                    buf.clear()
                return

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise UpstreamError(f"not an HTTP/1.x response: {lines[0][:80]!r}", True)
        status = int(rest[:3])
        headers: RawHeaders = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise UpstreamError(f"a malformed response header: {line[:80]!r}", True)
            headers.append((name.strip().lower(), value.strip()))
        if 100 <= status < 200:
            return  # an interim response (100 Continue, 103 Early Hints): the real one follows
        assert self.reply is not None
        fields = dict(headers)
        connection = fields.get(b"connection", b"").lower()
        self._keep_alive = version == b"HTTP/1.1" and b"close" not in connection
        self.reply._head_in(status, headers)
        if self._bodyless or status in (204, 304):
            self._finish()
        elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            self._state = _CHUNK_SIZE
        elif b"content-length" in fields:
            self._remaining = int(fields[b"content-length"])
            self._state = _LENGTH
            if not self._remaining:
                self._finish()
        else:
            self._state, self._keep_alive = _UNTIL_CLOSE, False

    def _finish(self) -> None:
        reply, self.reply = self.reply, None
        self._state = _DONE
        if reply is not None:
            reply._end()
        self.resume()  # paused for a slow reader: the next response must be read
        if self._keep_alive and not self._buf and not self.closed:
            self.pool.release(self)
        else:
            self.close()


class UpstreamPool:
    """Kept-alive connections to model servers, per address; idle ones are reused newest first."""

    def __init__(
        self, *, connect_timeout: float = 5.0, keepalive_expiry: float = 30.0, max_idle_per_address: int = 1000
    ) -> None:
        self.connect_timeout = connect_timeout
        self.keepalive_expiry = keepalive_expiry
        self.max_idle_per_address = max_idle_per_address
        self._idle: dict[str, list[_Connection]] = {}
        self._open: set[_Connection] = set()

    def idle(self, address: str) -> _Connection | None:
        """A kept-alive connection to `address` that is still open, if there is one."""
        idle = self._idle.get(address)
        if not idle:
            return None
        oldest = asyncio.get_running_loop().time() - self.keepalive_expiry
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if conn.idle_since < oldest:
                conn.close()
                continue
            return conn
        return None

    async def connect(self, address: str, timeout: float) -> _Connection:
        """A new connection (TimeoutError after `timeout` seconds, OSError when refused or unreachable)."""
        host, _, port = address.rpartition(":")
        conn = _Connection(self, address)
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().create_connection(lambda: conn, host.strip("[]"), int(port))
        self._open.add(conn)
        return conn

    async def send(self, address: str, method: str, head: bytes, body: bytes, expires: float) -> UpstreamReply:
        """Send a request on a kept-alive connection to `address` (a new one when there is none, or when the
        kept one turns out closed) and return once its head is in. OSError (connecting; TimeoutError for a
        connect timeout), UpstreamError (the connection failed), UpstreamTimeout (loop time `expires` passed)."""
        loop = asyncio.get_running_loop()
        conn = self.idle(address)
        reused = conn is not None
        while True:
            if conn is None:
                conn = await self.connect(address, min(self.connect_timeout, expires - loop.time()))
            reply = conn.send(method, head, body)
            reply.expire_at(expires)
            try:
                await reply.wait_head()
                return reply
            except UpstreamError as exc:
                reply.close()
                if not reused or exc.answered:
                    raise
                conn, reused = None, False  # the server had closed this idle connection: open a new one
            except BaseException:
                reply.close()
                raise

    async def get(self, address: str, target: str, timeout: float) -> tuple[int, bytes]:
        """GET `target` from `address` (the data layer's scrapes): the status and the whole body."""
        loop = asyncio.get_running_loop()
        head = f"GET {target} HTTP/1.1\r\nhost: {address}\r\naccept: */*\r\n\r\n".encode("latin-1")
        reply = await self.send(address, "GET", head, b"", loop.time() + timeout)
        try:
            chunks = []
            while chunk := await reply.read():
                chunks.append(chunk)
            return reply.status, b"".join(chunks)
        finally:
            reply.close()

    def release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.address, [])
        if len(idle) >= self.max_idle_per_address:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self._open.discard(conn)

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close
