"""`flotilla experiment das`, quick: mean JCT on whole GPUs and on MIG slices carved first-fit."""

from __future__ import annotations

from flotilla.sim.experiments import ExperimentOptions, runner
from flotilla.sim.experiments.das import QUICK


def test_das_quick_shortens_the_mean_jct_runs_more_at_once_and_uses_the_gpus_more() -> None:
    result = runner("das")(ExperimentOptions(seeds=[1, 2, 3], quick=True))
    assert result.experiment == "das" and result.metric == "mean_jct_s"
    assert all(p > 0 for p in result.improvement_pct_per_seed) and result.improvement_pct < 80
    whole, mig = (result.details["arms"][n] for n in ("whole GPUs", "MIG slices (DAS)"))
    assert whole["max_concurrent"] == [QUICK.gpus] * 3  # one Job per GPU
    assert all(QUICK.gpus < c <= 7 * QUICK.gpus for c in mig["max_concurrent"])  # at most 7 slices a GPU
    assert result.details["gpu_util_ratio"] > 1 and result.details["gpu_util_peak_ratio"] > 1
    slowdown = result.details["slowdown_on_slice"]
    assert all(s >= 1 for s in slowdown.values())  # a Job is slower on its slice, never faster
    for size in ("medium", "large"):
        assert mig["mean_run_time_s"][size] > whole["mean_run_time_s"][size]
    assert whole["failed"] == mig["failed"] == [0, 0, 0]
    assert result.assumptions and result.wall_seconds is not None and result.wall_seconds < 10
