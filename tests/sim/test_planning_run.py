"""`flotilla simulate`: tenants through Kueue, GPU faults and evictions, online SLOs, the command."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flotilla.cli import app
from flotilla.sim.batch import FixedRuntime, SimJob, inventories
from flotilla.sim.cluster import BatchSimulation
from flotilla.sim.planning.run import plan
from flotilla.sim.planning.spec import ClusterSpec, WorkloadSpec
from flotilla.slicer.inventory import parse_gpu_spec


def cluster(nodes: int = 2, **health: float) -> ClusterSpec:
    return ClusterSpec.model_validate({"nodes": [{"count": nodes, "gpus": 8, "model": "A100-80GB"}], "health": health})


def workload(**extra: object) -> WorkloadSpec:
    return WorkloadSpec.model_validate(
        {
            "hours": 3,
            "seed": 3,
            "tenants": [
                {"name": "research", "nominalGPUs": 8, "jobs": {"perHour": 30, "gpus": {1: 0.7, 2: 0.3}}},
                {"name": "prod", "nominalGPUs": 8, "priority": 10, "jobs": {"perHour": 10, "gpus": {4: 1.0}}},
            ],
            **extra,
        }
    )


def test_a_plan_is_deterministic_and_accounts_for_every_job() -> None:
    first, second = plan(cluster(), workload()), plan(cluster(), workload())
    assert first.cluster == second.cluster and first.tenants == second.tenants
    c = first.cluster
    assert c["gpus"] == 16 and c["jobs"] == sum(t["jobs_submitted"] for t in first.tenants.values()) > 50
    assert 0.0 < c["utilization"] <= 1.0 and c["jobs_finished"] <= c["jobs"]
    for t in first.tenants.values():
        assert t["jobs_finished"] > 0 and t["queue_wait_s"]["n"] == t["jobs_submitted"]
        assert t["share_of_quota"] == 0.5 and 0.0 < t["share_of_use"] < 1.0
    assert len(first.timeline) == 96 and first.timeline[-1]["t"] == 3 * 3600
    assert any("preemption" in a for a in first.assumptions)


def test_gpu_faults_take_gpus_out_and_evict_their_pods() -> None:
    healthy = plan(cluster(), workload())
    faulty = plan(cluster(gpuFailuresPerGpuDay=8.0, detectionSeconds=60, repairHours=1), workload())
    assert healthy.cluster["gpu_failures"] == 0 and healthy.cluster["gpu_hours_down"] == 0
    assert faulty.cluster["gpu_failures"] > 5 and faulty.cluster["gpu_hours_down"] > 1
    assert faulty.cluster["health_evictions"] > 0
    assert sum(t["restarts"] for t in faulty.tenants.values()) >= faulty.cluster["health_evictions"] // 2
    assert max(s["gpus_down"] for s in faulty.timeline) >= 1


def test_a_gpu_found_faulty_evicts_its_pod_which_restarts_on_another_gpu() -> None:
    sim = BatchSimulation(inventories(parse_gpu_spec("1x2xA100-80GB")), FixedRuntime(), seed=1)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}},
    }
    sim.submit(SimJob(job, 0.0, work_s=100.0))
    sim.advance(10.0)
    st = sim.jobs["default/train"]
    first_gpu = st.gpu
    assert st.status == "running" and first_gpu
    assert sim.fail_gpu(st.node, first_gpu) == 1
    result = sim.run()
    (record,) = result.records
    assert result.counters["health_evictions"] == 1
    assert record.status == "succeeded" and record.attempts == 2 and record.gpu != first_gpu
    assert record.finished_at is not None and record.finished_at >= 110.0  # started over from the beginning


def test_without_kueue_jobs_go_straight_to_the_scheduler() -> None:
    no_queue = cluster().model_copy(update={"queueing": cluster().queueing.model_copy(update={"kueue": False})})
    result = plan(no_queue, workload())
    assert result.cluster["jobs_finished"] > 0
    assert all(t["queue_wait_s"]["n"] == t["jobs_submitted"] for t in result.tenants.values())


def test_an_online_service_reports_slo_attainment() -> None:
    service = {"name": "chat", "replicas": 2, "gpu": "A100-80GB", "requestsPerSecond": 2, "promptTokens": 200}
    easy = plan(cluster(3), workload(services=[service | {"outputTokens": 16, "slo": {"ttftSeconds": 5.0}}]), 10)
    hard = plan(cluster(3), workload(services=[service | {"outputTokens": 16, "slo": {"ttftSeconds": 1e-4}}]), 10)
    assert easy.services["chat"]["slo_attainment"] == 1.0 and easy.services["chat"]["requests"] > 5
    assert hard.services["chat"]["slo_attainment"] == 0.0
    assert easy.cluster["service_gpus"] == 2


def test_the_command_writes_the_plan_and_names_bad_files(tmp_path: Path) -> None:
    c = tmp_path / "cluster.yaml"
    c.write_text("nodes:\n- {count: 1, gpus: 8, model: A100-80GB}\n")
    w = tmp_path / "workload.yaml"
    w.write_text("hours: 1\ntenants:\n- {name: a, nominalGPUs: 8, jobs: {perHour: 20}}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["simulate", str(c), str(w), "--out", str(out), "--records"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "plan.json").read_text())
    assert doc["cluster"]["gpus"] == 8 and "a" in doc["tenants"] and doc["assumptions"]
    assert (out / "plan_gpus.png").stat().st_size > 5000 and (out / "plan_waits.png").is_file()
    assert (out / "run" / "jobs.jsonl").is_file()
    w.write_text("hours: 1\ntenants:\n- {name: a, nominalGPUs: 9, jobs: {perHour: 20}}\n")
    result = CliRunner().invoke(app, ["simulate", str(c), str(w), "--out", str(out)])
    assert result.exit_code == 2 and "nominalGPUs add up to 9" in result.output
