"""What a batch simulation measured: per-job records and the cluster's figures, and how to save them as a run.

Definitions (over the Jobs' records; times in simulated seconds):
- makespan: last finish - first creation (the study's "total makespan");
- JCT: finish - creation per finished Job (mean, median, p90); queue wait: first admission - creation;
- max concurrent jobs: the most pods running at once (from container start to end, setup included);
- GPU utilization: SM-busy GPU-seconds / (GPUs x makespan), time-weighted over the makespan (`gpu_util_mean`),
  and the highest instantaneous value (`gpu_util_peak`), in [0, 1]; a job's SM time comes from its RunPlan;
- GPU compute allocated: the share of the GPUs' compute held by running jobs (whole GPU 1, a slice its
  compute fraction), time-weighted (`gpu_allocated_mean`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flotilla.runs.records import JobRecord, RunDir, RunInfo
from flotilla.runs.stats import percentile

Segment = tuple[float, float, float, float, float]  # (start, busy from, end, SM rate, compute fraction held)


class BatchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[JobRecord]
    makespan: float
    jct_mean: float
    jct_median: float
    jct_p90: float
    queue_wait_mean: float
    run_time_mean: float
    max_concurrent: int
    gpu_util_mean: float
    gpu_util_peak: float
    gpu_allocated_mean: float
    succeeded: int
    failed: int
    unfinished: int
    counters: dict[str, float] = Field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Every figure but the records (for an experiment's details)."""
        return self.model_dump(exclude={"records", "counters"}) | dict(self.counters)


def _sweep(changes: list[tuple[float, float]]) -> tuple[float, float]:
    """(peak, integral) of a step function given as (time, delta) changes; ends before starts at a tie."""
    changes.sort()
    level = peak = area = 0.0
    last = changes[0][0] if changes else 0.0
    for t, delta in changes:
        area += level * (t - last)
        last = t
        level += delta
        peak = max(peak, level)
    return peak, area


def summarize(
    records: Sequence[JobRecord], segments: Sequence[Segment], gpus: int, counters: Mapping[str, float]
) -> BatchResult:
    finished = [r for r in records if r.finished_at is not None]
    jcts = [r.completion_time for r in finished if r.completion_time is not None]
    waits = [r.queue_wait for r in records if r.queue_wait is not None]
    runs = [r.run_time for r in finished if r.run_time is not None]
    first = min((r.created_at for r in records), default=0.0)
    last = max((r.finished_at for r in finished if r.finished_at is not None), default=first)
    makespan = last - first
    concurrent, _ = _sweep([c for s in segments for c in ((s[0], 1.0), (s[2], -1.0))])
    util_peak, busy = _sweep([c for s in segments for c in ((s[1], s[3]), (s[2], -s[3]))])
    _, held = _sweep([c for s in segments for c in ((s[0], s[4]), (s[2], -s[4]))])
    capacity = gpus * makespan
    return BatchResult(
        records=list(records),
        makespan=makespan,
        jct_mean=statistics.fmean(jcts) if jcts else 0.0,
        jct_median=percentile(jcts, 50) if jcts else 0.0,
        jct_p90=percentile(jcts, 90) if jcts else 0.0,
        queue_wait_mean=statistics.fmean(waits) if waits else 0.0,
        run_time_mean=statistics.fmean(runs) if runs else 0.0,
        max_concurrent=round(concurrent),
        gpu_util_mean=busy / capacity if capacity > 0 else 0.0,
        gpu_util_peak=util_peak / gpus if gpus else 0.0,
        gpu_allocated_mean=held / capacity if capacity > 0 else 0.0,
        succeeded=sum(1 for r in records if r.status == "succeeded"),
        failed=sum(1 for r in records if r.status == "failed"),
        unfinished=sum(1 for r in records if r.finished_at is None),
        counters=dict(counters),
    )


def write_run(result: BatchResult, path: Path, name: str, config: Mapping[str, Any] | None = None) -> RunDir:
    """Save a simulated run as a run directory (`flotilla report DIR` draws it): run.json (kind
    simulation, config.simulated true; simulated seconds from 0), jobs.jsonl and summary.json."""
    run = RunDir(path)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    run.start(
        RunInfo(
            kind="simulation",
            name=name,
            started_at=now,
            stages=["transcribe"],
            config={"simulated": True, **(config or {})},
        )
    )
    run.write_records(result.records, JobRecord)
    run.write_summary(result.metrics())
    outcome = f"{result.succeeded} of {len(result.records)} Jobs succeeded (simulated)"
    run.finish("succeeded" if result.failed == 0 and result.unfinished == 0 else "failed", outcome)
    return run
