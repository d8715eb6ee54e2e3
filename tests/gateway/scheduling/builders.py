"""Small builders for scheduling tests: endpoints by name and metrics, plugins run by type name.

ep("a", waiting=3, kv=0.5)                     # address "a:8000"
run_filter("least-queue-filter", [ep(...), ...]) -> ["a", "c"]     (names kept)
run_scorer("queue-scorer", [...]) -> [1.0, 0.5, 0.0]
run_picker("max-score-picker", [(ep("a"), 1.0), ...], seed=3) -> ["a", "b"]   (the ranking)
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from flotilla.gateway.scheduling import (
    Endpoint,
    EndpointMetrics,
    EndpointSnapshot,
    InferenceRequest,
    PrefixView,
    SchedulingContext,
    SessionView,
    default_registry,
)

REGISTRY = default_registry()


def ep(
    name: str,
    waiting: int = 0,
    kv: float = 0.0,
    *,
    running_loras: Iterable[str] = (),
    waiting_loras: Iterable[str] = (),
    max_loras: int = 0,
    fresh: bool = True,
    scraped_at: float = 0.0,
    in_flight: int = 0,
) -> EndpointSnapshot:
    metrics = EndpointMetrics(
        waiting=waiting,
        kv_usage=kv,
        running_loras=frozenset(running_loras),
        waiting_loras=frozenset(waiting_loras),
        max_loras=max_loras,
        scraped_at=scraped_at,
        fresh=fresh,
    )
    return EndpointSnapshot(Endpoint(name, f"{name}:8000", "default/pool"), metrics, in_flight)


def req(
    model: str = "base", prompt: str = "", *, session: str | None = None, priority: int = 0, rid: str = "r"
) -> InferenceRequest:
    return InferenceRequest(rid, model, prompt, session=session, priority=priority)


def context(
    seed: int = 0,
    now: float = 0.0,
    *,
    prefix: PrefixView | None = None,
    precise: PrefixView | None = None,
    sessions: SessionView | None = None,
    turn: int | None = None,
) -> SchedulingContext:
    return SchedulingContext(now, random.Random(seed), prefix, precise, sessions, turn)


def names(endpoints: Sequence[EndpointSnapshot]) -> list[str]:
    return [e.endpoint.name for e in endpoints]


def run_filter(
    type_: str,
    endpoints: Sequence[EndpointSnapshot],
    request: InferenceRequest | None = None,
    ctx: SchedulingContext | None = None,
    **params: Any,
) -> list[str]:
    plugin = REGISTRY.bind(type_, params)
    assert plugin.kind == "filter"
    return names(plugin.spec.fn(ctx or context(), request or req(), list(endpoints), plugin.params))


def run_scorer(
    type_: str,
    endpoints: Sequence[EndpointSnapshot],
    request: InferenceRequest | None = None,
    ctx: SchedulingContext | None = None,
    **params: Any,
) -> list[float]:
    plugin = REGISTRY.bind(type_, params)
    assert plugin.kind == "scorer"
    scores: list[float] = plugin.spec.fn(ctx or context(), request or req(), list(endpoints), plugin.params)
    return [round(s, 6) for s in scores]


def run_picker(
    type_: str, scored: Sequence[tuple[EndpointSnapshot, float]], seed: int = 0, turn: int | None = None, **params: Any
) -> list[str]:
    plugin = REGISTRY.bind(type_, params)
    assert plugin.kind == "picker"
    return names(plugin.spec.fn(context(seed, turn=turn), list(scored), plugin.params))
