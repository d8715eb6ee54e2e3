"""Flow control in front of the picker (GAIE's admission control and FlowController, simplified).

Semantics:

- Priority bands: a request's band is `request.priority` (from its InferenceObjective); higher goes
  first. Priority < 0 is *sheddable*: when the pool is saturated it is refused at once (`Shed`,
  reason "saturated", HTTP 429), never queued.
- Bypass: when the pool is not saturated and nothing is queued at the request's priority or above,
  the request goes at once (the queue only exists while the pool is saturated, as in GAIE).
- Otherwise it waits in its band, in its tenant's FIFO (the tenant is GAIE's fairness id, e.g. the
  x-gateway-inference-fairness-id header or the API key). Dispatch takes the highest non-empty band;
  within it, tenants take turns (round-robin: a tenant that was served moves to the back), FIFO
  within a tenant. A queued request is dispatched when the pool is not saturated.
- Bounds: at most `max_queue` requests queued in all (one more is refused: "queue-full", 429), and
  each waits at most `max_wait_seconds` by the injected clock ("timeout", 503 as GAIE answers a
  request evicted from its queue by TTL).

Two interfaces over the same state; use one of them per controller:

- synchronous, for the simulator: `submit(request, tenant, saturated) -> Ticket | Shed`,
  `dispatch() -> Ticket | None` (the next in order), `expire() -> list[Ticket]`, `cancel(ticket)`;
- asyncio, for the gateway: `await acquire(request, tenant, saturated)` returns when the request may
  go (or raises `Shed`); call `release()` when it finished. Queued waiters are dispatched by `pump()`,
  which runs on every `acquire`, every `release`, and every `poll_seconds` while anyone waits (the
  pool can drain without a release through this gateway: other gateways, finished decode).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from flotilla.gateway.scheduling.types import InferenceRequest

ShedReason = Literal["saturated", "queue-full", "timeout"]
STATUS_OF: dict[str, int] = {"saturated": 429, "queue-full": 429, "timeout": 503}


class Shed(Exception):
    """A request refused by flow control: `reason` and the HTTP status to answer with."""

    def __init__(self, reason: ShedReason, request_id: str = "") -> None:
        self.reason: ShedReason = reason
        self.request_id = request_id
        super().__init__(f"request {request_id or '?'} shed: {reason}")

    @property
    def status_code(self) -> int:
        return STATUS_OF[self.reason]


@dataclass(eq=False)
class Ticket:
    """A queued request."""

    request: InferenceRequest
    tenant: str
    enqueued_at: float
    seq: int
    future: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def priority(self) -> int:
        return self.request.priority


class FlowController:
    def __init__(
        self,
        max_queue: int = 1000,
        max_wait_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        poll_seconds: float = 0.05,
    ) -> None:
        if max_queue < 0 or max_wait_seconds <= 0 or poll_seconds <= 0:
            raise ValueError("max_queue >= 0, max_wait_seconds > 0 and poll_seconds > 0 are required")
        self.max_queue = max_queue
        self.max_wait_seconds = max_wait_seconds
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._bands: dict[int, OrderedDict[str, deque[Ticket]]] = {}  # priority -> tenant -> FIFO
        self._size = 0
        self._seq = 0
        self._saturated: Callable[[], bool] = lambda: False
        self.in_flight = 0  # admitted through acquire and not yet released
        self.shed: Counter[str] = Counter()  # by reason

    # -- synchronous core -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    def depth(self, priority: int | None = None, tenant: str | None = None) -> int:
        """Queued requests, optionally of one band and/or one tenant."""
        return sum(
            len(q)
            for p, tenants in self._bands.items()
            if priority is None or p == priority
            for t, q in tenants.items()
            if tenant is None or t == tenant
        )

    def submit(self, request: InferenceRequest, tenant: str, saturated: bool = False) -> Ticket | Shed:
        """Queue `request` for `tenant`; a Shed (not raised) when it is sheddable and the pool is
        saturated, or when the queue is full."""
        if request.priority < 0 and saturated:
            return self._refuse("saturated", request)
        if self._size >= self.max_queue:
            return self._refuse("queue-full", request)
        self._seq += 1
        ticket = Ticket(request, tenant, self.clock(), self._seq)
        self._bands.setdefault(request.priority, OrderedDict()).setdefault(tenant, deque()).append(ticket)
        self._size += 1
        return ticket

    def dispatch(self) -> Ticket | None:
        """Remove and return the next ticket: highest band, the tenant whose turn it is, its oldest request."""
        if not self._bands:
            return None
        priority = max(self._bands)
        tenants = self._bands[priority]
        tenant, queue = next(iter(tenants.items()))
        ticket = queue.popleft()
        if queue:
            tenants.move_to_end(tenant)
        else:
            del tenants[tenant]
            if not tenants:
                del self._bands[priority]
        self._size -= 1
        return ticket

    def expire(self) -> list[Ticket]:
        """Remove and return the tickets queued longer than max_wait_seconds (counted as shed: timeout)."""
        now = self.clock()
        expired: list[Ticket] = []
        for priority in list(self._bands):
            tenants = self._bands[priority]
            for tenant in list(tenants):
                queue = tenants[tenant]
                while queue and now - queue[0].enqueued_at > self.max_wait_seconds:
                    expired.append(queue.popleft())
                if not queue:
                    del tenants[tenant]
            if not tenants:
                del self._bands[priority]
        self._size -= len(expired)
        self.shed["timeout"] += len(expired)
        return expired

    def cancel(self, ticket: Ticket) -> bool:
        """Take a queued ticket out (its client went away); False if it is not queued."""
        tenants = self._bands.get(ticket.priority)
        queue = tenants.get(ticket.tenant) if tenants is not None else None
        if tenants is None or queue is None or ticket not in queue:
            return False
        queue.remove(ticket)
        if not queue:
            del tenants[ticket.tenant]
            if not tenants:
                del self._bands[ticket.priority]
        self._size -= 1
        return True

    def _refuse(self, reason: ShedReason, request: InferenceRequest) -> Shed:
        self.shed[reason] += 1
        return Shed(reason, request.request_id)

    # -- asyncio interface ------------------------------------------------------------------------------
    async def acquire(self, request: InferenceRequest, tenant: str, saturated: Callable[[], bool]) -> None:
        """Return when `request` may go to the picker; raise Shed if it is refused or times out."""
        self._saturated = saturated
        self.pump()
        is_saturated = saturated()
        if not is_saturated and not any(p >= request.priority for p in self._bands):
            self.in_flight += 1
            return
        result = self.submit(request, tenant, is_saturated)
        if isinstance(result, Shed):
            raise result
        ticket = result
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ticket.future = future
        self.pump()
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=self.poll_seconds)
                if not future.done():
                    self.pump()
        except asyncio.CancelledError:
            if not future.done():
                self.cancel(ticket)
                future.cancel()
            elif future.exception() is None:
                self.release()  # dispatched just as the caller gave up
            raise
        future.result()  # raises Shed("timeout")

    def release(self) -> None:
        """A request admitted by `acquire` finished: dispatch waiters if the pool has room."""
        self.in_flight = max(0, self.in_flight - 1)
        self.pump()

    def pump(self) -> int:
        """Fail expired waiters, then dispatch waiters while the pool is not saturated; how many went."""
        for ticket in self.expire():
            if ticket.future is not None and not ticket.future.done():
                ticket.future.set_exception(Shed("timeout", ticket.request.request_id))
        went = 0
        while self._size and not self._saturated():
            nxt = self.dispatch()
            if nxt is None:
                break
            if nxt.future is not None and not nxt.future.done():
                nxt.future.set_result(None)
                self.in_flight += 1
                went += 1
        return went
