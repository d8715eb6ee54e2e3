"""Scorers: each one's value for given metrics, table-driven (min-max edge cases included)."""

from __future__ import annotations

import pytest

from flotilla.gateway.scheduling import ApproximatePrefixIndex, EndpointSnapshot, SessionTable

from .builders import context, ep, req, run_scorer


@pytest.mark.parametrize(
    ("waiting", "scores"),
    [
        ([0, 5, 10], [1.0, 0.5, 0.0]),
        ([3, 3, 3], [1.0, 1.0, 1.0]),  # all equal -> 1.0
        ([7], [1.0]),  # one candidate
        ([2, 6], [1.0, 0.0]),
        ([10, 0, 4], [0.0, 1.0, 0.6]),
        ([], []),
    ],
)
def test_queue_scorer_is_min_max_of_waiting(waiting: list[int], scores: list[float]) -> None:
    assert run_scorer("queue-scorer", [ep(f"e{i}", w) for i, w in enumerate(waiting)]) == scores


@pytest.mark.parametrize(
    ("kv", "scores"),
    [([0.0, 0.25, 1.0], [1.0, 0.75, 0.0]), ([0.5, 0.5], [0.5, 0.5]), ([1.2, -0.1], [0.0, 1.0])],  # clamped
)
def test_kv_cache_utilization_scorer_is_one_minus_usage(kv: list[float], scores: list[float]) -> None:
    assert run_scorer("kv-cache-utilization-scorer", [ep(f"e{i}", 0, k) for i, k in enumerate(kv)]) == scores


@pytest.mark.parametrize(
    ("in_flight", "scores"),
    [([0, 2, 4], [1.0, 0.5, 0.0]), ([0, 0], [1.0, 1.0]), ([3, 3], [0.0, 0.0]), ([1, 4], [0.75, 0.0])],
)
def test_active_request_scorer(in_flight: list[int], scores: list[float]) -> None:
    endpoints = [ep(f"e{i}", in_flight=n) for i, n in enumerate(in_flight)]
    assert run_scorer("active-request-scorer", endpoints) == scores


@pytest.mark.parametrize(
    ("endpoint", "score"),
    [
        (ep("a", running_loras={"sql"}, max_loras=1), 1.0),  # loaded
        (ep("b", running_loras={"chat"}, max_loras=2), 0.8),  # room to load it
        (ep("c", waiting_loras={"sql"}, max_loras=1), 0.6),  # queued to load, no room
        (ep("d", running_loras={"chat"}, max_loras=1), 0.0),  # full
        (ep("e", waiting_loras={"sql"}, max_loras=3), 0.8),  # room beats queued, as in GAIE
    ],
)
def test_lora_affinity_scorer(endpoint: EndpointSnapshot, score: float) -> None:
    assert run_scorer("lora-affinity-scorer", [endpoint], req("sql")) == [score]


def test_session_affinity_scorer_prefers_the_endpoint_that_served_the_session() -> None:
    table = SessionTable(ttl_seconds=60)
    table.record("s1", "b:8000", now=0.0)
    endpoints = [ep("a"), ep("b"), ep("c")]
    ctx = context(sessions=table)
    assert run_scorer("session-affinity-scorer", endpoints, req(session="s1"), ctx) == [0.0, 1.0, 0.0]
    assert run_scorer("session-affinity-scorer", endpoints, req(session="other"), ctx) == [0.0, 0.0, 0.0]
    assert run_scorer("session-affinity-scorer", endpoints, req(), ctx) == [0.0, 0.0, 0.0]
    assert run_scorer("session-affinity-scorer", endpoints, req(session="s1"), context()) == [0.0, 0.0, 0.0]


def test_session_affinity_scorer_reads_the_header_when_the_request_has_no_session() -> None:
    from flotilla.gateway.scheduling import InferenceRequest

    table = SessionTable()
    table.record("tok", "a:8000", now=0.0)
    request = InferenceRequest("r", "m", headers={"x-session-token": "tok"})
    assert run_scorer("session-affinity-scorer", [ep("a"), ep("b")], request, context(sessions=table)) == [1.0, 0.0]


@pytest.mark.parametrize("scorer", ["prefix-cache-scorer", "precise-prefix-cache-scorer"])
def test_prefix_scorers_without_an_index_score_zero(scorer: str) -> None:
    assert run_scorer(scorer, [ep("a"), ep("b")], req(prompt="x" * 500)) == [0.0, 0.0]


def test_prefix_cache_scorer_is_matched_over_total_blocks() -> None:
    index = ApproximatePrefixIndex(block_chars=4)
    shared, other = req(prompt="abcdefgh" + "ijkl"), req(prompt="abcdefgh" + "zzzz")
    index.record(other, "a:8000")  # a holds the first 2 of 3 blocks
    index.record(shared, "b:8000")  # b holds all 3
    endpoints = [ep("a"), ep("b"), ep("c")]
    assert run_scorer("prefix-cache-scorer", endpoints, shared, context(prefix=index)) == [0.666667, 1.0, 0.0]
    short = req(prompt="abc")  # shorter than one block: nothing to match
    assert run_scorer("prefix-cache-scorer", endpoints, short, context(prefix=index)) == [0.0, 0.0, 0.0]
    # the approximate scorer reads ctx.prefix only
    assert run_scorer("precise-prefix-cache-scorer", endpoints, shared, context(prefix=index)) == [0.0, 0.0, 0.0]
