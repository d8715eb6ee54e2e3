"""Pickers: rankings, seeded tie-breaks, the round-robin rotation."""

from __future__ import annotations

from collections import Counter

import pytest

from .builders import ep, run_picker

A, B, C, D = ep("a"), ep("b"), ep("c"), ep("d")


def test_max_score_picker_ranks_by_score() -> None:
    assert run_picker("max-score-picker", [(A, 1.0), (B, 3.0), (C, 2.0)]) == ["b", "c", "a"]


def test_max_score_picker_breaks_ties_with_the_seeded_rng() -> None:
    scored = [(A, 1.0), (B, 2.0), (C, 2.0), (D, 2.0)]
    firsts = Counter(run_picker("max-score-picker", scored, seed=s)[0] for s in range(300))
    assert set(firsts) == {"b", "c", "d"} and min(firsts.values()) > 70  # uniform over the tied
    assert run_picker("max-score-picker", scored, seed=7) == run_picker("max-score-picker", scored, seed=7)
    assert all(run_picker("max-score-picker", scored, seed=s)[-1] == "a" for s in range(20))


def test_max_num_of_endpoints_truncates_the_ranking() -> None:
    assert run_picker("max-score-picker", [(A, 1.0), (B, 3.0), (C, 2.0)], maxNumOfEndpoints=2) == ["b", "c"]


def test_random_picker_ignores_scores_and_is_seeded() -> None:
    scored = [(A, 100.0), (B, 0.0), (C, 0.0)]
    firsts = Counter(run_picker("random-picker", scored, seed=s)[0] for s in range(300))
    assert min(firsts.values()) > 70
    assert run_picker("random-picker", scored, seed=3) == run_picker("random-picker", scored, seed=3)
    assert sorted(run_picker("random-picker", scored, seed=3)) == ["a", "b", "c"]


def test_weighted_random_picker_follows_the_scores() -> None:
    scored = [(A, 3.0), (B, 1.0), (C, 0.0)]
    firsts = Counter(run_picker("weighted-random-picker", scored, seed=s)[0] for s in range(2000))
    assert firsts["c"] == 0  # zero score: never first while another scores
    assert 0.70 < firsts["a"] / 2000 < 0.80  # 3 / (3 + 1)
    assert all(run_picker("weighted-random-picker", scored, seed=s)[-1] == "c" for s in range(20))


def test_weighted_random_picker_with_all_zero_scores_is_uniform() -> None:
    scored = [(A, 0.0), (B, 0.0), (C, 0.0)]
    firsts = Counter(run_picker("weighted-random-picker", scored, seed=s)[0] for s in range(300))
    assert min(firsts.values()) > 70


@pytest.mark.parametrize(
    ("turn", "ranking"),
    [(0, ["a", "b", "c"]), (1, ["b", "c", "a"]), (2, ["c", "a", "b"]), (3, ["a", "b", "c"]), (None, ["a", "b", "c"])],
)
def test_round_robin_rotates_by_the_turn_in_address_order(turn: int | None, ranking: list[str]) -> None:
    assert run_picker("round-robin", [(C, 9.0), (A, 0.0), (B, 5.0)], turn=turn) == ranking
