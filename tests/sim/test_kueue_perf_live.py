"""Kueue's perf scenario through the control plane: the objects Kueue's runner creates, the figures
it reports, and a small scenario run end to end against a real `flotilla up` process."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.api.loader import decode
from flotilla.api.registry import Registry
from flotilla.sim.kueue_perf import (
    CLASS_LABEL,
    RUNTIME_LABEL,
    GeneratorConfig,
    PerfScenario,
    expand,
    setup_objects,
    workload_object,
)
from flotilla.sim.kueue_perf_live import LiveRun, Tracked, run_live, summarize

JSON = dict[str, Any]


def small(count: int = 6) -> PerfScenario:
    """One cohort of two ClusterQueues (2 cpu, borrowing 2), small and large workloads."""
    small_set = {
        "count": count,
        "creationIntervalMs": 20,
        "workloads": [{"className": "small", "runtimeMs": 50, "priority": 50, "request": 1}],
    }
    large_set = {
        "count": 2,
        "creationIntervalMs": 60,
        "workloads": [{"className": "large", "runtimeMs": 80, "priority": 200, "request": "1500m"}],
    }
    queues = {
        "className": "cq",
        "count": 2,
        "nominalQuota": 2,
        "borrowingLimit": 2,
        "reclaimWithinCohort": "Any",
        "withinClusterQueue": "LowerPriority",
        "workloadsSets": [small_set, large_set],
    }
    return expand(
        GeneratorConfig.model_validate({"cohorts": [{"className": "co", "count": 1, "queuesSets": [queues]}]})
    )


def test_setup_objects_are_what_kueues_runner_creates(registry: Registry) -> None:
    spec = small()
    objs = setup_objects(spec)
    for i, obj in enumerate(objs, 1):
        decode(obj, registry, "setup", i)  # valid v1beta2 / v1
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert kinds[0] == ("ResourceFlavor", "rf")
    assert ("ClusterQueue", "cq-0-0-co-0") in kinds and ("Namespace", "cq-0-1-co-0") in kinds
    cq = next(o for o in objs if o["kind"] == "ClusterQueue")
    assert cq["spec"]["cohortName"] == "co-0"
    assert cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"] == [
        {"name": "cpu", "nominalQuota": "2", "borrowingLimit": "2"}
    ]
    assert cq["spec"]["preemption"] == {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
    lq = next(o for o in objs if o["kind"] == "LocalQueue")
    assert lq["metadata"] == {"name": "cq-0-0-co-0", "namespace": "cq-0-0-co-0"} and lq["spec"] == {
        "clusterQueue": "cq-0-0-co-0"
    }


def test_workload_objects_follow_the_arrival_schedule(registry: Registry) -> None:
    spec = small()
    large = next(a for a in spec.arrivals if a.workload_class == "large")
    wl = workload_object(large)
    decode(wl, registry)
    assert wl["metadata"]["namespace"] == wl["spec"]["queueName"] == large.workload.local_queue
    assert wl["metadata"]["labels"] == {CLASS_LABEL: "large", RUNTIME_LABEL: "80"}
    assert wl["spec"]["priority"] == 200
    (ps,) = wl["spec"]["podSets"]
    assert ps["count"] == 1 and ps["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1500m"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_figures_are_kueues_usage_and_time_to_admission() -> None:
    """Usage: admitted cpu integrated over time, over nominal quota x (last event - first event),
    per ClusterQueue class; time to admission: creation to first admission, per workload class."""
    spec = small(count=1)
    clock = Clock()
    a = Tracked("cq-0-0-co-0/small-0-0-0", "cq-0-0-co-0", "small", 2.0, 0.05)
    b = Tracked("cq-0-1-co-0/large-1-0-0", "cq-0-1-co-0", "large", 1.0, 0.08)
    tracked = {t.key: t for t in (a, b)}
    run = LiveRun(tracked, clock=clock)
    a.created_at = run.touch()  # t=100
    clock.now = 101.0
    a.admitted_at = run.touch(a.cluster_queue, 2.0)  # 2 cores from t=101
    clock.now = 103.0
    b.created_at = run.touch()
    clock.now = 104.0
    b.admitted_at = run.touch(b.cluster_queue, 1.0)
    clock.now = 105.0
    a.finished_at = run.touch(a.cluster_queue, -2.0)
    b.finished_at = run.touch(b.cluster_queue, -1.0)
    run.finished = len(tracked)
    result = summarize(spec, "tiny", run, start=100.0)
    # 2 cores x 4 s + 1 core x 1 s = 9 core-seconds over 2 queues x 2 cores x 5 s
    assert result["usage_pct"] == {"cq": pytest.approx(9 / 20 * 100)}
    assert result["avg_time_to_admission_ms"] == {"large": pytest.approx(1000.0), "small": pytest.approx(1000.0)}
    assert result["wall_s"] == pytest.approx(5.0) and result["unfinished"] == 0


def test_a_small_scenario_runs_end_to_end_through_flotilla_up() -> None:
    spec = small()
    result = run_live(spec, "tiny", limit_seconds=60)
    assert result["errors"] == []
    assert result["unfinished"] == 0 and result["workloads"] == len(spec.arrivals)
    assert set(result["avg_time_to_admission_ms"]) == {"small", "large"}
    assert 0 < result["usage_pct"]["cq"] <= 100
    assert result["control_plane_cpu_s"] is None or result["control_plane_cpu_s"] > 0
