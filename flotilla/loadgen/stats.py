"""Benchmark statistics, pure: percentiles, throughputs, and the summaries of serve and batch runs.

Percentiles interpolate linearly between closest ranks, as numpy's default (`method="linear"`): for
sorted values x[0..n-1] and q in [0, 100], h = (n - 1) q / 100 and p = x[floor h] + (h - floor h)
(x[floor h + 1] - x[floor h]).

A serve benchmark (GuideLLM's definitions):
- duration: from the benchmark's start to the end of its last request (seconds);
- request throughput: successful requests / duration (req/s); this is the achieved rate;
- output token throughput: output tokens of successful requests / duration (tok/s);
- total token throughput: prompt + output tokens of successful requests / duration;
- concurrency: mean requests in flight, sum of every request's time in flight / duration (Little's law);
- TTFT: first content chunk - send; ITL: (e2e - TTFT) / (output tokens - 1) per request with more than
  one output token; e2e: end of the response - send. Over successful requests only.

A batch run: makespan = last finish - first creation; JCT = finish - creation; queue wait =
admission (quota reserved) - creation; over the jobs that have the times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flotilla.runs.records import JobRecord, RequestRecord
from flotilla.runs.stats import itl, percentile

QUANTILES = (50, 90, 95, 99)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def distribution(values: Sequence[float], quantiles: Sequence[int] = QUANTILES) -> dict[str, float | None]:
    """mean and p50/p90/p95/p99 (None for all when there are no values)."""
    out: dict[str, float | None] = {"mean": mean(values)}
    for q in quantiles:
        out[f"p{q}"] = percentile(values, q) if values else None
    return out


def succeeded(record: RequestRecord) -> bool:
    return record.status == 200 and not record.error and record.finished_at is not None


def _per_second(amount: float, duration: float) -> float:
    return amount / duration if duration > 0 else 0.0


def benchmark_summary(
    name: str,
    strategy: str,
    target_rate: float | None,
    streams: int | None,
    records: Sequence[RequestRecord],
    started: float,
    ended: float,
) -> dict[str, Any]:
    """One benchmark's numbers (times in seconds, relative to the run's start like the records)."""
    ok = [r for r in records if succeeded(r)]
    duration = max(ended - started, 0.0)
    in_flight = sum((r.finished_at if r.finished_at is not None else ended) - r.sent_at for r in records)
    output = sum(r.output_tokens for r in ok)
    prompt = sum(r.prompt_tokens for r in ok)
    request_throughput = _per_second(len(ok), duration)
    return {
        "name": name,
        "profile": strategy,
        "rate": {"target": target_rate, "achieved": request_throughput},
        "streams": streams,
        "started_at": started,
        "duration": duration,
        "requests": {"completed": len(ok), "errored": len(records) - len(ok), "total": len(records)},
        "request_throughput": request_throughput,
        "output_token_throughput": _per_second(output, duration),
        "total_token_throughput": _per_second(prompt + output, duration),
        "concurrency": _per_second(in_flight, duration),
        "prompt_tokens": mean([r.prompt_tokens for r in ok]),
        "output_tokens": mean([r.output_tokens for r in ok]),
        "ttft": distribution([t for r in ok if (t := r.ttft) is not None]),
        "itl": distribution([t for r in ok if (t := itl(r)) is not None]),
        "e2e": distribution([t for r in ok if (t := r.latency) is not None]),
        "errors": _top_errors(records),
    }


def _top_errors(records: Sequence[RequestRecord], limit: int = 5) -> dict[str, int]:
    """The most frequent errors (by message, HTTP status when there is none) and how often."""
    counts: dict[str, int] = {}
    for r in records:
        if not succeeded(r):
            key = r.error or f"HTTP {r.status}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])


def _times(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "mean": mean(values),
        "median": percentile(values, 50) if values else None,
        "p90": percentile(values, 90) if values else None,
    }


def batch_summary(jobs: Sequence[JobRecord]) -> dict[str, Any]:
    """Makespan, JCT and queue wait (mean, median, p90), succeeded/failed counts, per LocalQueue too."""
    finished = [j.finished_at for j in jobs if j.finished_at is not None]
    makespan = max(finished) - min(j.created_at for j in jobs) if jobs and finished else None
    out: dict[str, Any] = {
        "jobs": len(jobs),
        "succeeded": sum(1 for j in jobs if j.status == "succeeded"),
        "failed": sum(1 for j in jobs if j.status == "failed"),
        "unfinished": sum(1 for j in jobs if j.finished_at is None),
        "makespan": makespan,
        "jct": _times([t for j in jobs if (t := j.completion_time) is not None]),
        "queue_wait": _times([t for j in jobs if (t := j.queue_wait) is not None]),
        "run_time": _times([t for j in jobs if (t := j.run_time) is not None]),
    }
    queues = sorted({j.queue for j in jobs if j.queue})
    if len(queues) > 1:
        out["by_queue"] = {q: _batch_times([j for j in jobs if j.queue == q]) for q in queues}
    return out


def _batch_times(jobs: Sequence[JobRecord]) -> dict[str, Any]:
    return {
        "jobs": len(jobs),
        "jct": _times([t for j in jobs if (t := j.completion_time) is not None]),
        "queue_wait": _times([t for j in jobs if (t := j.queue_wait) is not None]),
    }
