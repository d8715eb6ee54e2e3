"""The contract between the endpoint picker's plugins and their drivers.

Drivers (the Python front door, the Envoy ext_proc picker, the simulator) build an immutable
`EndpointSnapshot` per candidate endpoint (its latest scraped vLLM metrics plus the gateway's own
in-flight count) and an `InferenceRequest` per request, then call the bound scheduling profile
with a `SchedulingContext` (clock reading, seeded random generator, read-only views of the
prefix-cache indexes and session table). Plugins never do I/O, never read the wall clock and
never mutate the context; the driver records what was picked (prefix blocks, session) after
the pick, through the indexes' own methods.

Shapes follow GAIE's EPP: a filter drops candidates, a scorer returns one score in [0, 1] per
candidate, a picker chooses from the weighted sum (see ../../shared/ARCHITECTURE.md).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

SESSION_HEADER = "x-session-token"
OBJECTIVE_HEADER = "x-gateway-inference-objective"
DESTINATION_HEADER = "x-gateway-destination-endpoint"  # GAIE: the endpoint the picker chose ("ip:port")
SERVED_HEADER = "x-gateway-destination-endpoint-served"  # GAIE conformance: the endpoint that served


@dataclass(frozen=True, slots=True)
class EndpointMetrics:
    """What the data layer last scraped from an endpoint's /metrics (vLLM names).

    `fresh` is False when the last scrape failed or is older than the staleness bound: such an
    endpoint is unhealthy and filtered out."""

    waiting: int = 0  # vllm:num_requests_waiting
    running: int = 0  # vllm:num_requests_running
    kv_usage: float = 0.0  # vllm:kv_cache_usage_perc, 0..1
    running_loras: frozenset[str] = frozenset()  # vllm:lora_requests_info running_lora_adapters
    waiting_loras: frozenset[str] = frozenset()
    max_loras: int = 0
    scraped_at: float = 0.0
    fresh: bool = True


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One model-server endpoint: a ready pod's address in a pool, or a static URL from config."""

    name: str  # "namespace/pod" or the static URL
    address: str  # "ip:port"
    pool: str  # "namespace/pool" or "static"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointSnapshot:
    endpoint: Endpoint
    metrics: EndpointMetrics
    in_flight: int = 0  # requests the gateway sent there that have not finished

    @property
    def address(self) -> str:
        return self.endpoint.address


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """What the picker may look at: the model asked for (a base model or a LoRA adapter), the text
    that decides prefix reuse (the chat messages or prompt, as sent), the session token and the
    objective (priority) the request belongs to."""

    request_id: str
    model: str
    prompt: str = ""
    session: str | None = None
    objective: str | None = None
    priority: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    prompt_tokens_estimate: int = 0


class PrefixView(Protocol):
    """A read-only view of a prefix-cache index: how many of the request's leading blocks each
    endpoint is believed to hold (approximate: what the gateway routed there; precise: what the
    engines report in KV-cache events)."""

    def matched_blocks(self, request: InferenceRequest, addresses: Sequence[str]) -> Mapping[str, int]: ...

    def total_blocks(self, request: InferenceRequest) -> int: ...


class SessionView(Protocol):
    """Which endpoint served a session last (session affinity)."""

    def endpoint_of(self, session: str) -> str | None: ...


@dataclass(frozen=True)
class SchedulingContext:
    now: float
    rng: random.Random
    prefix: PrefixView | None = None
    precise_prefix: PrefixView | None = None
    sessions: SessionView | None = None
    # The round-robin picker's turn: how many picks its rotation has made (a counter the driver owns,
    # e.g. the simulator). None: the profile counts its own picks (see scheduling/profile.py).
    round_robin_turn: int | None = None


@dataclass(frozen=True, slots=True)
class Pick:
    """The chosen endpoint, the ranked fallbacks (for one retry), and each candidate's total score."""

    endpoint: EndpointSnapshot
    fallbacks: tuple[EndpointSnapshot, ...]
    scores: Mapping[str, float]
    profile: str


@dataclass(frozen=True, slots=True)
class NoEndpoint:
    """Nothing to route to: why (no ready endpoint, all filtered, ...)."""

    reason: str


PickResult = Pick | NoEndpoint
