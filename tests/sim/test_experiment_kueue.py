"""`flotilla experiment kueue`, quick: makespan without and with Kueue (the study's cohort variant)."""

from __future__ import annotations

import json

from flotilla.sim.experiments import ExperimentOptions, runner
from flotilla.sim.experiments.kueue import QUICK


def test_kueue_quick_shortens_the_makespan_within_sane_bounds() -> None:
    result = runner("kueue")(ExperimentOptions(seeds=[1, 2, 3, 4], quick=True))
    assert result.experiment == "kueue" and result.metric == "makespan_s" and result.seeds == [1, 2, 3, 4]
    assert len(result.baseline.values) == len(result.treatment.values) == 4
    assert 0 < result.improvement_pct < 30  # Kueue helps, by less than a third
    jobs = 2 * QUICK.iterations
    for arm in result.details["arms"].values():
        # no schedule can beat the longest Job, nor one Job at a time
        assert all(m > 0 for m in arm["makespan_s"]) and all(c <= QUICK.gpus for c in arm["max_concurrent"])
        assert all(j < m for j, m in zip(arm["mean_jct_s"], arm["makespan_s"], strict=True))
    assert result.details["setup"]["jobs"] == jobs and result.details["scale"] == "quick"
    assert result.assumptions and all(a.endswith(".") for a in result.assumptions)
    assert result.wall_seconds is not None and result.wall_seconds < 10
    json.loads(result.model_dump_json())  # writable as DIR/kueue.json


def test_the_default_scheduler_arm_goes_through_kube_scheduler_backoff() -> None:
    result = runner("kueue")(ExperimentOptions(seeds=[1], quick=True))
    arms = result.details["arms"]
    baseline = arms["default scheduler"]
    assert baseline["scheduling_attempts"][0] > 2 * QUICK.iterations  # failed attempts, retried
    assert baseline["mean_queue_wait_s"] == [0.0]  # no Kueue admission: no queue wait recorded
    assert arms["Kueue (cohort, priority, preemption)"]["mean_queue_wait_s"][0] > 0
