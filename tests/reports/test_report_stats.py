"""The pure aggregations behind a report: percentiles, job and request statistics, Gantt sub-rows, cells."""

from __future__ import annotations

import pytest

from flotilla.reports.document import cell, duration, number
from flotilla.reports.stats import (
    assign_rows,
    describe,
    gantt_bars,
    horizon,
    item_groups,
    job_stats,
    lane_label,
    percentile,
    request_stats,
)

from .builders import PIPELINE_JOBS, job, request


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),  # position 1.5: halfway between 2 and 3
        ([4, 1, 3, 2], 50, 2.5),  # order does not matter
        ([1, 2, 3, 4], 90, 3.7),  # position 2.7: 3 + 0.7 * (4 - 3)
        ([10, 20, 30, 40, 50], 95, 48.0),  # position 3.8: 40 + 0.8 * 10
        ([10, 20, 30, 40, 50], 99, 49.6),  # position 3.96
        ([10, 20, 30, 40, 50], 0, 10.0),
        ([10, 20, 30, 40, 50], 100, 50.0),
        ([7], 99, 7.0),
    ],
)
def test_percentile_interpolates_between_closest_ranks(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_refuses_no_values_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_describe_skips_none_and_is_none_without_values() -> None:
    d = describe([3.0, None, 1.0, 2.0, 10.0])
    assert d is not None
    assert (d.n, d.mean, d.min, d.p50, d.max) == (4, 4.0, 1.0, 2.5, 10.0)
    assert d.p90 == pytest.approx(7.9)  # position 2.7: 3 + 0.7 * 7
    assert describe([None, None]) is None


@pytest.mark.parametrize(
    ("spans", "rows"),
    [
        ([("g0", 0, 10), ("g0", 5, 15)], [0, 1]),  # overlap: two rows
        ([("g0", 0, 10), ("g0", 10, 15)], [0, 0]),  # touching: one row
        ([("g0", 0, 10), ("g1", 5, 15)], [0, 0]),  # different lanes never share rows
        ([("g0", 0, 10), ("g0", 1, 3), ("g0", 4, 12), ("g0", 11, 20)], [0, 1, 1, 0]),  # reuse the freed row
        ([("g0", 5, 15), ("g0", 0, 10), ("g0", 2, 3)], [1, 0, 1]),  # by start time, not input order
    ],
)
def test_assign_rows_separates_overlapping_spans(spans: list[tuple[str, float, float]], rows: list[int]) -> None:
    assert assign_rows(spans) == rows


def test_assign_rows_never_puts_overlapping_spans_on_one_row() -> None:
    spans = [("gpu", float(i % 7), float(i % 7) + 1.0 + i % 3) for i in range(40)]
    rows = assign_rows(spans)
    for i, (_, s1, e1) in enumerate(spans):
        for j, (_, s2, e2) in enumerate(spans[:i]):
            if rows[i] == rows[j]:
                assert e1 <= s2 or e2 <= s1, (i, j)
    deepest = max(sum(1 for _, s, e in spans if s <= t < e) for t in [x / 2 for x in range(24)])
    assert max(rows) + 1 == deepest  # as few rows as the most spans live at one instant


def test_gantt_bars_lanes_and_sub_rows() -> None:
    bars = {b.job.name: b for b in gantt_bars(PIPELINE_JOBS, horizon=30.0)}
    assert bars["asr/rec-a"].lane == "n0 / gpu 0 / mig-1g.10gb" == bars["asr/rec-b"].lane
    assert {bars["asr/rec-a"].row, bars["asr/rec-b"].row} == {0, 1}  # they overlap
    assert bars["asr/rec-c"].row == bars["asr/rec-d"].row == 0  # one after the other on gpu 1
    assert lane_label(job("cpu-job", 0, None, None, None)) == "cpu"


def test_gantt_bars_of_unfinished_jobs_stop_at_the_horizon() -> None:
    jobs = [job("p", 2.0, None, None, None), job("r", 1.0, 3.0, 4.0, None, status="running", gpu="0")]
    bars = {b.job.name: b for b in gantt_bars(jobs, horizon=9.0)}
    assert (bars["p"].end, bars["p"].open, bars["p"].run_start) == (9.0, True, None)
    assert (bars["r"].end, bars["r"].run_start) == (9.0, 4.0)


def test_job_stats() -> None:
    s = job_stats(PIPELINE_JOBS)
    assert s.by_status == {"succeeded": 3, "failed": 1}
    assert s.makespan == 30.0 and s.retries == 2
    assert s.completion_time is not None and s.completion_time.n == 4
    # JCTs 20, 14.5, 9, 19: mean 15.625, median (14.5 + 19) / 2
    assert s.completion_time.mean == pytest.approx(15.625) and s.completion_time.p50 == pytest.approx(16.75)
    assert s.queue_wait is not None and s.queue_wait.p50 == pytest.approx(1.25)  # waits 1, 1.5, 2, 1
    assert job_stats([job("p", 0.0, None, None, None)]).makespan is None


def test_request_stats_counts_errors_and_percentiles() -> None:
    reqs = [request(i, float(i), 0.1 * (i + 1), 1.0, endpoint="a" if i < 3 else "b") for i in range(4)]
    reqs += [request(8, 1.0, None, None, "b", status=503), request(9, 2.0, None, None, "", status=0)]
    s = request_stats(reqs)
    assert (s.total, s.ok, s.errors) == (6, 4, {"503": 1, "no response": 1})
    assert s.ttft is not None and s.ttft.p50 == pytest.approx(0.25) and s.ttft.p99 == pytest.approx(0.397)
    assert s.span == 4.0 and s.request_rate == 1.0 and s.output_token_rate == 10.0
    assert [(e.endpoint, e.requests, e.errors) for e in s.endpoints] == [("a", 3, 0), ("b", 2, 1), ("", 1, 1)]


def test_item_groups_only_for_a_few_items() -> None:
    reqs = [request(i, 0.0, 0.1, 1.0, "", item=f"b{i % 3}") for i in range(9)]
    groups = item_groups(reqs, 6)
    assert groups is not None and list(groups) == ["b0", "b1", "b2"]
    assert item_groups(reqs, 2) is None
    assert item_groups(reqs[:1], 6) is None
    assert item_groups(reqs[:6], 6) is None  # two requests per item: not worth a series each
    assert item_groups(reqs[:6], 6, least=2) is not None


def test_horizon_is_the_latest_time_of_any_record() -> None:
    assert horizon(PIPELINE_JOBS, [], [], []) == 30.0
    assert horizon([], [], [], []) == 0.0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.05234, "0.0523"),
        (0.1, "0.100"),
        (1.2e-05, "1.20e-05"),
        (1.23456, "1.23"),
        (12.345, "12.3"),
        (123.456, "123"),
        (1234.4, "1234"),
        (0.0, "0"),
        (-2.5, "-2.50"),
        (None, "-"),
        (True, "true"),
        (3, "3"),
        ("x", "x"),
        ({"a": [1]}, '{"a": [1]}'),
    ],
)
def test_cells(value: object, text: str) -> None:
    assert cell(value) == text


def test_number_and_duration() -> None:
    assert number(float("nan")) == "nan"
    assert (duration(42.14), duration(187.0), duration(7500.0)) == ("42.1 s", "3 min 7 s", "2 h 5 min")
