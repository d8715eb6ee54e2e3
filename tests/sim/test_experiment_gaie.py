"""The gaie experiment, quick: the direction of the effect and sane bounds (no figures pinned)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from flotilla.serving.emulator.engine import EngineConfig
from flotilla.sim.experiments import ExperimentOptions, gaie, runner
from flotilla.sim.experiments.base import ExperimentResult, write_result


@pytest.fixture(scope="module")
def result() -> ExperimentResult:
    return runner("gaie")(ExperimentOptions(seeds=[1], quick=True))


def test_precise_prefix_routing_lowers_ttft(result: ExperimentResult) -> None:
    assert result.experiment == "gaie" and result.unit == "ms" and result.lower_is_better
    assert (result.baseline.name, result.treatment.name) == ("random", "precise-prefix")
    assert result.treatment.mean < result.baseline.mean and result.improvement_pct > 0
    for value in (*result.baseline.values, *result.treatment.values):
        assert 5.0 < value < 10_000.0  # milliseconds: above a decode step, below a backlog
    assert result.study_improvement_pct == 82.0 and result.live is None
    assert result.wall_seconds is not None and result.seeds == [1]


def test_details_have_every_level_and_the_hit_rates(result: ExperimentResult) -> None:
    details = result.details
    arms = details["arms"]
    assert set(arms) == {"random", "precise-prefix"} and details["quick"] is True
    levels = [str(c) for c in gaie.QUICK.concurrencies]
    for arm in arms.values():
        assert list(arm["levels"]) == levels
        for level in arm["levels"].values():
            assert 0 < level["mean_ttft_ms"] <= level["p99_ttft_ms"] < 60_000 and 0 <= level["prefix_hit_rate"] <= 1
    top = levels[-1]
    assert arms["precise-prefix"]["levels"][top]["prefix_hit_rate"] > arms["random"]["levels"][top]["prefix_hit_rate"]
    assert set(details["p99_ttft_reduction_pct_per_level"]) == set(levels)
    assert details["setup"]["kv_cache_tokens_per_replica"] > details["setup"]["prompt_tokens"][0]
    assert len(result.assumptions) >= 8 and any("32 requests per level" in a for a in result.assumptions)


def test_result_is_written(result: ExperimentResult, tmp_path: Path) -> None:
    json_path, png_path = write_result(result, tmp_path)
    assert json_path.stat().st_size > 0 and png_path.stat().st_size > 0


def test_scenario_prompts_draw_recurring_transcripts() -> None:
    scenario = gaie.Scenario(pool=4, prompt_tokens=200, prompt_stdev=0, requests_per_level=10, concurrencies=(1, 2))
    levels = scenario.prompts(seed=3)
    assert [len(p) for p in levels] == [10, 10]
    ids = [p.id for level in levels for p in level]
    assert len(set(ids)) <= 4 and len(ids) > len(set(ids))
    assert all(p.text.startswith(gaie.INSTRUCTION) and p.output_tokens == scenario.output_tokens for p in levels[0])
    assert scenario.prompts(seed=3) == levels and scenario.prompts(seed=4) != levels
    cold, warm, itl = scenario.reference_times()
    assert cold > warm > 0 and itl > 0 and math.isfinite(cold)


@pytest.mark.slow
def test_live_fidelity_wiring(tmp_path: Path) -> None:
    """The --live path on a tiny scenario: real `flotilla serve emulated` and `flotilla gateway` processes."""
    from flotilla.sim.experiments.gaie_live import fidelity

    tiny = gaie.Scenario(
        replicas=2,
        engine=EngineConfig(max_num_batched_tokens=2048, max_model_len=4096),
        pool=2,
        prompt_tokens=600,
        prompt_stdev=0,
        output_tokens=8,
        concurrencies=(2,),
        requests_per_level=4,
    )
    result = fidelity(seed=1, scenario=tiny)
    for arm in ("random", "precise-prefix"):
        m = result.metrics[f"mean_ttft_ms {arm}"]
        assert m["live"] > 0 and m["simulated"] > 0 and math.isfinite(m["error_pct"])
    assert "failed live requests: {'random': 0, 'precise-prefix': 0}" in result.notes
