"""Flow control: dispatch order (priority, tenant fairness), shedding, bounds and queue timeouts (fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from flotilla.gateway.scheduling import FlowController, InferenceRequest, Shed, Ticket

from .builders import req


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def r(rid: str, priority: int = 0) -> InferenceRequest:
    return req(rid=rid, priority=priority)


def drain(fc: FlowController) -> list[str]:
    out = []
    while (ticket := fc.dispatch()) is not None:
        out.append(ticket.request.request_id)
    return out


@pytest.mark.parametrize(
    ("arrivals", "order"),
    [
        # (request id, priority, tenant) in arrival order
        ([("low", 0, "t"), ("high", 5, "t"), ("mid", 1, "t")], ["high", "mid", "low"]),
        (
            [("a1", 0, "A"), ("a2", 0, "A"), ("a3", 0, "A"), ("b1", 0, "B"), ("c1", 0, "C"), ("b2", 0, "B")],
            ["a1", "b1", "c1", "a2", "b2", "a3"],
        ),  # tenants take turns, FIFO within a tenant
        ([("a1", 0, "A"), ("b1", 1, "B"), ("a2", 1, "A"), ("b2", 1, "B")], ["b1", "a2", "b2", "a1"]),
        ([("s", -1, "A"), ("n", 0, "A")], ["n", "s"]),  # sheddable queues when the pool is not saturated
    ],
)
def test_dispatch_order(arrivals: list[tuple[str, int, str]], order: list[str]) -> None:
    fc = FlowController(clock=Clock())
    for rid, priority, tenant in arrivals:
        assert isinstance(fc.submit(r(rid, priority), tenant), Ticket)
    assert len(fc) == len(arrivals)
    assert drain(fc) == order and len(fc) == 0


def test_a_tenant_that_returns_goes_to_the_back() -> None:
    fc = FlowController(clock=Clock())
    fc.submit(r("a1"), "A")
    fc.submit(r("b1"), "B")
    first = fc.dispatch()
    assert first is not None and first.request.request_id == "a1"
    fc.submit(r("a2"), "A")  # A emptied and came back: behind B
    assert drain(fc) == ["b1", "a2"]


def test_shedding_and_bounds() -> None:
    fc = FlowController(max_queue=2, clock=Clock())
    shed = fc.submit(r("s", -1), "A", saturated=True)
    assert isinstance(shed, Shed) and shed.reason == "saturated" and shed.status_code == 429
    assert isinstance(fc.submit(r("n", 0), "A", saturated=True), Ticket)  # not sheddable: waits
    assert isinstance(fc.submit(r("m", 0), "B"), Ticket)
    full = fc.submit(r("x", 9), "C")
    assert isinstance(full, Shed) and full.reason == "queue-full" and full.status_code == 429
    assert fc.shed == {"saturated": 1, "queue-full": 1}
    assert fc.depth(tenant="A") == 1 and fc.depth(priority=0) == 2


def test_queue_timeouts_use_the_injected_clock() -> None:
    clock = Clock()
    fc = FlowController(max_wait_seconds=10, clock=clock)
    old = fc.submit(r("old"), "A")
    clock.now = 5.0
    fc.submit(r("young"), "A")
    clock.now = 10.0
    assert fc.expire() == []  # exactly max_wait: still waiting
    clock.now = 10.5
    assert [t.request.request_id for t in fc.expire()] == ["old"]
    assert isinstance(old, Ticket) and fc.shed["timeout"] == 1
    assert drain(fc) == ["young"]


def test_cancel() -> None:
    fc = FlowController(clock=Clock())
    a, b = fc.submit(r("a"), "A"), fc.submit(r("b"), "A")
    assert isinstance(a, Ticket) and isinstance(b, Ticket)
    assert fc.cancel(a) and not fc.cancel(a)
    assert drain(fc) == ["b"]


# -- asyncio ------------------------------------------------------------------------------------------


def test_acquire_bypasses_the_queue_when_the_pool_has_room() -> None:
    async def main() -> None:
        fc = FlowController(clock=Clock())
        await fc.acquire(r("a"), "A", lambda: False)
        await fc.acquire(r("s", -1), "A", lambda: False)
        assert fc.in_flight == 2 and len(fc) == 0
        fc.release()
        assert fc.in_flight == 1

    asyncio.run(main())


def test_acquire_waits_while_saturated_and_goes_in_order() -> None:
    async def main() -> None:
        fc = FlowController(clock=Clock(), poll_seconds=60)
        saturated = [True]
        order: list[str] = []

        async def client(rid: str, priority: int, tenant: str) -> None:
            await fc.acquire(r(rid, priority), tenant, lambda: saturated[0])
            order.append(rid)

        with pytest.raises(Shed, match="saturated"):
            await fc.acquire(r("sheddable", -1), "A", lambda: saturated[0])
        tasks = [
            asyncio.create_task(client(rid, p, t))
            for rid, p, t in (("a1", 0, "A"), ("a2", 0, "A"), ("b1", 0, "B"), ("vip", 3, "C"))
        ]
        await asyncio.sleep(0)  # let every client enqueue
        assert len(fc) == 4 and order == []
        fc.release()  # still saturated: nobody goes
        await asyncio.sleep(0)
        assert order == []
        saturated[0] = False
        fc.pump()
        await asyncio.gather(*tasks)
        assert order == ["vip", "a1", "b1", "a2"] and fc.in_flight == 4

    asyncio.run(main())


def test_a_waiter_times_out_and_a_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> None:
        clock = Clock()
        fc = FlowController(max_wait_seconds=5, clock=clock, poll_seconds=60)
        waiter = asyncio.create_task(fc.acquire(r("w"), "A", lambda: True))
        leaver = asyncio.create_task(fc.acquire(r("l"), "B", lambda: True))
        await asyncio.sleep(0)
        leaver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaver
        assert len(fc) == 1
        clock.now = 6.0
        fc.pump()
        with pytest.raises(Shed) as info:
            await waiter
        assert info.value.reason == "timeout" and info.value.status_code == 503 and len(fc) == 0
        assert fc.in_flight == 0

    asyncio.run(main())


def test_acquire_keeps_later_arrivals_behind_queued_ones() -> None:
    async def main() -> None:
        fc = FlowController(clock=Clock(), poll_seconds=60)
        saturated = [True]
        first = asyncio.create_task(fc.acquire(r("first"), "A", lambda: saturated[0]))
        await asyncio.sleep(0)
        saturated[0] = False
        # the pool has room again: the queued request goes first (pumped on entry), the new one bypasses
        await fc.acquire(r("second"), "B", lambda: saturated[0])
        assert len(fc) == 0 and fc.in_flight == 2
        await first

    asyncio.run(main())
