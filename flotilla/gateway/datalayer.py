"""The gateway's data layer: what each endpoint's model server says about itself, kept fresh.

For every endpoint it knows, the data layer runs one asyncio task that scrapes `GET /metrics`
every `interval` (default 50 ms, GAIE's refresh rate) and keeps the latest `EndpointMetrics`:

    waiting   vllm:num_requests_waiting            (summed over engines)
    running   vllm:num_requests_running            (summed over engines)
    kv_usage  vllm:kv_cache_usage_perc, else vllm:gpu_cache_usage_perc (mean over engines)
    LoRA      vllm:lora_requests_info: the newest series' running/waiting_lora_adapters, max_lora

A scrape that fails (connection error, timeout, an HTTP status other than 200 or 404) marks the
endpoint unfresh at once; metrics older than `stale_after` are unfresh too (the picker drops
unfresh endpoints). A server without `/metrics` (404) is alive with zero load. Until its first
scrape an endpoint is unfresh. `/v1/models` is read at the first scrape and every
`models_interval`, for the names the endpoint serves. Only the families above are handed to
`prometheus_client.parser` (the rest of vLLM's exposition is dropped line by line first: the
scrape is cheap enough to run 20 times a second per endpoint).

KV-cache events (optional): with a `kv_events` sink, one more task per endpoint long-polls
`GET /v1/kv_events?since=SEQ&timeout=S` (the emulator's feed, see
flotilla/serving/emulator/kvevents.py) and hands each batch's events, as JSON objects, to
`sink(address, events)`; an endpoint that answers 404 has no feed and is left alone. When events
were lost (the log moved past SEQ, or the engine restarted) or the endpoint goes away, the sink
gets `[{"type": "AllBlocksCleared"}]` first.

The gateway's own in-flight count per endpoint (`begin` / `end`) is part of every snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from flotilla.gateway.scheduling.types import Endpoint, EndpointMetrics, EndpointSnapshot
from flotilla.gateway.upstream import UpstreamError, UpstreamPool, UpstreamTimeout

log = logging.getLogger("flotilla.gateway.datalayer")
KVEventSink = Callable[[str, Sequence[Mapping[str, Any]]], None]
CLEARED: tuple[Mapping[str, Any], ...] = ({"type": "AllBlocksCleared"},)
WAITING, RUNNING = "vllm:num_requests_waiting", "vllm:num_requests_running"
KV_USAGE, GPU_CACHE_USAGE = "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"
LORA_INFO = "vllm:lora_requests_info"
FAMILIES = (WAITING, RUNNING, KV_USAGE, GPU_CACHE_USAGE, LORA_INFO)
UNSCRAPED = EndpointMetrics(fresh=False)


def _sample_value(line: str) -> float:
    """The value of a sample line `name{labels} value [timestamp]` (or `name value ...`)."""
    brace = line.rfind("}")
    rest = line[brace + 1 :] if brace >= 0 else line.split(None, 1)[1]
    return float(rest.split(None, 1)[0])


def parse_metrics(text: str, now: float) -> EndpointMetrics:
    """The EndpointMetrics in a Prometheus text exposition (vLLM's names; absent families count 0)."""
    values: dict[str, list[float]] = {}
    lora_lines: list[str] = []
    for line in text.splitlines():
        if not line.startswith(FAMILIES):
            continue
        end = len(line)
        for stop in ("{", " "):
            at = line.find(stop)
            if 0 <= at < end:
                end = at
        name = line[:end]
        if name == LORA_INFO:
            lora_lines.append(line)
        elif name in FAMILIES:
            values.setdefault(name, []).append(_sample_value(line))
    lora: tuple[float, Mapping[str, str]] | None = None
    if lora_lines:
        for family in text_string_to_metric_families("\n".join(lora_lines) + "\n"):
            for sample in family.samples:
                if sample.name == LORA_INFO and (lora is None or sample.value >= lora[0]):
                    lora = (sample.value, sample.labels)
    kv = values.get(KV_USAGE) or values.get(GPU_CACHE_USAGE) or [0.0]
    loras: Mapping[str, str] = lora[1] if lora else {}
    return EndpointMetrics(
        waiting=int(sum(values.get(WAITING, []))),
        running=int(sum(values.get(RUNNING, []))),
        kv_usage=min(1.0, max(0.0, sum(kv) / len(kv))),
        running_loras=_adapters(loras.get("running_lora_adapters")),
        waiting_loras=_adapters(loras.get("waiting_lora_adapters")),
        max_loras=int(loras.get("max_lora") or 0),
        scraped_at=now,
        fresh=True,
    )


def _adapters(value: str | None) -> frozenset[str]:
    return frozenset(a for a in (value or "").split(",") if a)


class FetchError(Exception):
    """A GET to an endpoint failed (refused, timed out, not HTTP)."""


@dataclass
class _State:
    endpoint: Endpoint
    metrics: EndpointMetrics = UNSCRAPED
    models: frozenset[str] = frozenset()
    tasks: tuple[asyncio.Task[None], ...] = ()


class DataLayer:
    """Scrapes every endpoint it is given (`update`) until `close`; reads are synchronous and cheap."""

    def __init__(
        self,
        client: httpx.AsyncClient | UpstreamPool,
        *,
        interval: float = 0.05,
        stale_after: float = 2.0,
        scrape_timeout: float = 1.0,
        models_interval: float = 5.0,
        kv_events: KVEventSink | None = None,
        kv_poll_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"scrape interval must be > 0, got {interval}")
        self._client = client
        self.interval = interval
        self.stale_after = max(stale_after, 2 * interval)
        self._timeout = scrape_timeout
        self._models_interval = models_interval
        self._kv_sink = kv_events
        self._kv_poll_timeout = kv_poll_timeout
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._in_flight: dict[str, int] = {}
        self.scrapes = 0  # successful metric scrapes, all endpoints (tests, benchmarks)

    # -- membership -----------------------------------------------------------------------------
    def update(self, endpoints: Iterable[Endpoint]) -> None:
        """Scrape exactly these endpoints (by address): start new ones, stop those gone."""
        wanted = {e.address: e for e in endpoints}
        for address in list(self._states):
            if address not in wanted:
                self._drop(address)
        for address, endpoint in wanted.items():
            state = self._states.get(address)
            if state is None:
                state = self._states[address] = _State(endpoint)
                tasks = [asyncio.create_task(self._scrape_loop(state), name=f"scrape {address}")]
                if self._kv_sink is not None:
                    tasks.append(asyncio.create_task(self._kv_loop(state), name=f"kv-events {address}"))
                state.tasks = tuple(tasks)
            elif state.endpoint != endpoint:
                state.endpoint = endpoint

    def _drop(self, address: str) -> None:
        state = self._states.pop(address)
        for task in state.tasks:
            task.cancel()
        if self._kv_sink is not None:
            self._kv_sink(address, CLEARED)

    async def close(self) -> None:
        tasks = [t for s in self._states.values() for t in s.tasks]
        self._states.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # -- reads ----------------------------------------------------------------------------------
    def metrics(self, address: str) -> EndpointMetrics:
        """The latest metrics of `address`, unfresh when stale, failing or never scraped."""
        state = self._states.get(address)
        if state is None:
            return UNSCRAPED
        m = state.metrics
        if m.fresh and self._clock() - m.scraped_at > self.stale_after:
            return replace(m, fresh=False)
        return m

    def models(self, address: str) -> frozenset[str]:
        state = self._states.get(address)
        return state.models if state else frozenset()

    def snapshot(self, endpoints: Iterable[Endpoint]) -> list[EndpointSnapshot]:
        """One immutable snapshot per endpoint: its metrics and the gateway's in-flight count."""
        return [EndpointSnapshot(e, self.metrics(e.address), self._in_flight.get(e.address, 0)) for e in endpoints]

    def in_flight(self, address: str) -> int:
        return self._in_flight.get(address, 0)

    def begin(self, address: str) -> None:
        self._in_flight[address] = self._in_flight.get(address, 0) + 1

    def end(self, address: str) -> None:
        left = self._in_flight.get(address, 0) - 1
        if left > 0:
            self._in_flight[address] = left
        else:
            self._in_flight.pop(address, None)

    async def wait_scraped(self, timeout: float = 5.0) -> bool:
        """Wait until every endpoint has been scraped once (successfully or not); False on timeout."""
        deadline = self._clock() + timeout
        while any(s.metrics is UNSCRAPED for s in self._states.values()):
            if self._clock() > deadline:
                return False
            await asyncio.sleep(self.interval / 2)
        return True

    # -- scraping -------------------------------------------------------------------------------
    async def _get(self, address: str, target: str, timeout: float) -> tuple[int, bytes]:
        """GET http://address/target: the status and the body (FetchError when it fails)."""
        client = self._client
        try:
            if isinstance(client, UpstreamPool):
                return await client.get(address, target, timeout)
            r = await client.get(f"http://{address}{target}", timeout=httpx.Timeout(timeout))
            return r.status_code, r.content
        except (httpx.HTTPError, OSError, UpstreamError, UpstreamTimeout) as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}") from None

    async def _scrape_loop(self, state: _State) -> None:
        next_models = 0.0
        while True:
            started = self._clock()
            if started >= next_models:
                next_models = started + (self._models_interval if await self._scrape_models(state) else 1.0)
            await self._scrape_metrics(state)
            await asyncio.sleep(max(0.0, self.interval - (self._clock() - started)))

    async def _scrape_metrics(self, state: _State) -> None:
        try:
            status, body = await self._get(state.endpoint.address, "/metrics", self._timeout)
            now = self._clock()
            if status == 200:
                state.metrics = parse_metrics(body.decode(), now)
                self.scrapes += 1
                return
            if status == 404:
                state.metrics = EndpointMetrics(scraped_at=now, fresh=True)
                return
            reason = f"HTTP {status}"
        except (FetchError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if state.metrics.fresh or state.metrics is UNSCRAPED:
            log.info("endpoint %s: scrape failed (%s); unfresh until it answers", state.endpoint.address, reason)
        state.metrics = replace(state.metrics, fresh=False, scraped_at=self._clock())

    async def _scrape_models(self, state: _State) -> bool:
        try:
            status, body = await self._get(state.endpoint.address, "/v1/models", self._timeout)
            if status != 200:
                return status == 404
            data = json.loads(body).get("data") or []
            state.models = frozenset(str(m["id"]) for m in data if isinstance(m, dict) and m.get("id"))
            return True
        except (FetchError, ValueError, AttributeError):
            return False

    async def _kv_loop(self, state: _State) -> None:
        assert self._kv_sink is not None
        address, since = state.endpoint.address, 0
        while True:
            started = self._clock()
            target = f"/v1/kv_events?since={since}&timeout={self._kv_poll_timeout}"
            try:
                status, raw = await self._get(address, target, self._kv_poll_timeout + 5.0)
            except FetchError:
                await asyncio.sleep(1.0)
                continue
            if status == 404:
                return
            if status != 200:
                await asyncio.sleep(1.0)
                continue
            try:
                body = json.loads(raw)
            except ValueError:
                await asyncio.sleep(1.0)
                continue
            first, last = int(body.get("first_seq", 1)), int(body.get("last_seq", 0))
            if since and (last < since or first > since + 1):  # restarted, or events were dropped
                self._kv_sink(address, CLEARED)
                since = 0 if last < since else since
            batches = body.get("batches") or []
            for batch in batches:
                self._kv_sink(address, batch.get("events") or [])
                since = int(batch["seq"])
            if not batches and self._clock() - started < 0.05:
                await asyncio.sleep(0.05)  # a server that does not long-poll: do not spin
