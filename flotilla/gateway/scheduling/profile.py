"""A scheduling profile: filters in order, a weighted sum of scorers, a picker that ranks (GAIE's SchedulerProfile).

    candidates = endpoints
    for f in filters:            candidates = f(ctx, request, candidates)      (nothing left -> NoEndpoint)
    total[e] = sum(weight_s * s(ctx, request, candidates)[e] for s in scorers)  (no scorers -> all 0)
    ranking  = picker(ctx, [(e, total[e]) ...])                                 best first
    Pick(endpoint=ranking[0], fallbacks=ranking[1:], scores=total by address)

The totals are GAIE's weighted sum, not normalized by the sum of weights.

Round-robin state. The `round-robin` picker is pure: it rotates the candidates (in address order) by
`ctx.round_robin_turn`. Who counts the turns: a driver that wants control (the simulator, to stay
deterministic) passes `round_robin_turn` in the context; otherwise (`None`) the profile takes the
next turn from its own `RoundRobinCounter`, a small object that lives with the profile the driver
loaded, one per profile. The counter is the only state a profile holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from flotilla.gateway.scheduling.registry import BoundPlugin
from flotilla.gateway.scheduling.types import (
    EndpointSnapshot,
    InferenceRequest,
    NoEndpoint,
    Pick,
    PickResult,
    SchedulingContext,
)


class PluginViolation(RuntimeError):
    """A plugin broke its contract (a score outside [0, 1], a filter returning an endpoint it was not given)."""


@dataclass
class RoundRobinCounter:
    """The round-robin rotation's state: the next turn to take."""

    next_turn: int = 0

    def take(self) -> int:
        turn = self.next_turn
        self.next_turn += 1
        return turn


@dataclass(frozen=True, eq=False)
class Profile:
    """A named pipeline of bound plugins; `pick` runs it over a snapshot of the candidate endpoints."""

    name: str
    filters: tuple[BoundPlugin, ...]
    scorers: tuple[tuple[BoundPlugin, float], ...]
    picker: BoundPlugin
    turns: RoundRobinCounter = field(default_factory=RoundRobinCounter)

    @property
    def plugins(self) -> tuple[BoundPlugin, ...]:
        return (*self.filters, *(s for s, _ in self.scorers), self.picker)

    def plugin(self, type_: str) -> BoundPlugin | None:
        """The first plugin of type `type_` in this profile (drivers read index settings from it)."""
        return next((p for p in self.plugins if p.type == type_), None)

    def pick(
        self, ctx: SchedulingContext, request: InferenceRequest, endpoints: Sequence[EndpointSnapshot]
    ) -> PickResult:
        """Choose an endpoint for `request` among `endpoints`, with the rest of the ranking as fallbacks."""
        if not endpoints:
            return NoEndpoint("no ready endpoint")
        if ctx.round_robin_turn is None:
            ctx = replace(ctx, round_robin_turn=self.turns.take())
        candidates: list[EndpointSnapshot] = list(endpoints)
        for f in self.filters:
            kept = f.spec.fn(ctx, request, candidates, f.params)
            allowed = {id(c) for c in candidates}
            if any(id(e) not in allowed for e in kept):
                raise PluginViolation(f"filter {f.name!r} returned an endpoint it was not given")
            candidates = list(kept)
            if not candidates:
                return NoEndpoint(f"every endpoint was filtered out by {f.name!r} (profile {self.name!r})")
        totals = [0.0] * len(candidates)
        for scorer, weight in self.scorers:
            scores = scorer.spec.fn(ctx, request, candidates, scorer.params)
            if len(scores) != len(candidates):
                raise PluginViolation(
                    f"scorer {scorer.name!r} returned {len(scores)} scores for {len(candidates)} endpoints"
                )
            for i, s in enumerate(scores):
                if not (0.0 <= s <= 1.0) or math.isnan(s):
                    raise PluginViolation(f"scorer {scorer.name!r} returned {s!r} for {candidates[i].address}")
                totals[i] += weight * s
        scored = list(zip(candidates, totals, strict=True))
        ranking = self.picker.spec.fn(ctx, scored, self.picker.params)
        given = {id(c) for c in candidates}
        if any(id(e) not in given for e in ranking) or len({id(e) for e in ranking}) != len(ranking):
            raise PluginViolation(f"picker {self.picker.name!r} ranked an endpoint it was not given, or one twice")
        if not ranking:
            return NoEndpoint(f"picker {self.picker.name!r} chose nothing (profile {self.name!r})")
        return Pick(
            endpoint=ranking[0],
            fallbacks=tuple(ranking[1:]),
            scores={c.address: t for c, t in scored},
            profile=self.name,
        )
