"""`session-affinity-scorer`: the endpoint that served the session last scores 1.0."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.gateway.scheduling.registry import PluginParams, SchedulerRegistry
from flotilla.gateway.scheduling.types import (
    SESSION_HEADER,
    EndpointSnapshot,
    InferenceRequest,
    SchedulingContext,
)


class SessionAffinityScorerParams(PluginParams):
    pass


def session_affinity_scorer(
    ctx: SchedulingContext,
    request: InferenceRequest,
    endpoints: Sequence[EndpointSnapshot],
    params: SessionAffinityScorerParams,
) -> list[float]:
    """1.0 for the endpoint ctx.sessions says served the request's session (request.session, else the
    x-session-token header) last, 0.0 for every other. No session, no table, or an unknown or expired
    session -> all 0. No ties among 1.0 (one address)."""
    session = request.session or request.headers.get(SESSION_HEADER)
    target = ctx.sessions.endpoint_of(session) if session and ctx.sessions is not None else None
    return [1.0 if target is not None and e.address == target else 0.0 for e in endpoints]


def register(registry: SchedulerRegistry) -> None:
    registry.scorer("session-affinity-scorer", SessionAffinityScorerParams, session_affinity_scorer)
