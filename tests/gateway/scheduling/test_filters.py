"""Filters: which endpoints each keeps, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.gateway.scheduling import EndpointSnapshot

from .builders import context, ep, req, run_filter


@pytest.mark.parametrize(
    ("endpoints", "params", "now", "kept"),
    [
        ([ep("a"), ep("b", fresh=False), ep("c")], {}, 0.0, ["a", "c"]),
        ([ep("a", fresh=False)], {}, 0.0, []),
        # with a staleness bound, an old scrape is dropped even if the data layer still calls it fresh
        ([ep("a", scraped_at=9.0), ep("b", scraped_at=7.0)], {"maxStalenessSeconds": 2}, 10.0, ["a"]),
        ([ep("a", scraped_at=8.0)], {"maxStalenessSeconds": 2}, 10.0, ["a"]),  # exactly at the bound: kept
    ],
)
def test_healthy_filter(endpoints: list[EndpointSnapshot], params: dict[str, Any], now: float, kept: list[str]) -> None:
    assert run_filter("healthy-filter", endpoints, ctx=context(now=now), **params) == kept


@pytest.mark.parametrize(
    ("waiting", "kept"),
    [
        ([0, 10, 20], ["a"]),  # range 20 / 3 buckets: <= 6.67
        ([0, 5, 20], ["a", "b"]),
        ([4, 4, 4], ["a", "b", "c"]),  # all equal: all kept
        ([7], ["a"]),
        ([3, 4], ["a"]),  # 3 + 1/2
        ([], []),
    ],
)
def test_least_queue_filter_keeps_the_first_bucket(waiting: list[int], kept: list[str]) -> None:
    endpoints = [ep(n, w) for n, w in zip("abc", waiting, strict=False)]
    assert run_filter("least-queue-filter", endpoints) == kept


@pytest.mark.parametrize(
    ("kv", "kept"),
    [
        ([0.1, 0.5, 0.9], ["a"]),  # <= 0.1 + 0.8 / 3
        ([0.2, 0.4, 0.9], ["a", "b"]),  # <= 0.2 + 0.7 / 3 = 0.433
        ([0.5, 0.5], ["a", "b"]),
    ],
)
def test_least_kv_cache_filter_keeps_the_first_bucket(kv: list[float], kept: list[str]) -> None:
    endpoints = [ep(n, 0, k) for n, k in zip("abc", kv, strict=False)]
    assert run_filter("least-kv-cache-filter", endpoints) == kept


@pytest.mark.parametrize(("threshold", "kept"), [(128, ["a", "b", "c"]), (5, ["a", "b"]), (0, ["a"])])
def test_low_queue_filter_keeps_queues_at_or_under_the_threshold(threshold: int, kept: list[str]) -> None:
    endpoints = [ep("a", 0), ep("b", 5), ep("c", 6)]
    assert run_filter("low-queue-filter", endpoints, threshold=threshold) == kept


LORA = [
    ep("loaded", running_loras={"sql"}, max_loras=2),
    ep("queued", waiting_loras={"sql"}, max_loras=1),
    ep("room", running_loras={"chat"}, max_loras=2),
    ep("full", running_loras={"chat", "math"}, max_loras=2),
]


@pytest.mark.parametrize(
    ("endpoints", "model", "threshold", "kept"),
    [
        (LORA, "sql", 1.0, ["loaded", "queued"]),  # affinity group
        (LORA, "sql", 0.0, ["room"]),  # the threshold's coin always says: spread
        (LORA[2:], "sql", 1.0, ["room"]),  # no affinity: those with room
        (LORA[3:], "sql", 1.0, ["full"]),  # neither: unchanged (vLLM queues the load)
        ([ep("a"), ep("b")], "base", 0.999, ["a", "b"]),  # no LoRA anywhere (a base model): unchanged
    ],
)
def test_lora_affinity_filter(endpoints: list[EndpointSnapshot], model: str, threshold: float, kept: list[str]) -> None:
    assert run_filter("lora-affinity-filter", endpoints, req(model), threshold=threshold) == kept


def test_lora_affinity_filter_spreads_with_probability_one_minus_threshold() -> None:
    spread = sum(
        run_filter("lora-affinity-filter", LORA, req("sql"), context(seed), threshold=0.8) == ["room"]
        for seed in range(400)
    )
    assert 50 < spread < 110  # about 20% of 400
