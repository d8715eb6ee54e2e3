"""Load profiles, as GuideLLM defines them: what a run's benchmarks are, and when each sends requests.

A profile turns its parameters (`--rate`, `--max-concurrency`, a seed) and the achieved request rates
of the benchmarks already run into the next benchmark's `Step`, or None when the run is complete.
A step is closed loop (`streams` workers, each sending its next request when the last one ends) or
open loop (requests sent at `arrivals(step)` offsets, at most `max_concurrency` in flight; a request
whose time has come waits for a free slot).

| profile       | benchmarks                                   | loop                                        |
|---------------|----------------------------------------------|---------------------------------------------|
| synchronous   | one                                          | closed, 1 stream                            |
| concurrent    | one per `--rate N` (N streams)               | closed, N streams                           |
| throughput    | one                                          | closed, `--max-concurrency` streams         |
| constant      | one per `--rate R` (req/s)                   | open, a request every 1/R s, first at 0     |
| poisson       | one per `--rate R` (req/s)                   | open, exponential gaps of mean 1/R (seeded) |
| sweep         | `--rate K` (default 10): synchronous, throughput, then K-2 constant rates |                |

Sweep rates (GuideLLM's `np.linspace(sync, throughput, K - 1)[1:]`): K-2 rates evenly spaced from
the synchronous benchmark's achieved rate to the throughput benchmark's, the first step above
synchronous, the last equal to the throughput rate.

Everything here is pure: no clock, no I/O; poisson draws from `random.Random(step.seed)`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["synchronous", "concurrent", "throughput", "constant", "poisson"]
DEFAULT_MAX_CONCURRENCY = 256
DEFAULT_SWEEP_STEPS = 10


class ProfileError(ValueError):
    """A profile that cannot be built from its flags; the message names the flag and the fix."""


class Step(BaseModel):
    """One benchmark of a run: how its requests are sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy
    rate: float | None = None  # target requests/s (constant, poisson); None for closed loops
    streams: int | None = None  # closed-loop workers (synchronous 1, concurrent N, throughput max_concurrency)
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1)
    seed: int = 42

    @property
    def name(self) -> str:
        """`synchronous`, `throughput`, `concurrent@8`, `constant@4.00`, `poisson@4.00`."""
        if self.strategy == "concurrent":
            return f"concurrent@{self.streams}"
        if self.rate is not None:
            return f"{self.strategy}@{self.rate:.2f}"
        return self.strategy

    @property
    def closed_loop(self) -> bool:
        return self.rate is None


class ProfileParams(BaseModel):
    """What the flags say: `rates` from `--rate` (comma-separated), `--max-concurrency`, `--seed`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rates: tuple[float, ...] = ()
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1)
    seed: int = 42


# A planner: the params and the achieved request rates of the benchmarks run so far -> the next step.
Planner = Callable[[ProfileParams, Sequence[float]], Step | None]


class ProfileRegistry:
    """Profile names -> planners (with a one-line description for --help and errors)."""

    def __init__(self) -> None:
        self._planners: dict[str, tuple[Planner, str]] = {}

    def register(self, name: str, summary: str) -> Callable[[Planner], Planner]:
        def add(planner: Planner) -> Planner:
            if name in self._planners:
                raise ValueError(f"profile {name!r} is already registered")
            self._planners[name] = (planner, summary)
            return planner

        return add

    def names(self) -> list[str]:
        return list(self._planners)

    def summary(self, name: str) -> str:
        return self._planners[name][1]

    def planner(self, name: str) -> Planner:
        try:
            return self._planners[name][0]
        except KeyError:
            raise ProfileError(f"--profile {name}: unknown profile; use one of {', '.join(self._planners)}") from None


PROFILES = ProfileRegistry()


def next_step(profile: str, params: ProfileParams, measured: Sequence[float]) -> Step | None:
    """The step after the benchmarks whose achieved request rates are `measured`, or None when done."""
    return PROFILES.planner(profile)(params, measured)


def check(profile: str, params: ProfileParams) -> None:
    """Raise ProfileError if the flags do not fit the profile (before anything is sent)."""
    next_step(profile, params, ())


def parse_rates(text: str | None) -> tuple[float, ...]:
    """`--rate 4` or `--rate 1,2,4` -> (4.0,) or (1.0, 2.0, 4.0)."""
    if text is None or not text.strip():
        return ()
    out: list[float] = []
    for part in text.split(","):
        try:
            out.append(float(part))
        except ValueError:
            raise ProfileError(
                f"--rate {text}: {part.strip()!r} is not a number; e.g. --rate 4 or --rate 1,2,4"
            ) from None
    return tuple(out)


def _no_rate(name: str, params: ProfileParams) -> None:
    if params.rates:
        raise ProfileError(f"--rate does not apply to the {name} profile; leave it out")


def _fixed(steps: list[Step], measured: Sequence[float]) -> Step | None:
    return steps[len(measured)] if len(measured) < len(steps) else None


@PROFILES.register("synchronous", "one request at a time")
def synchronous(params: ProfileParams, measured: Sequence[float]) -> Step | None:
    _no_rate("synchronous", params)
    return _fixed([Step(strategy="synchronous", streams=1, max_concurrency=1, seed=params.seed)], measured)


@PROFILES.register("concurrent", "--rate N parallel streams, each sending its next request when one ends")
def concurrent(params: ProfileParams, measured: Sequence[float]) -> Step | None:
    if not params.rates or any(r < 1 or r != int(r) for r in params.rates):
        raise ProfileError("the concurrent profile needs --rate N: whole numbers of streams >= 1, e.g. --rate 8")
    steps = [
        Step(strategy="concurrent", streams=int(r), max_concurrency=int(r), seed=params.seed) for r in params.rates
    ]
    return _fixed(steps, measured)


@PROFILES.register("throughput", "everything at once, at most --max-concurrency in flight")
def throughput(params: ProfileParams, measured: Sequence[float]) -> Step | None:
    _no_rate("throughput", params)
    step = Step(
        strategy="throughput", streams=params.max_concurrency, max_concurrency=params.max_concurrency, seed=params.seed
    )
    return _fixed([step], measured)


def _open_loop(strategy: Strategy, params: ProfileParams, measured: Sequence[float]) -> Step | None:
    if not params.rates or any(r <= 0 for r in params.rates):
        raise ProfileError(f"the {strategy} profile needs --rate R: requests per second > 0, e.g. --rate 4")
    steps = [
        Step(strategy=strategy, rate=r, max_concurrency=params.max_concurrency, seed=params.seed) for r in params.rates
    ]
    return _fixed(steps, measured)


@PROFILES.register("constant", "open loop, --rate R requests per second, evenly spaced")
def constant(params: ProfileParams, measured: Sequence[float]) -> Step | None:
    return _open_loop("constant", params, measured)


@PROFILES.register("poisson", "open loop, --rate R requests per second, exponential gaps (seeded)")
def poisson(params: ProfileParams, measured: Sequence[float]) -> Step | None:
    return _open_loop("poisson", params, measured)


def sweep_rates(synchronous_rate: float, throughput_rate: float, steps: int) -> list[float]:
    """The constant rates of a sweep of `steps` benchmarks: `linspace(sync, throughput, steps - 1)[1:]`."""
    points = steps - 1
    if points < 2:
        return []
    span = throughput_rate - synchronous_rate
    return [synchronous_rate + span * i / (points - 1) for i in range(1, points)]


@PROFILES.register("sweep", "synchronous, throughput, then --rate K - 2 constant rates between them (K=10)")
def sweep(params: ProfileParams, measured: Sequence[float]) -> Step | None:
    if len(params.rates) > 1 or (params.rates and (params.rates[0] < 2 or params.rates[0] != int(params.rates[0]))):
        raise ProfileError("the sweep profile takes --rate K: the number of benchmarks, a whole number >= 2 (10)")
    steps = int(params.rates[0]) if params.rates else DEFAULT_SWEEP_STEPS
    bare = params.model_copy(update={"rates": ()})
    if not measured:
        return synchronous(bare, ())
    if len(measured) == 1:
        return throughput(bare, ())
    rates = [r for r in sweep_rates(measured[0], measured[1], steps) if r > 0]
    index = len(measured) - 2
    if index >= len(rates):
        return None
    return Step(strategy="constant", rate=rates[index], max_concurrency=params.max_concurrency, seed=params.seed)


def arrivals(step: Step) -> Iterator[float]:
    """Send offsets (seconds from the benchmark's start) of an open-loop step, without end.

    constant: 0, 1/R, 2/R, ...; poisson: cumulative sums of `Random(seed).expovariate(R)`, so the
    first request waits one gap (as GuideLLM's poisson strategy)."""
    if step.rate is None:
        raise ValueError(f"{step.name} is closed loop: it has no arrival times")
    rate = step.rate
    if step.strategy == "constant":
        return (i / rate for i in itertools.count())
    rng = random.Random(step.seed)
    return itertools.accumulate(rng.expovariate(rate) for _ in itertools.count())
