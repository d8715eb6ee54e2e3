"""Which endpoint served each session last (session affinity, keyed by the x-session-token header).

The driver records every served request of a session (`record(session, address, now)`); the
`session-affinity-scorer` reads `endpoint_of(session)`. An entry lives `ttl_seconds` after its last
use. The table holds no clock: `now` comes with each call (`record`, `expire`, or `endpoint_of`'s
optional `now`); without one, `endpoint_of` judges expiry by the latest time it was given, so a
simulator's clock works as well as the wall clock.
"""

from __future__ import annotations

from collections import OrderedDict


class SessionTable:
    """session token -> (address, last use), bounded by age (`ttl_seconds`) and count (`max_sessions`)."""

    def __init__(self, ttl_seconds: float = 600.0, max_sessions: int = 100_000) -> None:
        if ttl_seconds <= 0 or max_sessions < 1:
            raise ValueError("ttl_seconds must be > 0 and max_sessions >= 1")
        self.ttl_seconds = ttl_seconds
        self.max_sessions = max_sessions
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()  # oldest use first
        self._now = float("-inf")

    def record(self, session: str, address: str, now: float) -> None:
        """`address` served `session` at `now` (moves the session to the newest end)."""
        self._now = max(self._now, now)
        self._entries[session] = (address, now)
        self._entries.move_to_end(session)
        self.expire(self._now)
        while len(self._entries) > self.max_sessions:
            self._entries.popitem(last=False)

    def endpoint_of(self, session: str, now: float | None = None) -> str | None:
        """The endpoint that served `session` last, None if unknown or idle longer than the TTL."""
        entry = self._entries.get(session)
        if entry is None:
            return None
        address, used = entry
        current = self._now if now is None else max(self._now, now)
        return None if current - used > self.ttl_seconds else address

    def expire(self, now: float) -> int:
        """Forget sessions idle longer than the TTL at `now`; how many were forgotten."""
        self._now = max(self._now, now)
        dropped = 0
        while self._entries:
            session, (_, used) = next(iter(self._entries.items()))
            if self._now - used <= self.ttl_seconds:
                break
            del self._entries[session]
            dropped += 1
        return dropped

    def forget_endpoint(self, address: str) -> None:
        """Drop the sessions of an endpoint that left the pool (they will be re-pinned on their next request)."""
        for session in [s for s, (a, _) in self._entries.items() if a == address]:
            del self._entries[session]

    def __len__(self) -> int:
        return len(self._entries)
