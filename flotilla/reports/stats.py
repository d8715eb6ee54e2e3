"""What a report computes from a run's records: percentiles, job and request statistics, Gantt lanes.

Pure: no I/O, no clock, no matplotlib. Times are seconds since the run's start, as in the records.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flotilla.runs import JobRecord, QueueSample, ReplicaSample, RequestRecord
from flotilla.runs.stats import percentile

JOB_STATUSES = ("pending", "admitted", "running", "succeeded", "failed")
CPU_LANE = "cpu"


@dataclass(frozen=True)
class Distribution:
    """Summary of a sample: count, mean, extremes and the percentiles reports show."""

    n: int
    mean: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


def describe(values: Iterable[float | None]) -> Distribution | None:
    """The distribution of the values that are not None; None when there are none."""
    xs = [v for v in values if v is not None]
    if not xs:
        return None
    return Distribution(
        n=len(xs),
        mean=math.fsum(xs) / len(xs),
        min=min(xs),
        p50=percentile(xs, 50),
        p90=percentile(xs, 90),
        p95=percentile(xs, 95),
        p99=percentile(xs, 99),
        max=max(xs),
    )


# -- batch jobs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobStats:
    total: int
    by_status: dict[str, int]  # every status in JOB_STATUSES order, then any other, zero counts dropped
    retries: int  # pods created beyond the first, over all jobs
    makespan: float | None  # first creation to last finish; None until a job finished
    completion_time: Distribution | None  # JCT: creation to finish
    queue_wait: Distribution | None  # creation to admission (quota reserved)
    run_time: Distribution | None  # start (or admission) to finish


def job_stats(jobs: Sequence[JobRecord]) -> JobStats:
    counts: Counter[str] = Counter(j.status for j in jobs)
    ordered = {s: counts[s] for s in JOB_STATUSES if counts[s]}
    ordered.update({s: n for s, n in sorted(counts.items()) if s not in ordered})
    finished = [j.finished_at for j in jobs if j.finished_at is not None]
    makespan = max(finished) - min(j.created_at for j in jobs) if finished else None
    return JobStats(
        total=len(jobs),
        by_status=ordered,
        retries=sum(max(j.attempts - 1, 0) for j in jobs),
        makespan=makespan,
        completion_time=describe(j.completion_time for j in jobs),
        queue_wait=describe(j.queue_wait for j in jobs),
        run_time=describe(j.run_time for j in jobs),
    )


def lane_label(job: JobRecord) -> str:
    """The Gantt row a job belongs to: its (node, GPU, slice), or the CPU lane when it had no GPU."""
    if not job.gpu:
        return CPU_LANE
    return " / ".join(part for part in (job.node, f"gpu {job.gpu}", job.slice) if part)


def assign_rows(spans: Sequence[tuple[str, float, float]]) -> list[int]:
    """Sub-rows for (lane, start, end) spans so that spans on the same lane that overlap get different rows.

    Greedy interval partitioning per lane: in order of start (then end, then input order), each span takes
    the lowest row whose last span has ended by its start; spans that only touch (end == start) share a
    row. This uses as many rows as the most spans overlapping at one instant, the least possible.
    Returns one row index per span, in input order."""
    rows = [0] * len(spans)
    ends: dict[str, list[float]] = {}  # per lane: the end of the last span on each row
    for i in sorted(range(len(spans)), key=lambda k: (spans[k][1], spans[k][2], k)):
        lane, start, end = spans[i]
        lane_ends = ends.setdefault(lane, [])
        row = next((r for r, last in enumerate(lane_ends) if last <= start), len(lane_ends))
        if row == len(lane_ends):
            lane_ends.append(end)
        else:
            lane_ends[row] = end
        rows[i] = row
    return rows


@dataclass(frozen=True)
class GanttBar:
    """One job on the timeline: the queue wait from `created` to `admitted`, the run from `run_start` to `end`."""

    job: JobRecord
    lane: str
    row: int  # sub-row within the lane
    created: float
    admitted: float | None
    run_start: float | None
    end: float  # finished_at, or the run's horizon while the job has not finished
    open: bool  # not finished (yet): the bar stops at the horizon


def gantt_bars(jobs: Sequence[JobRecord], horizon: float) -> list[GanttBar]:
    """The job timeline: a bar per job on its lane's sub-row, sorted by lane (CPU last), row and creation.
    A job occupies its row from creation to its end (the whole drawn extent), so nothing drawn overlaps."""
    ends = [j.finished_at if j.finished_at is not None else max(horizon, j.created_at) for j in jobs]
    lanes = [lane_label(j) for j in jobs]
    rows = assign_rows([(lane, j.created_at, end) for lane, j, end in zip(lanes, jobs, ends, strict=True)])
    bars = [
        GanttBar(
            job=j,
            lane=lane,
            row=row,
            created=j.created_at,
            admitted=j.admitted_at,
            run_start=j.started_at if j.started_at is not None else j.admitted_at,
            end=end,
            open=j.finished_at is None,
        )
        for j, lane, row, end in zip(jobs, lanes, rows, ends, strict=True)
    ]
    return sorted(bars, key=lambda b: (b.lane == CPU_LANE, b.lane, b.row, b.created))


# -- requests ------------------------------------------------------------------------------------------
def is_ok(request: RequestRecord) -> bool:
    return 200 <= request.status < 300


def status_label(status: int) -> str:
    return "no response" if status == 0 else str(status)


@dataclass(frozen=True)
class EndpointLoad:
    endpoint: str  # "" when the gateway did not say
    requests: int
    errors: int
    output_tokens: int
    ttft_p50: float | None


@dataclass(frozen=True)
class RequestStats:
    total: int
    ok: int
    errors: dict[str, int]  # by status label ("503", "no response"), most frequent first
    ttft: Distribution | None  # time to first token, successful requests
    latency: Distribution | None  # end-to-end latency, successful requests
    itl: Distribution | None  # per-request mean inter-token latency, successful requests
    span: float | None  # first send to last finish
    request_rate: float | None  # successful requests per second over the span
    output_token_rate: float | None  # output tokens of successful requests per second over the span
    endpoints: list[EndpointLoad]


def request_stats(requests: Sequence[RequestRecord]) -> RequestStats:
    ok = [r for r in requests if is_ok(r)]
    errors = Counter(status_label(r.status) for r in requests if not is_ok(r))
    finished = [r.finished_at for r in requests if r.finished_at is not None]
    span = max(finished) - min(r.sent_at for r in requests) if finished else None
    rate = len(ok) / span if span else None
    tokens = sum(r.output_tokens for r in ok) / span if span else None
    return RequestStats(
        total=len(requests),
        ok=len(ok),
        errors=dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))),
        ttft=describe(r.ttft for r in ok),
        latency=describe(r.latency for r in ok),
        itl=describe(r.itl_mean for r in ok),
        span=span,
        request_rate=rate,
        output_token_rate=tokens,
        endpoints=endpoint_load(requests),
    )


def endpoint_load(requests: Sequence[RequestRecord]) -> list[EndpointLoad]:
    """Requests per endpoint, sorted by endpoint name (the unnamed endpoint last)."""
    names = sorted({r.endpoint for r in requests}, key=lambda e: (e == "", e))
    out = []
    for name in names:
        mine = [r for r in requests if r.endpoint == name]
        ttft = describe(r.ttft for r in mine if is_ok(r))
        out.append(
            EndpointLoad(
                endpoint=name,
                requests=len(mine),
                errors=sum(not is_ok(r) for r in mine),
                output_tokens=sum(r.output_tokens for r in mine if is_ok(r)),
                ttft_p50=ttft.p50 if ttft else None,
            )
        )
    return out


def item_groups(requests: Sequence[RequestRecord], most: int, least: int = 3) -> dict[str, list[RequestRecord]] | None:
    """Requests by `item` when there are 2..`most` distinct items with at least `least` requests each (e.g. one
    group per benchmark); None otherwise (a request per recording is not a distribution worth splitting)."""
    groups: dict[str, list[RequestRecord]] = {}
    for r in requests:
        groups.setdefault(r.item, []).append(r)
    if not 2 <= len(groups) <= most or min(len(g) for g in groups.values()) < least:
        return None
    return dict(sorted(groups.items()))


# -- the run as a whole --------------------------------------------------------------------------------
def horizon(
    jobs: Sequence[JobRecord],
    queue: Sequence[QueueSample],
    requests: Sequence[RequestRecord],
    replicas: Sequence[ReplicaSample],
) -> float:
    """The latest time any record mentions: where open bars stop while a run is still going."""
    times: list[float] = [0.0]
    for j in jobs:
        times += [t for t in (j.created_at, j.admitted_at, j.started_at, j.finished_at) if t is not None]
    times += [s.t for s in queue]
    for r in requests:
        times += [t for t in (r.sent_at, r.first_token_at, r.finished_at) if t is not None]
    times += [s.t for s in replicas]
    return max(times)
