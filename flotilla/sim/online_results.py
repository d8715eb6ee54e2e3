"""What the online simulator (sim/online.py) reports: each request as its client saw it, each benchmark
as `flotilla bench serve` summarises it, and a run directory `flotilla report` draws.

Times are simulated seconds since the simulation's start. A request's TTFT is from its sending to the
end of the engine step that made its first token; ITL is GuideLLM's, (e2e - TTFT) / (tokens - 1).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.loadgen.stats import benchmark_summary
from flotilla.runs.records import ReplicaSample, RequestRecord, RunDir, RunInfo, utc_now
from flotilla.runs.stats import itl
from flotilla.sim.requests import Benchmark


@dataclass
class Outcome:
    """One request as its client saw it (simulated seconds since the simulation's start)."""

    id: str
    benchmark: str
    group: str
    session: str
    sent_at: float
    endpoint: str = ""
    first_token_at: float | None = None
    finished_at: float | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0  # served from the engine's prefix cache
    output_tokens: int = 0
    status: int = 0
    error: str = ""

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.sent_at

    def record(self) -> RequestRecord:
        record = RequestRecord(
            id=self.id,
            sent_at=self.sent_at,
            status=self.status,
            first_token_at=self.first_token_at,
            finished_at=self.finished_at,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            endpoint=self.endpoint,
            item=self.benchmark,
            session=self.session,
            error=self.error,
        )
        return record.model_copy(update={"itl_mean": itl(record)}) if not self.error else record


@dataclass
class BenchmarkRun:
    """A benchmark as it ran: every request's outcome, its span, and the engines' prefix-cache lookups."""

    benchmark: Benchmark
    started: float
    ended: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    prefix_queries: int = 0  # prompt tokens looked up in the engines' prefix caches (vLLM's counter)
    prefix_hits: int = 0

    def records(self) -> list[RequestRecord]:
        return [o.record() for o in self.outcomes]

    def ttfts(self) -> list[float]:
        return [t for o in self.outcomes if o.status == 200 and (t := o.ttft) is not None]

    def summary(self) -> dict[str, Any]:
        """`flotilla bench serve`'s summary of the benchmark, plus the prefix-cache hit rate, requests
        per endpoint and whether it kept up (`no_backlog`, every request served)."""
        step = self.benchmark.step
        out = benchmark_summary(
            self.benchmark.name,
            step.strategy if step is not None else "trace",
            step.rate if step is not None else None,
            self.benchmark.streams,
            self.records(),
            self.started,
            self.ended,
        )
        served = [o for o in self.outcomes if o.status == 200]
        out["prefix_hit_rate"] = self.prefix_hits / self.prefix_queries if self.prefix_queries else 0.0
        out["cached_prompt_fraction"] = sum(o.cached_tokens for o in served) / max(
            1, sum(o.prompt_tokens for o in served)
        )
        out["per_endpoint"] = {e: sum(o.endpoint == e for o in served) for e in sorted({o.endpoint for o in served})}
        out["keeps_up"] = len(served) == len(self.outcomes) and no_backlog([o.ttft for o in self.outcomes])
        return out

    @property
    def achieved_rate(self) -> float:
        duration = self.ended - self.started
        return sum(o.status == 200 for o in self.outcomes) / duration if duration > 0 else 0.0


def no_backlog(ttfts: Sequence[float | None]) -> bool:
    """No growing backlog (benchmarks/gateway_bench.py's "keeps up" rule): the median TTFT of the second
    half of the requests, in sending order, is at most twice the first half's plus 0.5 s."""
    half = len(ttfts) // 2
    early = [t for t in ttfts[:half] if t is not None]
    late = [t for t in ttfts[half:] if t is not None]
    return bool(early and late) and statistics.median(late) <= 2 * statistics.median(early) + 0.5


def write_run(
    path: Path,
    runs: Sequence[BenchmarkRun],
    *,
    name: str,
    samples: Sequence[ReplicaSample] = (),
    config: dict[str, Any] | None = None,
) -> RunDir:
    """Simulated benchmarks as a run directory `flotilla report` draws (kind simulation, `simulated: true`
    in its config and summary): requests.jsonl, replicas.jsonl (when sampled) and summary.json."""
    run = RunDir(path)
    run.start(
        RunInfo(
            kind="simulation",
            name=name,
            started_at=utc_now(),
            stages=["serve"],
            config={"simulated": True} | (config or {}),
        )
    )
    run.write_records([r for b in runs for r in b.records()], RequestRecord)
    if samples:
        run.write_records(samples, ReplicaSample)
    run.write_summary({"simulated": True, "benchmarks": [b.summary() for b in runs]})
    run.finish("succeeded", f"{len(runs)} simulated benchmark(s)")
    return run
