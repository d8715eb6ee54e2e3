"""Statistics against hand-computed values."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.loadgen.stats import batch_summary, benchmark_summary, distribution, itl, percentile
from flotilla.runs.records import JobRecord, RequestRecord


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),  # h = 1.5: 2 + 0.5 * (3 - 2)
        ([1, 2, 3, 4], 90, 3.7),  # h = 2.7: 3 + 0.7 * (4 - 3)
        ([1, 2, 3, 4], 99, 3.97),  # h = 2.97
        ([4, 1, 3, 2], 0, 1.0),  # unsorted input
        ([4, 1, 3, 2], 100, 4.0),
        ([10, 20, 30, 40, 50], 95, 48.0),  # h = 3.8: 40 + 0.8 * 10
        ([5], 99, 5.0),
        ([0.1, 0.1, 0.7], 50, 0.1),
        ([1, 3], 25, 1.5),  # h = 0.25
    ],
)
def test_percentile_interpolates_linearly_like_numpy(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_rejects_nothing_and_bad_q() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_distribution() -> None:
    d = distribution([1.0, 2.0, 3.0, 4.0])
    assert d == pytest.approx({"mean": 2.5, "p50": 2.5, "p90": 3.7, "p95": 3.85, "p99": 3.97})
    assert distribution([]) == {"mean": None, "p50": None, "p90": None, "p95": None, "p99": None}


def req(
    sent: float, first: float | None, end: float, out: int, prompt: int = 10, status: int = 200, error: str = ""
) -> RequestRecord:
    return RequestRecord(
        id=f"r{sent}",
        sent_at=sent,
        status=status,
        first_token_at=first,
        finished_at=end,
        prompt_tokens=prompt,
        output_tokens=out,
        error=error,
    )


def test_itl_is_guidellms() -> None:
    assert itl(req(0.0, 0.1, 0.5, out=5)) == pytest.approx(0.1)  # (0.5 - 0.1) / 4
    assert itl(req(0.0, 0.1, 0.5, out=1)) is None
    assert itl(req(0.0, None, 0.5, out=5)) is None


def test_benchmark_summary_by_hand() -> None:
    records = [
        req(0.0, 0.2, 1.0, out=5),  # ttft 0.2, e2e 1.0, itl 0.2
        req(1.0, 1.4, 2.0, out=3),  # ttft 0.4, e2e 1.0, itl 0.3
        req(2.0, 2.1, 4.0, out=20, prompt=30),  # ttft 0.1, e2e 2.0, itl 0.1
        req(3.0, None, 3.5, out=0, status=500, error="HTTP 500: boom"),
    ]
    s = benchmark_summary("constant@1.00", "constant", 1.0, None, records, started=0.0, ended=4.0)
    assert s["requests"] == {"completed": 3, "errored": 1, "total": 4}
    assert s["duration"] == 4.0
    assert s["request_throughput"] == pytest.approx(3 / 4)
    assert s["rate"] == {"target": 1.0, "achieved": pytest.approx(0.75)}
    assert s["output_token_throughput"] == pytest.approx(28 / 4)
    assert s["total_token_throughput"] == pytest.approx((28 + 50) / 4)
    assert s["concurrency"] == pytest.approx((1.0 + 1.0 + 2.0 + 0.5) / 4)  # every request's time in flight
    assert s["ttft"] == pytest.approx({"mean": 0.7 / 3, "p50": 0.2, "p90": 0.36, "p95": 0.38, "p99": 0.396})
    assert s["e2e"]["mean"] == pytest.approx(4 / 3) and s["e2e"]["p50"] == pytest.approx(1.0)
    assert s["itl"]["mean"] == pytest.approx(0.2) and s["itl"]["p90"] == pytest.approx(0.28)
    assert s["errors"] == {"HTTP 500: boom": 1}


def test_an_empty_benchmark_has_no_rates() -> None:
    s = benchmark_summary("synchronous", "synchronous", None, 1, [], started=1.0, ended=1.0)
    assert s["request_throughput"] == 0.0 and s["ttft"]["p50"] is None and s["requests"]["total"] == 0


def job(
    name: str,
    created: float,
    admitted: float | None,
    finished: float | None,
    status: Any = "succeeded",
    queue: str = "q",
) -> JobRecord:
    return JobRecord(
        name=name,
        queue=queue,
        created_at=created,
        admitted_at=admitted,
        finished_at=finished,
        status=status,
    )


def test_batch_summary_by_hand() -> None:
    jobs = [
        job("a", 0.0, 1.0, 5.0, queue="local-queue-medium"),  # wait 1, JCT 5
        job("b", 1.0, 4.0, 9.0, queue="local-queue-large"),  # wait 3, JCT 8
        job("c", 2.0, 2.5, 4.0, status="failed", queue="local-queue-medium"),  # wait 0.5, JCT 2
        job("d", 3.0, None, None, status="pending", queue="local-queue-large"),
    ]
    s = batch_summary(jobs)
    assert (s["jobs"], s["succeeded"], s["failed"], s["unfinished"]) == (4, 2, 1, 1)
    assert s["makespan"] == 9.0  # first creation 0 to last finish 9
    assert s["jct"] == pytest.approx({"mean": 5.0, "median": 5.0, "p90": 7.4})  # [2, 5, 8]: h = 1.8
    assert s["queue_wait"] == pytest.approx({"mean": 4.5 / 3, "median": 1.0, "p90": 2.6})  # [0.5, 1, 3]
    assert s["by_queue"]["local-queue-large"]["jct"]["mean"] == pytest.approx(8.0)
    assert s["by_queue"]["local-queue-medium"]["queue_wait"]["median"] == pytest.approx(0.75)
