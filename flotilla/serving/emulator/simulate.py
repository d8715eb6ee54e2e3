"""Drive an engine on a simulated clock: no sleeps, the clock jumps to each step's end.

    result = simulate(engine, arrivals)                   # open loop: requests at their arrival times
    result = simulate(engine, arrivals, max_concurrency=4)  # closed loop, like `vllm bench serve
                                                            # --max-concurrency 4`: a request is sent
                                                            # when one of the 4 outstanding finishes

The same `Engine.step` serves the live server (server.py), which sleeps instead of jumping.
"""

from __future__ import annotations

import random
import statistics
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flotilla.serving.emulator.engine import Engine, StepResult
from flotilla.serving.emulator.request import Request


@dataclass(frozen=True)
class Arrival:
    """One request of a workload: when it arrives and what it asks for."""

    time: float
    request_id: str
    prompt_token_ids: list[int]
    max_tokens: int | None = None
    output_len: int | None = None
    lora: str | None = None


@dataclass
class SimResult:
    """Finished requests and the clock; summary figures as `vllm bench serve` prints them."""

    finished: list[Request] = field(default_factory=list)
    steps: int = 0
    start: float = 0.0
    end: float = 0.0
    tokens_per_second: dict[int, int] = field(default_factory=dict)  # generated tokens by whole second

    @property
    def duration(self) -> float:
        return self.end - self.start

    def ttfts(self) -> list[float]:
        return [r.first_token_ts - r.arrival_time for r in self.finished if r.first_token_ts is not None]

    def tpots(self) -> list[float]:
        """Per request: (last token - first token) / (output tokens - 1), requests with 2+ tokens."""
        return [
            (r.last_token_ts - r.first_token_ts) / (r.num_output_tokens - 1)
            for r in self.finished
            if r.first_token_ts is not None and r.last_token_ts is not None and r.num_output_tokens > 1
        ]

    def summary(self) -> dict[str, float]:
        ttft, tpot = self.ttfts(), self.tpots()
        out_tokens = sum(r.num_output_tokens for r in self.finished)
        in_tokens = sum(r.num_prompt_tokens for r in self.finished)
        return {
            "requests": len(self.finished),
            "duration_s": self.duration,
            "total_token_throughput": (in_tokens + out_tokens) / self.duration if self.duration else 0.0,
            "mean_ttft_s": statistics.fmean(ttft) if ttft else 0.0,
            "median_tpot_s": statistics.median(tpot) if tpot else 0.0,
            "mean_tpot_s": statistics.fmean(tpot) if tpot else 0.0,
            "peak_output_throughput": float(max(self.tokens_per_second.values(), default=0)),
        }


def simulate(
    engine: Engine,
    arrivals: Iterable[Arrival],
    *,
    max_concurrency: int | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    keep_finished: bool = True,
) -> SimResult:
    """Run every arrival to completion; returns the finished requests (in finishing order)."""
    pending = deque(sorted(arrivals, key=lambda a: a.time))
    result = SimResult(start=pending[0].time if pending else 0.0)
    now = result.start
    outstanding = 0
    while pending or engine.has_unfinished_requests():
        while pending and pending[0].time <= now and (max_concurrency is None or outstanding < max_concurrency):
            a = pending.popleft()
            at = a.time if max_concurrency is None else now
            engine.add_request(
                a.request_id,
                a.prompt_token_ids,
                arrival_time=at,
                max_tokens=a.max_tokens,
                output_len=a.output_len,
                lora=a.lora,
            )
            outstanding += 1
        if not engine.has_unfinished_requests():
            now = max(now, pending[0].time)
            continue
        step = engine.step(now)
        result.steps += 1
        now = step.end
        outstanding -= len(step.finished)
        if step.outputs:
            second = int(now)
            result.tokens_per_second[second] = result.tokens_per_second.get(second, 0) + len(step.outputs)
        if keep_finished:
            result.finished.extend(step.finished)
        if on_step is not None:
            on_step(step)
    result.end = now
    return result


def random_arrivals(
    engine: Engine,
    num_requests: int,
    *,
    prompt_len: int,
    output_len: int,
    rate: float | None = None,
    shared_prefix_len: int = 0,
    seed: int = 0,
    prefix: str = "req",
) -> list[Arrival]:
    """`vllm bench serve --dataset-name random`-like requests: random token ids of `prompt_len` (the
    first `shared_prefix_len` the same for all), `output_len` tokens each (ignore_eos), Poisson arrivals
    at `rate` per second (None: all at time 0)."""
    rng = random.Random(seed)
    vocab = engine.perf.model.vocab_size
    shared = [rng.randrange(256, vocab) for _ in range(shared_prefix_len)]
    t, out = 0.0, []
    for i in range(num_requests):
        if rate is not None:
            t += rng.expovariate(rate)
        prompt = shared + [rng.randrange(256, vocab) for _ in range(prompt_len - shared_prefix_len)]
        out.append(Arrival(t, f"{prefix}-{i}", prompt, max_tokens=output_len, output_len=output_len))
    return out
