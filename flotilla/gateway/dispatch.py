"""The front door's request path: resolve the pool, queue in flow control, pick, forward, record.

    body (413 over the limit) -> parse (400) -> HTTPRoute rule, else the pools serving the model (404)
    -> InferenceRequest (prompt text, x-session-token, x-gateway-inference-objective -> priority)
    -> 503 at once when no endpoint of those pools is fresh
    -> flow control: wait while the pool is saturated, 429 when shed
    -> pick with the pool's profile (FailOpen: a random ready endpoint if the picker fails;
       FailClose: 503), 503 when no endpoint is left
    -> forward with x-gateway-destination-endpoint; one retry on the next-ranked endpoint when the
       first fails before answering; 504 when nothing arrives within the timeout
    -> pass the response through (x-gateway-destination-endpoint-served), record prefix and session

A client that disconnects while its request waits or streams cancels the upstream request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

import httpx
from starlette.types import Receive, Scope, Send

from flotilla.gateway.config import GatewayConfig
from flotilla.gateway.datalayer import DataLayer
from flotilla.gateway.endpoints import EndpointSource, FailureMode, Pool, Topology
from flotilla.gateway.metrics import GatewayMetrics, UsageTracker
from flotilla.gateway.policy import FlowControl, Scheduling, forget_endpoints, retain
from flotilla.gateway.proxy import (
    DisconnectWatch,
    StreamOutcome,
    UpstreamRequest,
    UpstreamResponse,
    backward_headers,
    forward_headers,
    open_upstream,
)
from flotilla.gateway.requests import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    INFERENCE_PATHS,
    TRANSCRIPTIONS_PATH,
    ClientGone,
    GatewayError,
    ParsedBody,
    parse_form_model,
    parse_json_body,
    parse_loose_body,
    read_body,
)
from flotilla.gateway.routes import Backend, choose_backend, match_route, modify_headers, routes_for_gateway
from flotilla.gateway.scheduling.types import (
    OBJECTIVE_HEADER,
    SERVED_HEADER,
    SESSION_HEADER,
    Endpoint,
    EndpointSnapshot,
    InferenceRequest,
    NoEndpoint,
    SchedulingContext,
)
from flotilla.gateway.upstream import ClientDisconnected, RawHeaders, UpstreamPool, UpstreamReply

log = logging.getLogger("flotilla.gateway")
FAIRNESS_HEADER = "x-gateway-inference-fairness-id"  # GAIE: the flow-control tenant
CLIENT_CLOSED = "499"  # nginx's code for a client that went away (only in metrics and logs)
RETRY = {"retry-after": "1"}


@dataclass(frozen=True)
class Target:
    """Where a request may go: the pools, their endpoints, and how to pick among them."""

    pools: tuple[Pool, ...]
    endpoints: tuple[Endpoint, ...]
    failure_mode: FailureMode
    timeout: float
    profile: str
    backend: Backend | None = None  # the HTTPRoute backend chosen (its header filters apply)


class Admission:
    """A request's place in its pools' flow control, taken by `InferenceGateway.admit`; `release()`
    (idempotent) gives it back when the request is over."""

    __slots__ = ("_flow",)

    def __init__(self, flow: FlowControl | None) -> None:
        self._flow = flow

    def release(self) -> None:
        flow, self._flow = self._flow, None
        if flow is not None:
            flow.release()


NOT_ADMITTED = Admission(None)  # nothing to give back (no flow control, or not admitted yet)


class InferenceGateway:
    """The front door's state and request path; `create_gateway_app` serves it over HTTP."""

    def __init__(
        self,
        source: EndpointSource,
        scheduling: Scheduling,
        config: GatewayConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config = config or GatewayConfig()
        if config.profile not in scheduling.profiles:
            known = ", ".join(sorted(scheduling.profiles))
            raise ValueError(f"unknown scheduling profile {config.profile!r}; known: {known}")
        self.source = source
        self.scheduling = scheduling
        self.metrics = GatewayMetrics()
        self.topology = Topology()
        self._routes = self.topology.routes
        self._clock = clock
        self._rng = random.Random(config.seed)
        self._pool = UpstreamPool(connect_timeout=config.connect_timeout, keepalive_expiry=30)
        # The data layer scrapes through the front door's own client; a given transport (a fake) means httpx.
        self._scrape_client: httpx.AsyncClient | UpstreamPool = (
            UpstreamPool(connect_timeout=1.0)
            if transport is None
            else httpx.AsyncClient(transport=transport, limits=httpx.Limits(max_keepalive_connections=256))
        )
        precise = scheduling.precise_prefix
        self.data = DataLayer(
            self._scrape_client,
            interval=config.scrape_interval,
            stale_after=config.stale_after,
            kv_events=precise.apply if precise is not None and config.kv_events else None,
            clock=clock,
        )
        self._resync: asyncio.Task[None] | None = None
        self._flows: dict[tuple[str, ...], FlowControl] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.refresh()
        self._resync = asyncio.create_task(self._resync_loop(), name="gateway resync")

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
        await self.data.close()
        await self._pool.aclose()
        await self._scrape_client.aclose()

    async def refresh(self) -> None:
        """Read the endpoint source once and start or stop scraping what changed."""
        topology = await self.source.topology()
        before = {e.address for e in self.topology.endpoints()}
        self.topology = topology
        self._routes = routes_for_gateway(topology.routes, self.config.gateway)
        endpoints = topology.endpoints()
        self.data.update(endpoints)
        addresses = {e.address for e in endpoints}
        for index in (self.scheduling.prefix, self.scheduling.precise_prefix):
            retain(index, addresses)
        forget_endpoints(self.scheduling.sessions, before - addresses)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync_interval)
            try:
                await self.refresh()
            except Exception as exc:  # the control plane is away: keep routing on what we know
                log.warning("endpoint source failed (%s: %s); keeping the last topology", type(exc).__name__, exc)

    # -- models ---------------------------------------------------------------------------------
    def served_models(self, pool: Pool) -> frozenset[str]:
        """The pool's declared models, else what its endpoints list at /v1/models."""
        if pool.models:
            return pool.models
        return frozenset().union(*(self.data.models(e.address) for e in pool.endpoints))

    def models(self) -> dict[str, list[str]]:
        """Every model name served, with the pools serving it."""
        out: dict[str, list[str]] = {}
        for pool in self.topology.pools.values():
            for model in self.served_models(pool):
                out.setdefault(model, []).append(pool.name)
        return dict(sorted(out.items()))

    # -- the request path -----------------------------------------------------------------------
    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one client request (any path) as an ASGI app: see the module docstring."""
        received = self._clock()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method, path, query = scope["method"], scope["path"], scope.get("query_string", b"")
        model = ""
        try:
            raw = await read_body(receive, headers.get("content-length"), self.config.max_body_bytes)
            parsed = await self.parse(method, path, raw, headers)
            model = parsed.model
            params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}
            target = self.resolve(method, path, headers, params, parsed.model)
        except GatewayError as exc:
            self.metrics.requests.labels(model, model).inc()
            self.metrics.errors.labels(model, model, str(exc.status)).inc()
            await exc.response()(scope, receive, send)
            return
        except ClientGone:
            return
        ireq = self.inference_request(parsed, headers, target)
        await self._dispatch(scope, receive, send, raw, ireq, target, received, sse=parsed.stream)

    async def parse(self, method: str, path: str, raw: bytes, headers: Mapping[str, str]) -> ParsedBody:
        """The body of a request (GatewayError 400 for a bad inference body)."""
        if method == "POST" and path in (CHAT_PATH, COMPLETIONS_PATH):
            return parse_json_body(raw, path)
        if method == "POST" and path == TRANSCRIPTIONS_PATH:
            return ParsedBody(await parse_form_model(raw, headers.get("content-type", "")))
        return parse_loose_body(raw)

    def pools_for(self, model: str) -> list[Pool]:
        return [p for p in self.topology.pools.values() if model in self.served_models(p)]

    def resolve(
        self, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, str], model: str
    ) -> Target:
        """Where a request may go: an HTTPRoute rule's pool, else the pools serving `model` (GatewayError
        404 or 500 otherwise). `headers` have lower-case names; `host` is among them."""
        timeout, backend = self.config.request_timeout, None
        rule = match_route(self._routes, headers.get("host", ""), path, method, headers, query)
        if rule is not None:
            backend = choose_backend(rule, self._rng)
            where = f"HTTPRoute {rule.route_name} rule {rule.rule_index}"
            if backend is None:
                raise GatewayError(500, f"{where} has no backendRef with a weight above 0")
            if not backend.is_pool:
                raise GatewayError(500, f"{where}: backend {backend.kind} {backend.name} is not an InferencePool")
            pool = self.topology.pools.get(backend.name)
            if pool is None:
                raise GatewayError(500, f"{where}: InferencePool {backend.name} does not exist")
            pools = [pool]
            timeout = rule.timeout() or timeout
        elif path in INFERENCE_PATHS:
            pools = self.pools_for(model)
            if not pools:
                raise GatewayError(404, f"The model `{model}` does not exist.", "model")
        else:
            raise GatewayError(404, f"no route for {method} {path}")
        endpoints = {e.address: e for p in pools for e in p.endpoints}
        mode: FailureMode = "FailOpen" if all(p.failure_mode == "FailOpen" for p in pools) else "FailClose"
        profile = next((p.profile for p in pools if p.profile), self.config.profile)
        return Target(tuple(pools), tuple(endpoints.values()), mode, timeout, profile, backend)

    def inference_request(self, parsed: ParsedBody, headers: Mapping[str, str], target: Target) -> InferenceRequest:
        name = headers.get(OBJECTIVE_HEADER)
        objective = self.topology.objective(name, (p.name for p in target.pools)) if name else None
        return InferenceRequest(
            request_id=headers.get("x-request-id") or secrets.token_hex(16),
            model=parsed.model,
            prompt=parsed.prompt,
            session=headers.get(SESSION_HEADER),
            objective=name,
            priority=objective.priority if objective else 0,
            headers=headers,
            prompt_tokens_estimate=len(parsed.prompt) // 4,
        )

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw: bytes,
        ireq: InferenceRequest,
        target: Target,
        received: float,
        sse: bool,
    ) -> None:
        m, model = self.metrics, ireq.model
        series = m.model(model)
        series.requests.inc()
        series.running.inc()
        admission, handed_over = NOT_ADMITTED, False
        watch = DisconnectWatch(receive)
        reply: UpstreamReply | None = None
        try:
            admission = await self.admit(ireq, target, watch.until_left)
            chosen, fallbacks = self.pick(ireq, target)
            base = forward_headers(scope["headers"], {"x-request-id": ireq.request_id})
            if target.backend is not None:
                base = _raw(modify_headers(_text(base), target.backend.request_headers))
            path = scope.get("raw_path") or scope["path"].encode()
            query = scope.get("query_string", b"")
            reply, served = await open_upstream(
                self._pool,
                UpstreamRequest(scope["method"], path + b"?" + query if query else path, base, raw),
                [e.address for e in (chosen, *fallbacks[:1])],
                deadline=received + target.timeout,
                clock=self._clock,
                in_flight=self.data,
                on_retry=self.metrics.retries.inc,
                watch=watch,
            )
            self.record(ireq, served)
            tracker = UsageTracker(sse or (reply.header(b"content-type") or b"").startswith(b"text/event-stream"))

            def done(outcome: StreamOutcome) -> None:
                self.data.end(served)
                admission.release()
                series.running.dec()
                tracker.finish()
                m.finished(
                    model,
                    reply.status,
                    "504" if outcome.timed_out else CLIENT_CLOSED if outcome.disconnected else "502",
                    outcome.completed,
                    elapsed=self._clock() - received,
                    ttft=outcome.first_chunk_at - received if outcome.first_chunk_at is not None else None,
                    input_tokens=tracker.prompt_tokens,
                    output_tokens=tracker.output_tokens,
                )

            headers = backward_headers(reply, {SERVED_HEADER: served, "x-request-id": ireq.request_id})
            if target.backend is not None and target.backend.response_headers:
                headers = _raw(modify_headers(_text(headers), target.backend.response_headers))
            response = UpstreamResponse(reply, headers, tracker.feed, done, watch, self._clock)
            handed_over = True
        except GatewayError as exc:
            m.errors.labels(model, model, str(exc.status)).inc()
            watch.stop()
            await exc.response()(scope, receive, send)
            return
        except ClientDisconnected:
            log.info("request %s: the client went away before the model server answered", ireq.request_id)
            m.errors.labels(model, model, CLIENT_CLOSED).inc()
            return
        finally:
            if not handed_over:
                watch.stop()
                series.running.dec()
                if reply is not None:  # opened, never passed through: let the model server go
                    reply.close()
                    self.data.end(served)
                admission.release()
        await response(scope, receive, send)

    async def admit(
        self, ireq: InferenceRequest, target: Target, wait: Callable[[Awaitable[None]], Awaitable[None]] | None = None
    ) -> Admission:
        """Let `ireq` go on to the pick, the same way on both data planes: GatewayError 503 at once when
        no endpoint of the target is fresh; then wait in the pools' flow control while they are
        saturated (GatewayError 429, or 503 after the longest wait, when shed). `wait` wraps the flow
        control's wait (the front door's: cancel it when the client leaves). Release the returned
        admission when the request is over."""
        if not any(self.data.metrics(e.address).fresh for e in target.endpoints):
            pools = ", ".join(p.name for p in target.pools)
            raise GatewayError(503, f"no ready endpoint in {pools}: none answers its /metrics")
        flow = self._flow(target)
        if flow is None:
            return NOT_ADMITTED
        waited = self._clock()
        tenant = ireq.headers.get(FAIRNESS_HEADER) or ireq.objective or "default"
        acquire = flow.acquire(ireq, tenant, self._saturation(target))
        try:
            await (wait(acquire) if wait is not None else acquire)
        except self.scheduling.shed_errors as exc:
            status = int(getattr(exc, "status_code", 429))
            reason = getattr(exc, "reason", str(exc))
            raise GatewayError(status, f"flow control shed this request ({reason}); retry later", None, RETRY) from None
        self.metrics.flow_wait.observe(self._clock() - waited)
        return Admission(flow)

    def _flow(self, target: Target) -> FlowControl | None:
        """The flow controller of the target's pools (one per pool, made on first use)."""
        make = self.scheduling.flow
        if make is None:
            return None
        key = tuple(p.name for p in target.pools)
        flow = self._flows.get(key)
        if flow is None:
            flow = self._flows[key] = make()
        return flow

    def _saturation(self, target: Target) -> Callable[[], bool]:
        detector = self.scheduling.saturation
        if detector is None:
            return lambda: False
        return lambda: detector.saturated(self.data.snapshot(target.endpoints))

    def pick(self, ireq: InferenceRequest, target: Target) -> tuple[EndpointSnapshot, tuple[EndpointSnapshot, ...]]:
        s = self.scheduling
        snapshots = self.data.snapshot(target.endpoints)
        ctx = SchedulingContext(
            now=self._clock(), rng=self._rng, prefix=s.prefix, precise_prefix=s.precise_prefix, sessions=s.sessions
        )
        picker = s.profiles.get(target.profile)
        started = time.perf_counter()
        try:
            if picker is None:
                raise LookupError(f"no scheduling profile named {target.profile!r}")
            result = picker.pick(ctx, ireq, snapshots)
        except Exception as exc:
            self.metrics.picker_failures.labels(target.failure_mode).inc()
            log.warning("picker failed (%s: %s); failureMode %s", type(exc).__name__, exc, target.failure_mode)
            if target.failure_mode == "FailClose":
                raise GatewayError(
                    503, f"the endpoint picker is unavailable ({exc}) and the pool fails closed"
                ) from None
            ready = [e for e in snapshots if e.metrics.fresh] or snapshots
            if not ready:
                raise GatewayError(503, "no ready endpoint in the pool") from None
            chosen = self._rng.choice(ready)
            rest = [e for e in ready if e is not chosen]
            return chosen, tuple(self._rng.sample(rest, min(1, len(rest))))
        self.metrics.scheduling.labels(target.profile).observe(time.perf_counter() - started)
        if isinstance(result, NoEndpoint):
            raise GatewayError(503, f"no endpoint can take this request: {result.reason}")
        return result.endpoint, result.fallbacks

    def record(self, ireq: InferenceRequest, address: str) -> None:
        s = self.scheduling
        if s.prefix is not None:
            s.prefix.record(ireq, address)
        if s.sessions is not None and ireq.session:
            s.sessions.record(ireq.session, address, self._clock())


def _text(headers: RawHeaders) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _raw(headers: list[tuple[str, str]]) -> RawHeaders:
    """Headers as bytes for the wire; names lower-cased (as ASGI has them)."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
