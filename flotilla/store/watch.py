"""Watching the store: replay the retained event log after a revision, then stream new events.

A `Watch` pulls: it reads the event table (by revision, its primary key) whenever a commit in this
process signals it, and otherwise every `poll_interval` seconds, which is how writes made by other
processes to the same database file reach it. Because revisions are contiguous, a gap before the
first unread row means the log was compacted past the watcher, and it raises `Gone`.

Consuming from asyncio (a FastAPI streaming endpoint)::

    async def stream():
        with store.watch(rt, since=rv) as w:
            while not await request.is_disconnected():
                event = await w.anext(timeout=1.0)  # waits in a worker thread, never on the loop
                yield encode(event) if event else heartbeat()

`anext` runs the blocking wait through `asyncio.to_thread`, so it holds one default-executor
thread for at most `timeout` seconds; keep timeouts short (about 1 s) and close the watch when the
client goes away (an `anext` cancelled mid-wait may have taken an event that is then dropped, so
a cancelled watch is done). A Watch has one consumer: one task or thread at a time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from flotilla.store.errors import Gone, StoreError
from flotilla.store.keys import ResourceType
from flotilla.store.objects import EventType, Obj, decode

EventRow = tuple[int, str, str | None]  # (revision, type, body or None when filtered out)

_PAGE = 512
_TYPES: dict[str, EventType] = {"ADDED": "ADDED", "MODIFIED": "MODIFIED", "DELETED": "DELETED"}


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: the object after it (the last state, for DELETED) and its revision."""

    type: EventType
    object: Obj
    resource_version: str


class EventSource(Protocol):
    """What a Watch needs from the store (`Store` implements it)."""

    @property
    def closed(self) -> bool: ...

    @property
    def poll_interval(self) -> float: ...

    def read_events(
        self, after: int, group: str | None, kind: str | None, namespace: str | None, limit: int
    ) -> list[EventRow]: ...

    def commit_count(self) -> int: ...

    def wait_for_commit(self, seen: int, timeout: float) -> None: ...


class Watch:
    """An iterator of `WatchEvent`s for one kind (or all kinds) and optionally one namespace.

    Iterating blocks until the next event and stops once the watch or the store is closed;
    `next_event(timeout)` returns None instead of blocking past `timeout`. Raises `Gone` if the
    event log was compacted past the events it still had to deliver: list again and re-watch.
    """

    def __init__(
        self,
        source: EventSource,
        rt: ResourceType | None,
        namespace: str | None,
        after: int,
        skip: Callable[[int], bool] | None = None,
    ) -> None:
        self._source = source
        self._skip = skip
        self._group = None if rt is None else rt.group
        self._kind = None if rt is None else rt.kind
        self._namespace = namespace
        self._cursor = after  # every event <= cursor has been read from the log
        self._delivered = after
        self._buffer: deque[WatchEvent] = deque()
        self._closed = False
        self._expired: str | None = None

    @property
    def resource_version(self) -> str:
        """The revision this watch has delivered everything up to: resume a new watch from it."""
        return str(self._delivered if self._buffer else self._cursor)

    @property
    def closed(self) -> bool:
        """True once this watch or its store is closed."""
        return self._closed or self._source.closed

    def next_event(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event; None on timeout (None = wait forever) or once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._buffer:
                event = self._buffer.popleft()
                self._delivered = int(event.resource_version)
                return event
            if self.closed:
                return None
            seen = self._source.commit_count()  # before reading, so no commit slips past unseen
            self._fill()
            if self._buffer:
                continue
            wait = self._source.poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(wait, remaining)
            self._source.wait_for_commit(seen, wait)

    def next_events(self, timeout: float | None = None, most: int = 500) -> list[WatchEvent]:
        """The next event (waiting as `next_event` does) and up to `most` - 1 that are already
        there after it; [] on timeout or once closed."""
        first = self.next_event(timeout)
        if first is None:
            return []
        events = [first]
        while len(events) < most and (event := self.next_event(0)) is not None:
            events.append(event)
        return events

    async def anext(self, timeout: float = 1.0) -> WatchEvent | None:
        """`next_event` for asyncio: waits in a worker thread so the event loop never blocks."""
        import asyncio  # here, not at the top: asyncio costs tens of ms to import, sync users skip it

        if self._buffer:
            return self.next_event(0)
        return await asyncio.to_thread(self.next_event, timeout)

    def close(self) -> None:
        """Stop the watch; a blocked `next_event` returns None within one poll interval."""
        self._closed = True

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchEvent:
        event = self.next_event(None)
        if event is None:
            raise StopIteration
        return event

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            event = await self.anext(1.0)
            if event is not None:
                return event
            if self.closed:
                raise StopAsyncIteration

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _fill(self) -> None:
        if self._expired is not None:
            raise Gone(self._expired)
        try:
            rows = self._source.read_events(self._cursor, self._group, self._kind, self._namespace, _PAGE)
        except StoreError:
            if self._source.closed:
                return  # the store closed under us: end quietly, as iteration would
            raise
        if not rows:
            return
        if rows[0][0] != self._cursor + 1:
            self._expired = (
                f"watch fell behind: events after resourceVersion {self._cursor} were compacted "
                f"(the log now starts at {rows[0][0]}); list again and watch from the list's "
                "resourceVersion"
            )
            raise Gone(self._expired)
        for revision, type_, body in rows:
            if body is not None and not (self._skip is not None and self._skip(revision)):
                self._buffer.append(WatchEvent(_TYPES[type_], decode(body), str(revision)))
        self._cursor = rows[-1][0]
