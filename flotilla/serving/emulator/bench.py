"""How many requests per second of simulated work one process can keep the books for.

`run_benchmark()` builds an engine, sends it a saturating Poisson stream of requests sharing a
system prompt, runs it to completion on the simulated clock (simulate.py: no sleeps) with vLLM's
metrics recorded after every step (EngineMetrics), and reports wall-clock requests/s and tokens/s
of bookkeeping, next to the emulated GPU's own throughput.

    python -m flotilla.serving.emulator.bench            # prints one line per configuration
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from flotilla.serving.emulator.engine import Engine, EngineConfig
from flotilla.serving.emulator.metrics import EngineMetrics
from flotilla.serving.emulator.simulate import random_arrivals, simulate


@dataclass(frozen=True)
class BenchResult:
    gpu: str
    model: str
    requests: int
    steps: int
    wall_s: float
    simulated_s: float
    requests_per_s: float  # finished requests per wall-clock second of bookkeeping
    tokens_per_s: float  # prompt + generated tokens per wall-clock second
    steps_per_s: float
    emulated_requests_per_s: float  # what the emulated GPU served per emulated second
    preemptions: int
    prefix_hit_rate: float


def run_benchmark(
    *,
    gpu: str = "H100-80GB",
    model: str = "qwen3-8b",
    num_requests: int = 20_000,
    prompt_len: int = 512,
    shared_prefix_len: int = 256,
    output_len: int = 128,
    rate: float = 1000.0,
    max_num_seqs: int = 256,
    max_num_batched_tokens: int = 8192,
    with_metrics: bool = True,
    seed: int = 0,
) -> BenchResult:
    """Run `num_requests` through an engine on the simulated clock; time the bookkeeping."""
    config = EngineConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens)
    engine = Engine.build(gpu, model, config, random.Random(seed))
    arrivals = random_arrivals(
        engine,
        num_requests,
        prompt_len=prompt_len,
        output_len=output_len,
        rate=rate,
        shared_prefix_len=shared_prefix_len,
        seed=seed,
    )
    recorder = EngineMetrics(engine) if with_metrics else None
    started = time.perf_counter()
    result = simulate(engine, arrivals, on_step=recorder.record if recorder else None, keep_finished=False)
    wall = time.perf_counter() - started
    counters, stats = engine.counters, engine.kv.stats
    finished = sum(counters.finished.values())
    tokens = counters.prompt_tokens + counters.generation_tokens
    return BenchResult(
        gpu=gpu,
        model=model,
        requests=finished,
        steps=result.steps,
        wall_s=wall,
        simulated_s=result.duration,
        requests_per_s=finished / wall,
        tokens_per_s=tokens / wall,
        steps_per_s=result.steps / wall,
        emulated_requests_per_s=finished / result.duration if result.duration else 0.0,
        preemptions=counters.preemptions,
        prefix_hit_rate=stats.hits / stats.queries if stats.queries else 0.0,
    )


def main() -> None:
    runs: list[dict[str, Any]] = [
        {},
        {"with_metrics": False},
        {"gpu": "A100-80GB", "max_num_seqs": 512, "output_len": 64},
        {
            "gpu": "A100-80GB:3g.40gb",
            "model": "smollm2-135m",
            "max_num_seqs": 1024,
            "prompt_len": 256,
            "output_len": 32,
        },
    ]
    for kwargs in runs:
        r = run_benchmark(**kwargs)
        print(
            f"{r.gpu:>18s} {r.model:>12s} metrics={kwargs.get('with_metrics', True)!s:5s} "
            f"{r.requests} req in {r.wall_s:.2f} s wall: {r.requests_per_s:,.0f} req/s, {r.tokens_per_s:,.0f} tok/s, "
            f"{r.steps_per_s:,.0f} steps/s (emulated GPU: {r.emulated_requests_per_s:.1f} req/s, "
            f"{r.preemptions} preemptions, prefix hit rate {r.prefix_hit_rate:.0%})"
        )


if __name__ == "__main__":
    main()
