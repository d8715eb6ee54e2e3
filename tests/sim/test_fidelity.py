"""The simulator against the embedded platform: the same small batch (6 sleep Jobs through a ClusterQueue
of 2 GPUs on 1 node x 2 emulated A100-40GB) agrees within 10% on makespan and mean JCT."""

from __future__ import annotations

import statistics

import pytest

from flotilla.runs.records import JobRecord
from flotilla.sim.batch import FixedRuntime, SimJob, inventories
from flotilla.sim.batch_live import EMBEDDED, run_live
from flotilla.sim.cluster import BatchSimulation
from flotilla.sim.study import KUEUE_GPUS, job_object, single_queue
from flotilla.slicer.inventory import parse_gpu_spec

SLEEPS = [3.0, 4.0, 2.5, 3.5, 3.0, 2.0]


def figures(records: list[JobRecord]) -> tuple[float, float]:
    assert all(r.status == "succeeded" for r in records), records
    makespan = max(r.finished_at or 0.0 for r in records) - min(r.created_at for r in records)
    return makespan, statistics.fmean(r.completion_time or 0.0 for r in records)


def test_simulated_and_live_runs_agree_within_ten_percent() -> None:
    gpus = parse_gpu_spec("1x2xA100-40GB")
    queues = single_queue(2, namespace="fidelity")
    jobs = [
        SimJob(
            job_object(
                "medium" if i % 2 == 0 else "large", i, KUEUE_GPUS, queue=True, namespace="fidelity", prefix="f"
            ),
            created=0.5 * i,
            work_s=seconds,
        )
        for i, seconds in enumerate(SLEEPS)
    ]
    sim = BatchSimulation(inventories(gpus), FixedRuntime(), queue_objects=queues, params=EMBEDDED)
    for j in jobs:
        sim.submit(j)
    simulated = figures(sim.run().records)
    live = figures(run_live(jobs, queues, gpus, timeout=60))
    assert simulated[0] == pytest.approx(live[0], rel=0.10), (simulated, live)
    assert simulated[1] == pytest.approx(live[1], rel=0.10), (simulated, live)
