"""The cluster and workload files of `flotilla simulate`: what loads, and what is refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.sim.planning.spec import SpecError, check_fits, load_cluster, load_workload

CLUSTER = """
kind: SimulatedCluster
nodes:
- {name: a100, count: 4, gpus: 8, model: A100-80GB}
health: {gpuFailuresPerGpuDay: 0.01, detectionSeconds: 60, repairHours: 2}
"""
WORKLOAD = """
kind: SimulatedWorkload
hours: 2
tenants:
- name: research
  nominalGPUs: 16
  jobs: {perHour: 100, gpus: {1: 0.5, 8: 0.5}, minutes: {median: 10}}
- name: prod
  nominalGPUs: 8
  priority: 100
  jobs: {perHour: 20}
services:
- {name: chat, replicas: 4, requestsPerSecond: 2, slo: {ttftSeconds: 1.0}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_examples_load_and_fit(tmp_path: Path) -> None:
    cluster = load_cluster(write(tmp_path, "c.yaml", CLUSTER))
    workload = load_workload(write(tmp_path, "w.yaml", WORKLOAD))
    assert cluster.total_gpus == 32 and cluster.health.repairHours == 2
    assert [t.name for t in workload.tenants] == ["research", "prod"] and workload.tenants[1].jobs.gpus == {1: 1.0}
    check_fits(cluster, workload)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (WORKLOAD.replace("nominalGPUs: 16", "nominalGPUs: -1"), "tenants[0].nominalGPUs"),
        (WORKLOAD.replace("perHour: 100", "perHour: 100, burst: 2"), "tenants[0].jobs.burst"),
        (WORKLOAD.replace("{1: 0.5, 8: 0.5}", "{1: 0, 8: 0}"), "weights must be >= 0 and not all 0"),
        (WORKLOAD.replace("name: prod", "name: research"), "every tenant needs its own name"),
        (WORKLOAD.replace("hours: 2", "hours: [2"), "malformed YAML at line"),
    ],
)
def test_bad_workload_files_name_file_field_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "w.yaml", text)
    with pytest.raises(SpecError) as caught:
        load_workload(path)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_a_workload_that_cannot_fit_the_cluster_says_what_to_change(tmp_path: Path) -> None:
    cluster = load_cluster(write(tmp_path, "c.yaml", CLUSTER))
    greedy = load_workload(write(tmp_path, "w.yaml", WORKLOAD.replace("nominalGPUs: 16", "nominalGPUs: 40")))
    with pytest.raises(SpecError, match="nominalGPUs add up to 48; the cluster has 28 GPUs besides the services"):
        check_fits(cluster, greedy)
    wide = load_workload(write(tmp_path, "w.yaml", WORKLOAD.replace("{1: 0.5, 8: 0.5}", "{16: 1}")))
    with pytest.raises(SpecError, match=r"tenants\[0\]\.jobs\.gpus \(research\) asks for more GPUs per job"):
        check_fits(cluster, wide)
    with pytest.raises(SpecError, match="cluster file"):
        load_cluster(tmp_path / "missing.yaml")


def test_a_tenant_replays_its_own_job_trace(tmp_path: Path) -> None:
    from flotilla.sim.planning.run import arrivals
    from flotilla.sim.planning.spec import TraceError, read_trace

    (tmp_path / "jobs.csv").write_text("at,gpus,minutes\n60,2,5\n0,1,10\n")
    (tmp_path / "jobs.jsonl").write_text('{"at": 30, "gpus": 8, "minutes": 1.5}\n')
    text = "hours: 1\ntenants:\n- {name: a, nominalGPUs: 8, trace: jobs.csv}\n"
    text += "- {name: b, nominalGPUs: 8, trace: jobs.jsonl}\n"
    workload = load_workload(write(tmp_path, "w.yaml", text))
    assert workload.tenants[0].trace == str(tmp_path / "jobs.csv")  # relative to the workload file
    assert arrivals(workload, seed=1) == [(0.0, "a", 1, 600.0), (30.0, "b", 8, 90.0), (60.0, "a", 2, 300.0)]
    (tmp_path / "bad.csv").write_text("at,gpus,minutes\n0,1,10\n5,two,1\n")
    with pytest.raises(TraceError, match=r"bad\.csv:3: gpus: 'two' is not a number"):
        read_trace(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"at": 0, "gpus": 1, "minutes": 1}\n[0, 1, 1]\n')
    with pytest.raises(TraceError, match=r"bad\.jsonl:2: expected a JSON object with `at`, `gpus` and `minutes`"):
        read_trace(tmp_path / "bad.jsonl")
    with pytest.raises(SpecError, match="as `jobs` \\(a Poisson stream\\) or as `trace`"):
        load_workload(write(tmp_path, "w.yaml", WORKLOAD.replace("{perHour: 20}", "{perHour: 20}\n  trace: x.csv")))


def test_the_shipped_planning_examples_load_and_fit() -> None:
    from importlib import resources

    folder = Path(str(resources.files("flotilla") / "examples" / "planning"))
    for name in ("small", "vela"):
        cluster = load_cluster(folder / f"{name}-cluster.yaml")
        workload = load_workload(folder / f"{name}-workload.yaml")
        check_fits(cluster, workload)
    assert load_cluster(folder / "vela-cluster.yaml").total_gpus == 4000
