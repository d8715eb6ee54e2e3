"""The data layer: vLLM metrics parsed, freshness, failing and stale endpoints, models, KV-event feeds.

Model servers are faked at the seam: an httpx MockTransport answering per address.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from flotilla.gateway.datalayer import CLEARED, DataLayer, parse_metrics
from flotilla.gateway.scheduling.types import Endpoint
from flotilla.serving.vllm_metrics import VllmMetrics

Handler = Callable[[httpx.Request], httpx.Response]


def exposition(running: int, waiting: int, kv: float, loras: tuple[str, ...] = ()) -> str:
    m = VllmMetrics("qwen3-8b")
    m.set_state(running=running, waiting=waiting, kv_usage=kv)
    if loras:
        m.set_lora(4, running=loras, waiting=("late",), now=1.0)
    return m.exposition().decode()


def test_parse_vllm_exposition() -> None:
    got = parse_metrics(exposition(3, 2, 0.42, loras=("sql", "chat")), now=5.0)
    assert (got.running, got.waiting, got.kv_usage, got.scraped_at, got.fresh) == (3, 2, 0.42, 5.0, True)
    assert got.running_loras == {"sql", "chat"} and got.waiting_loras == {"late"} and got.max_loras == 4


def test_parse_older_names_and_several_engines() -> None:
    text = (
        'vllm:num_requests_waiting{engine="0"} 2\nvllm:num_requests_waiting{engine="1"} 3\n'
        'vllm:gpu_cache_usage_perc{engine="0"} 0.2\nvllm:gpu_cache_usage_perc{engine="1"} 0.6\n'
        "process_cpu_seconds_total 12\n"
    )
    got = parse_metrics(text, now=0.0)
    assert (got.waiting, got.running, round(got.kv_usage, 6)) == (5, 0, 0.4)
    assert parse_metrics("# nothing of vLLM here\nflotilla_asr_requests_total 3\n", 0.0).fresh


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(body: Callable[[DataLayer, dict[str, Handler], Clock], Any], **kwargs: Any) -> None:
    """Run `body(layer, routes, clock)` in an event loop; routes["ip:port"] answers that endpoint."""
    routes: dict[str, Handler] = {}

    async def handle(request: httpx.Request) -> httpx.Response:
        handler = routes.get(f"{request.url.host}:{request.url.port}")
        if handler is None:
            raise httpx.ConnectError("connection refused", request=request)
        answer = handler(request)
        return await answer if inspect.isawaitable(answer) else answer

    async def main() -> None:
        clock = Clock()
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            layer = DataLayer(client, interval=0.005, stale_after=2.0, clock=clock, **kwargs)
            try:
                await body(layer, routes, clock)
            finally:
                await layer.close()

    asyncio.run(main())


def vllm(running: int = 0, waiting: int = 0, kv: float = 0.0, models: Sequence[str] = ("qwen3-8b",)) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, text=exposition(running, waiting, kv))
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": m} for m in models]})
        return httpx.Response(404)

    return handler


def ep(address: str) -> Endpoint:
    return Endpoint(address, address, "static")


async def settle(layer: DataLayer) -> None:
    assert await layer.wait_scraped(2.0)
    await asyncio.sleep(0.03)  # a few more scrapes


def test_scrapes_keep_each_endpoint_fresh_and_failures_unfresh() -> None:
    async def body(layer: DataLayer, routes: dict[str, Handler], clock: Clock) -> None:
        routes["10.0.0.1:8000"] = vllm(running=1, waiting=4, kv=0.5, models=("qwen3-8b", "sql-lora"))
        routes["10.0.0.3:8000"] = lambda r: httpx.Response(404)  # no /metrics, no /v1/models: alive, idle
        a, b, c = ep("10.0.0.1:8000"), ep("10.0.0.2:8000"), ep("10.0.0.3:8000")
        layer.update([a, b, c])
        await settle(layer)
        assert (layer.metrics(a.address).waiting, layer.metrics(a.address).fresh) == (4, True)
        assert layer.models(a.address) == {"qwen3-8b", "sql-lora"}
        assert not layer.metrics(b.address).fresh  # connection refused
        assert layer.metrics(c.address).fresh and layer.metrics(c.address).waiting == 0
        routes["10.0.0.1:8000"] = lambda r: httpx.Response(500)
        await asyncio.sleep(0.03)
        assert not layer.metrics(a.address).fresh
        assert not layer.metrics("10.9.9.9:1").fresh  # never heard of

    run(body)


def test_metrics_older_than_stale_after_are_unfresh() -> None:
    async def body(layer: DataLayer, routes: dict[str, Handler], clock: Clock) -> None:
        routes["10.0.0.1:8000"] = vllm(waiting=1)
        layer.update([ep("10.0.0.1:8000")])
        await settle(layer)
        assert layer.metrics("10.0.0.1:8000").fresh
        answer = asyncio.Event()

        async def hanging(request: httpx.Request) -> httpx.Response:
            await answer.wait()
            return vllm(waiting=1)(request)

        routes["10.0.0.1:8000"] = hanging  # type: ignore[assignment]  # no scrape completes meanwhile
        await asyncio.sleep(0.02)
        clock.now += 2.5
        assert not layer.metrics("10.0.0.1:8000").fresh  # the last good scrape is 2.5 s old
        answer.set()
        await asyncio.sleep(0.03)
        assert layer.metrics("10.0.0.1:8000").fresh

    run(body)


def test_snapshots_carry_the_gateways_in_flight_counts() -> None:
    async def body(layer: DataLayer, routes: dict[str, Handler], clock: Clock) -> None:
        routes["10.0.0.1:8000"] = vllm()
        a = ep("10.0.0.1:8000")
        layer.update([a])
        layer.begin(a.address)
        layer.begin(a.address)
        layer.end(a.address)
        [snap] = layer.snapshot([a])
        assert snap.in_flight == 1 and snap.address == a.address
        layer.end(a.address)
        assert layer.in_flight(a.address) == 0

    run(body)


def test_kv_events_are_followed_and_gaps_clear_the_index() -> None:
    received: list[tuple[str, list[Mapping[str, Any]]]] = []
    polls: list[int] = []
    stored = {"type": "BlockStored", "block_hashes": [1], "parent_block_hash": None, "token_ids": [5] * 16}

    def feed(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/kv_events":
            return vllm()(request)
        since = int(request.url.params["since"])
        polls.append(since)
        if since == 0:
            return httpx.Response(
                200, json={"first_seq": 1, "last_seq": 1, "batches": [{"seq": 1, "events": [stored]}]}
            )
        if since == 1:  # the log moved on: batches 2-4 were dropped
            batch = {"seq": 5, "events": [{"type": "BlockRemoved", "block_hashes": [1]}]}
            return httpx.Response(200, json={"first_seq": 5, "last_seq": 5, "batches": [batch]})
        return httpx.Response(200, json={"first_seq": 5, "last_seq": 5, "batches": []})

    async def body(layer: DataLayer, routes: dict[str, Handler], clock: Clock) -> None:
        routes["10.0.0.1:8000"] = feed
        routes["10.0.0.2:8000"] = vllm()  # no feed: 404, followed no further
        layer.update([ep("10.0.0.1:8000"), ep("10.0.0.2:8000")])
        for _ in range(200):
            if len(polls) >= 3:
                break
            await asyncio.sleep(0.005)
        layer.update([ep("10.0.0.2:8000")])

    run(body, kv_events=lambda address, events: received.append((address, list(events))), kv_poll_timeout=0.0)
    assert received[:3] == [
        ("10.0.0.1:8000", [stored]),
        ("10.0.0.1:8000", list(CLEARED)),
        ("10.0.0.1:8000", [{"type": "BlockRemoved", "block_hashes": [1]}]),
    ]
    assert received[-1] == ("10.0.0.1:8000", list(CLEARED))  # it left the pool
    assert all(address == "10.0.0.1:8000" for address, _ in received)
