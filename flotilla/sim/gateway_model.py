"""The inference gateway as the online simulator sees it: the live gateway's scheduling objects, fed
the way its data layer feeds them, on the simulated clock.

What the live gateway (flotilla/gateway/dispatch.py, datalayer.py) does, and what this does instead:

    scrapes /metrics every 50 ms, per endpoint   a tick per endpoint every `scrape_interval`, each at
                                                 its own phase: the scraped gauges are the engine's
                                                 after its last finished step, up to one interval old
    counts its own requests in flight            the same count, exact at every pick
    long-polls each engine's KV events           the events of a step, applied `kv_event_delay` after
                                                 the step ends (when they are published)
    flow control while the pool is saturated     the same FlowController's synchronous core, on the
                                                 simulated clock; pumped on every finish and tick
    picks with the profile, records the prefix   `load_profiles()` / `default_scheduling()`: the same
    and the session after the pick               Profile objects, indexes and session table

The precise prefix index is the gateway's `PrecisePrefixIndex`; its tokenizer returns the token ids
the engine was given (the simulator tokenized the prompt once, as the emulator's server does).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.gateway.policy import Scheduling, default_scheduling
from flotilla.gateway.scheduling import (
    Endpoint,
    EndpointMetrics,
    EndpointSnapshot,
    FlowController,
    InferenceRequest,
    NoEndpoint,
    PrecisePrefixIndex,
    SchedulingContext,
    Shed,
    Ticket,
)
from flotilla.sim.engine import Engine as Clock

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class GatewaySpec:
    """The gateway's settings, as `flotilla gateway` takes them (times in simulated seconds)."""

    profile: str = "default"
    profile_file: Path | None = None
    scrape_interval: float = 0.05  # GAIE's refresh rate
    kv_events: bool | None = None  # None: on for a profile with the precise-prefix-cache-scorer
    kv_event_delay: float = 0.0
    flow_control: bool = True
    queue_threshold: int = 5  # GAIE's saturation detector
    kv_threshold: float = 0.8
    max_queue: int = 1000
    max_wait_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.scrape_interval <= 0 or self.kv_event_delay < 0:
            raise ValueError("scrape_interval must be > 0 and kv_event_delay >= 0")


@dataclass
class EndpointState:
    """What the gateway knows about one endpoint: its last scrape and its requests in flight."""

    endpoint: Endpoint
    metrics: EndpointMetrics = field(default_factory=lambda: EndpointMetrics(scraped_at=0.0))
    in_flight: int = 0


# what a scrape reads from an engine: (waiting, running, kv usage) after its last finished step
Gauges = Callable[[], tuple[int, int, float]]


class SimGateway:
    """Route requests with a scheduling profile over snapshots the simulator keeps like the data layer."""

    def __init__(
        self,
        spec: GatewaySpec,
        clock: Clock,
        endpoints: Sequence[tuple[Endpoint, Gauges]],
        *,
        tokens_of: Callable[[str], Sequence[int]],
        seed: int = 0,
        scheduling: Scheduling | None = None,
    ) -> None:
        self.spec, self.clock = spec, clock
        self.scheduling = scheduling or default_scheduling(
            spec.profile_file,
            queue_threshold=spec.queue_threshold,
            kv_threshold=spec.kv_threshold,
            max_queue=spec.max_queue,
            max_wait_seconds=spec.max_wait_seconds,
        )
        profiles = self.scheduling.profiles
        if spec.profile not in profiles:
            raise ValueError(f"unknown scheduling profile {spec.profile!r}; known: {', '.join(sorted(profiles))}")
        self.picker = profiles[spec.profile]
        self.rng = random.Random(seed)  # as `flotilla gateway --seed SEED` seeds its picker
        self.states = {e.address: EndpointState(e) for e, _ in endpoints}
        self._gauges = {e.address: g for e, g in endpoints}
        plugin = getattr(self.picker, "plugin", lambda _t: None)("precise-prefix-cache-scorer")
        kv_events = spec.kv_events if spec.kv_events is not None else plugin is not None
        self.precise: PrecisePrefixIndex | None = None
        if kv_events:  # the gateway's index, tokenizing a request as the engine did (ids by request id)
            block_size = int(getattr(plugin.params, "blockSize", 16)) if plugin is not None else 16
            self.precise = PrecisePrefixIndex(lambda r: tokens_of(r.request_id), block_size=block_size)
            self.scheduling.precise_prefix = self.precise
        self.flow: FlowController | None = None
        if spec.flow_control and self.scheduling.flow is not None:
            self.flow = FlowController(spec.max_queue, spec.max_wait_seconds, clock=lambda: self.clock.now)
        self.picks = 0
        phases = random.Random(f"{seed}:scrape")
        for address in self.states:
            self.clock.at(phases.uniform(0.0, spec.scrape_interval), self._scraper(address), priority=1)
        self.on_tick: Callable[[], None] = lambda: None  # the simulator's hook (flow control, samples)

    # -- the data layer -----------------------------------------------------------------------------------
    def _scraper(self, address: str) -> Callable[[], None]:
        return lambda: self._scrape(address)

    def _scrape(self, address: str) -> None:
        waiting, running, kv = self._gauges[address]()
        state = self.states[address]
        state.metrics = EndpointMetrics(waiting=waiting, running=running, kv_usage=kv, scraped_at=self.clock.now)
        self.clock.after(self.spec.scrape_interval, self._scraper(address), priority=1)
        self.on_tick()

    def kv_events(self, address: str, events: Sequence[Mapping[str, Any]]) -> None:
        """A step's KV events, as the engine publishes them (applied after `kv_event_delay`)."""
        index = self.precise
        if index is None or not events:
            return
        if self.spec.kv_event_delay > 0:
            self.clock.after(self.spec.kv_event_delay, lambda: index.apply(address, events))
        else:
            index.apply(address, events)

    def snapshots(self) -> list[EndpointSnapshot]:
        return [EndpointSnapshot(s.endpoint, s.metrics, s.in_flight) for s in self.states.values()]

    def saturated(self) -> bool:
        detector = self.scheduling.saturation
        return detector is not None and detector.saturated(self.snapshots())

    # -- the request path ---------------------------------------------------------------------------------
    def admit(self, request: InferenceRequest) -> Ticket | Shed | None:
        """Flow control, as `InferenceGateway.admit`: None when the request may go to the pick now, a
        Ticket when it waits (`dispatchable` hands it out later), a Shed when it is refused."""
        flow = self.flow
        if flow is None:
            return None
        saturated = self.saturated()
        if not saturated and not len(flow):  # every simulated request has priority 0: any queue is ahead
            return None
        return flow.submit(request, DEFAULT_TENANT, saturated)

    def dispatchable(self) -> tuple[list[Ticket], list[Ticket]]:
        """(tickets that may go now, tickets that waited too long: 503), as the flow controller's pump."""
        flow = self.flow
        if flow is None or not len(flow):
            return [], []
        expired = flow.expire()
        went: list[Ticket] = []
        while len(flow) and not self.saturated():
            ticket = flow.dispatch()
            if ticket is None:
                break
            went.append(ticket)
        return went, expired

    def pick(self, request: InferenceRequest) -> str | NoEndpoint:
        """The endpoint the profile picks (its address), with the prefix and session recorded there and
        the request counted in flight; NoEndpoint when nothing can take it."""
        s = self.scheduling
        ctx = SchedulingContext(
            now=self.clock.now, rng=self.rng, prefix=s.prefix, precise_prefix=s.precise_prefix, sessions=s.sessions
        )
        result = self.picker.pick(ctx, request, self.snapshots())
        if isinstance(result, NoEndpoint):
            return result
        address = result.endpoint.address
        self.picks += 1
        self.states[address].in_flight += 1
        if s.prefix is not None:
            s.prefix.record(request, address)
        if s.sessions is not None and request.session:
            s.sessions.record(request.session, address, self.clock.now)
        return address

    def finished(self, address: str) -> None:
        """A request sent to `address` ended (its last token, or an error)."""
        state = self.states[address]
        state.in_flight = max(0, state.in_flight - 1)
