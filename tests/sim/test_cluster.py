"""The batch cluster simulator: determinism, Kueue admission, MIG slices carved and released as DAS does,
preemption, failures, and the records it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotilla.runs.records import JobRecord, RunDir
from flotilla.sim.batch import FixedRuntime, SimJob, WhisperRuntime, inventories
from flotilla.sim.batchstats import write_run
from flotilla.sim.cluster import BatchSimulation
from flotilla.sim.perfdata import load_whisper_data
from flotilla.sim.study import DAS_MIG, das_queue, study_jobs, study_nodes, study_params
from flotilla.slicer.inventory import parse_gpu_spec
from tests.builders import cluster_queue, job, local_queue, namespace, resource_flavor

TWO_A100 = "1x2xA100-40GB"


def queues(gpus: int, **preemption: Any) -> list[dict[str, Any]]:
    cq = cluster_queue("cq").quota("nvidia.com/gpu", gpus, flavor="f").obj()
    if preemption:
        cq["spec"]["preemption"] = preemption
    return [namespace("ns").obj(), resource_flavor("f").obj(), cq, local_queue("lq", "cq", "ns").obj()]


def das_run(seed: int) -> list[JobRecord]:
    data = load_whisper_data()
    nodes = study_nodes(data, gpus=2)
    sim = BatchSimulation(
        nodes,
        WhisperRuntime(data),
        queue_objects=das_queue(nodes, DAS_MIG, "96", "1152Gi"),
        params=study_params(data),
        seed=seed,
    )
    for j in study_jobs(data, seed, 6, DAS_MIG, queue=True):
        sim.submit(j)
    return sim.run().records


def test_the_same_seed_gives_identical_records() -> None:
    first, again = das_run(3), das_run(3)
    assert [r.model_dump() for r in first] == [r.model_dump() for r in again]
    assert [r.model_dump() for r in das_run(4)] != [r.model_dump() for r in first]  # other recordings


def test_kueue_admits_within_quota_and_the_node_runs_what_was_admitted() -> None:
    sim = BatchSimulation(inventories(parse_gpu_spec(TWO_A100)), FixedRuntime(), queue_objects=queues(1))
    for i in range(3):
        sim.submit(SimJob(job(f"j{i}", "ns").queue("lq").gpus(1).obj(), created=float(i), work_s=10.0))
    result = sim.run()
    admitted = [(r.admitted_at, r.started_at, r.finished_at) for r in result.records]
    assert admitted == [(0.0, 0.0, 10.0), (10.0, 10.0, 20.0), (20.0, 20.0, 30.0)]  # quota 1: one at a time
    assert {r.cluster_queue for r in result.records} == {"cq"} and result.max_concurrent == 1


def mig_job(name: str, profile: str, created: float, seconds: float = 10.0) -> SimJob:
    return SimJob(job(name, "ns").gpus(1, f"nvidia.com/mig-{profile}").obj(), created=created, work_s=seconds)


def test_slices_are_carved_first_fit_on_demand_and_released_at_the_end() -> None:
    """medium (1g.5gb) and large (3g.20gb) alternately on 2 A100-40GB: DAS's first-fit fills the first GPU
    (1g at slots 0, 1, 2, 3; 3g at 4-7), the second takes the other 3g's; a fourth 3g waits for one to end."""
    sim = BatchSimulation(inventories(parse_gpu_spec(TWO_A100)), FixedRuntime())
    for i in range(4):
        sim.submit(mig_job(f"m{i}", "1g.5gb", created=2.0 * i))
        sim.submit(mig_job(f"l{i}", "3g.20gb", created=2.0 * i + 1))
    first, second = (g.uuid for g in sim.cluster.nodes[0].gpus)
    result = sim.run()
    by = {r.name.split("/")[1]: r for r in result.records}
    assert [(by[f"m{i}"].gpu, by[f"m{i}"].placement) for i in range(4)] == [(first, f"{i}-{i}") for i in range(4)]
    assert [(by[f"l{i}"].gpu, by[f"l{i}"].placement) for i in range(3)] == [
        (first, "4-7"),
        (second, "0-3"),
        (second, "4-7"),
    ]
    # l0's slice frees at 11 s; l3 last failed at 10 s (m0's end), so it backs off 2 s: placed at 12 s
    assert by["l3"].started_at == 12.0 and (by["l3"].gpu, by["l3"].placement) == (first, "4-7")
    assert {r.slice for r in result.records} == {"mig-1g.5gb", "mig-3g.20gb"}
    assert result.max_concurrent == 7
    assert all(not g.allocations for g in sim.cluster.nodes[0].gpus)  # every slice released


def test_a_whisper_model_too_big_for_its_slice_fails() -> None:
    sim = BatchSimulation(inventories(parse_gpu_spec(TWO_A100)), WhisperRuntime(load_whisper_data()))
    sim.submit(SimJob(job("l", "ns").gpus(1, "nvidia.com/mig-1g.5gb").obj(), 0.0, model="large", work_s=600.0))
    (record,) = sim.run().records
    assert record.status == "failed" and "out of memory" in record.message
    assert all(not g.allocations for g in sim.cluster.nodes[0].gpus)


def test_preemption_evicts_the_running_job_which_starts_over_later() -> None:
    docs = queues(1, withinClusterQueue="LowerPriority")
    docs.append(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "WorkloadPriorityClass",
            "metadata": {"name": "high"},
            "value": 100,
        }
    )
    sim = BatchSimulation(inventories(parse_gpu_spec(TWO_A100)), FixedRuntime(), queue_objects=docs)
    sim.submit(SimJob(job("low", "ns").queue("lq").gpus(1).obj(), created=0.0, work_s=10.0))
    high = job("high", "ns").queue("lq").gpus(1).label("kueue.x-k8s.io/priority-class", "high").obj()
    sim.submit(SimJob(high, created=2.0, work_s=5.0))
    result = sim.run()
    low, first = (r for r in result.records)
    assert (first.started_at, first.finished_at) == (2.0, 7.0)
    assert low.attempts == 2 and low.started_at == 0.0 and low.finished_at == 17.0  # 10 s again from 7 s
    assert result.counters["preemptions"] == 1.0


def test_gpu_utilization_and_concurrency_are_measured() -> None:
    data = load_whisper_data()
    sim = BatchSimulation(inventories(parse_gpu_spec(TWO_A100)), WhisperRuntime(data))
    sim.submit(SimJob(job("a", "ns").gpus(1).obj(), 0.0, model="medium", work_s=600.0))
    sim.submit(SimJob(job("b", "ns").gpus(1).obj(), 0.0, model="medium", work_s=600.0))
    result = sim.run()
    medium = data.model("medium")
    busy = 600.0 * medium.seconds_per_audio_second["A100-40GB"]
    assert result.makespan == pytest.approx(medium.setup_s + busy)
    assert result.gpu_util_peak == pytest.approx(medium.kernel_active * medium.sm_occupancy)
    assert result.gpu_util_mean == pytest.approx(medium.kernel_active * medium.sm_occupancy * busy / result.makespan)
    assert result.max_concurrent == 2 and result.gpu_allocated_mean == pytest.approx(1.0)


def test_a_simulated_run_is_written_for_flotilla_report(tmp_path: Path) -> None:
    sim = BatchSimulation(inventories(parse_gpu_spec(TWO_A100)), FixedRuntime())
    sim.submit(mig_job("m", "1g.5gb", 0.0))
    result = sim.run()
    run = write_run(result, tmp_path / "run", "sim-test", {"scenario": "one job"})
    assert run.info().status == "succeeded" and run.info().config["simulated"] is True
    assert run.info().kind == "simulation"
    (record,) = RunDir(tmp_path / "run").records(JobRecord)
    assert record.slice == "mig-1g.5gb" and record.completion_time == 10.0
    assert run.summary()["makespan"] == 10.0
