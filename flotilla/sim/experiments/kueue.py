"""`flotilla experiment kueue`: the study's batch stage without and with Kueue; total makespan (its figure 15,
"Kueue reduced total makespan by up to 15%").

Both arms run the same Jobs (flotilla/sim/study.py: 16 iterations x {whisper medium, whisper large}, one
created a second, `nvidia.com/gpu: 1` each) on one p4d.24xlarge (8 x A100-40GB) in the batch simulator:
- baseline, "default scheduler": the Jobs carry no queue label; their pods go straight to kube-scheduler
  (its queue with backoff and requeueing, Flotilla's node scheduler plugins);
- treatment, "Kueue (cohort, priority, preemption)": the study's later variant (`study.cohort_queues`): the
  large Jobs through `cluster-queue` (8 GPUs of quota, WorkloadPriorityClass high-priority, preemption
  policies), the medium Jobs through `cluster-queue-medium` (4 GPUs, borrowingLimit 0, lendingLimit 4), one
  cohort; admission by the same policy as live (`flotilla.queue.cycle.schedule`).
`details` adds the study's first Kueue setup (one ClusterQueue of 8 GPUs, no priorities) and the mean JCTs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from flotilla.sim.batch import ClusterParams, SimJob, WhisperRuntime
from flotilla.sim.batchstats import BatchResult
from flotilla.sim.cluster import BatchSimulation
from flotilla.sim.experiments import ExperimentOptions
from flotilla.sim.experiments.base import Arm, ExperimentResult, Fidelity, improvement
from flotilla.sim.perfdata import WhisperData, load_whisper_data
from flotilla.sim.study import (
    KUEUE_GPUS,
    as_sleeps,
    cohort_queues,
    live_gpus,
    single_queue,
    study_jobs,
    study_nodes,
    study_params,
)
from flotilla.slicer.inventory import NodeInventory

STUDY_IMPROVEMENT_PCT = 15.0
STUDY_CLAIM = "Kueue reduced total makespan by up to 15% (with priorities and preemption)"
TIME_SCALE = 200.0  # --live: simulated seconds per live second


@dataclass(frozen=True)
class Setup:
    iterations: int
    gpus: int  # on the one node
    medium_quota: int


FULL = Setup(iterations=16, gpus=8, medium_quota=4)
QUICK = Setup(iterations=8, gpus=4, medium_quota=2)
LIVE = Setup(iterations=4, gpus=2, medium_quota=1)


def simulate(
    data: WhisperData,
    nodes: list[NodeInventory],
    params: ClusterParams,
    jobs: list[SimJob],
    queues: list[Any],
    seed: int,
) -> BatchResult:
    sim = BatchSimulation(nodes, WhisperRuntime(data), queue_objects=queues, params=params, seed=seed)
    for job in jobs:
        sim.submit(job)
    return sim.run()


def arms(data: WhisperData, setup: Setup, seed: int) -> dict[str, tuple[list[SimJob], list[Any]]]:
    """Each arm's Jobs and queue objects for one seed (the same recordings in every arm)."""
    n = setup.iterations
    return {
        "default scheduler": (study_jobs(data, seed, n, KUEUE_GPUS, queue=False), []),
        "Kueue (cohort, priority, preemption)": (
            study_jobs(data, seed, n, KUEUE_GPUS, queue=True, priorities=True),
            cohort_queues(setup.gpus, setup.medium_quota),
        ),
        "Kueue (one ClusterQueue)": (study_jobs(data, seed, n, KUEUE_GPUS, queue=True), single_queue(setup.gpus)),
    }


def run(options: ExperimentOptions) -> ExperimentResult:
    started = time.perf_counter()
    data = load_whisper_data()
    setup = QUICK if options.quick else FULL
    nodes = study_nodes(data, gpus=setup.gpus)
    params = study_params(data)
    results: dict[str, list[BatchResult]] = {}
    for seed in options.seeds:
        for name, (jobs, queues) in arms(data, setup, seed).items():
            results.setdefault(name, []).append(simulate(data, nodes, params, jobs, queues, seed))
    names = list(results)
    base, treat = results[names[0]], results[names[1]]
    result = ExperimentResult.from_runs(
        experiment="kueue",
        metric="makespan_s",
        unit="s",
        baseline=Arm.of(names[0], [r.makespan for r in base], "Jobs without a queue label, straight to kube-scheduler"),
        treatment=Arm.of(names[1], [r.makespan for r in treat], "the study's cohort variant"),
        study_improvement_pct=STUDY_IMPROVEMENT_PCT,
        study_claim=STUDY_CLAIM,
        seeds=options.seeds,
        assumptions=assumptions(data, setup),
        details=details(setup, names, results),
    )
    if options.live:
        result.live = live(data)
    result.wall_seconds = time.perf_counter() - started
    return result


def details(setup: Setup, names: list[str], results: dict[str, list[BatchResult]]) -> dict[str, Any]:
    base = results[names[0]]
    out: dict[str, Any] = {
        "scale": "quick" if setup == QUICK else "full",
        "setup": {
            "iterations": setup.iterations,
            "jobs": 2 * setup.iterations,
            "gpus": setup.gpus,
            "medium_quota": setup.medium_quota,
        },
        "arms": {},
    }
    for name, runs in results.items():
        out["arms"][name] = {
            "makespan_s": [r.makespan for r in runs],
            "mean_jct_s": [r.jct_mean for r in runs],
            "mean_queue_wait_s": [r.queue_wait_mean for r in runs],
            "max_concurrent": [r.max_concurrent for r in runs],
            "gpu_util_mean": [r.gpu_util_mean for r in runs],
            "preemptions": [r.counters.get("preemptions", 0.0) for r in runs],
            "scheduling_attempts": [r.counters.get("scheduling_attempts", 0.0) for r in runs],
            "makespan_improvement_pct": improvement(
                statistics.fmean(r.makespan for r in base), statistics.fmean(r.makespan for r in runs)
            ),
        }
    return out


def assumptions(data: WhisperData, setup: Setup) -> list[str]:
    node = data.study_node
    medium, large = data.model("medium"), data.model("large")
    gpu = node.gpu_model
    return [
        f"One {node.instance} node with {setup.gpus} {gpu} GPUs, allocatable cpu {node.allocatable_cpu} and "
        f"memory {node.allocatable_memory}; the node's daemons request {node.daemon_cpu} cpu and {node.daemon_memory}.",
        f"kube-burner creates {setup.iterations} iterations x (whisper-medium, whisper-large) = {2 * setup.iterations} "
        "Jobs, one object a second (qps 1, burst 1), the medium Job of each iteration first.",
        "Each Job's one pod asks nvidia.com/gpu: 1 and nothing else, as the study's Kueue templates do.",
        f"Audio: Earnings-22 calls, lognormal lengths with mean {data.audio.mean_s / 60:.0f} min and coefficient of "
        f"variation {data.audio.cv}, clipped to {data.audio.min_s / 60:.0f}-{data.audio.max_s / 60:.0f} min; medium "
        "Job i transcribes file i, large Job i file 50 + i; both arms get the same recordings for a seed.",
        f"A Job runs its setup (download and model load: medium {medium.setup_s:.0f} s, large {large.setup_s:.0f} s) "
        f"and then audio x {medium.seconds_per_audio_second[gpu]} s (medium) or "
        f"{large.seconds_per_audio_second[gpu]} s (large-v3) per audio second on a whole {gpu}: estimates "
        "calibrated to the study's ~28 min mean JCT (flotilla/sim/data/whisper.yaml).",
        f"The Job controller creates a pod {data.latencies.job_to_pod_s} s after the Job is created (or admitted); "
        f"a bound pod's container starts {data.latencies.pod_startup_s} s later.",
        "Baseline: pods wait in kube-scheduler's queue as v1.31 does (backoff 1 s doubling to 10 s per failed "
        "attempt, every unschedulable pod requeued when a pod ends, a flush after 5 min unschedulable) and are "
        "placed by Flotilla's node scheduler plugins (the live runtime's).",
        f"Treatment: cohort whisper of cluster-queue (large Jobs, nominalQuota {setup.gpus} nvidia.com/gpu, "
        "preemption withinClusterQueue LowerPriority, reclaimWithinCohort Any, borrowWithinCohort LowerPriority; "
        f"the large Jobs in WorkloadPriorityClass high-priority, 10000) and cluster-queue-medium (medium Jobs, "
        f"nominalQuota {setup.medium_quota}, borrowingLimit 0, lendingLimit {setup.medium_quota}); BestEffortFIFO.",
        "We read 'adds a cohort with a medium ClusterQueue' as: the study's cluster-queue keeps its quota and serves "
        "the large Jobs; so admitted quota can exceed the GPUs and admitted pods can wait in kube-scheduler.",
        "In this scenario the preemption policies never fire (the medium queue never borrows, and every large Job "
        "has the same priority): the treatment's gain comes from the medium queue's cap, which lets the longer "
        "large Jobs start first.",
        "No failures, retries or image pulls beyond the setup time; GPUs do not slow each other down.",
    ]


def live(data: WhisperData) -> Fidelity:
    """The LIVE setup, each job sleeping its simulated run time / TIME_SCALE, in the simulator and on the
    embedded platform (1 node x 2 emulated A100-40GB)."""
    from flotilla.sim.batch_live import fidelity

    scaled = []
    for name, (jobs, queues) in arms(data, LIVE, 1).items():
        if name == "Kueue (one ClusterQueue)":
            continue
        scaled.append((name, as_sleeps(data, jobs, TIME_SCALE), queues))
    scenario = (
        f"{LIVE.iterations} iterations ({2 * LIVE.iterations} Jobs) on 1 node x {LIVE.gpus} A100-40GB, quotas "
        f"{LIVE.gpus} + {LIVE.medium_quota}; each Job sleeps its simulated run time / {TIME_SCALE:g}; Jobs 0.1 s apart"
    )
    notes = [
        "The simulator runs the same Jobs with the embedded platform's behaviour (flotilla.sim.batch_live.EMBEDDED): "
        "its pod scheduler retries at once when capacity changes (no kube-scheduler backoff), measured latencies."
    ]
    return fidelity(scaled, live_gpus(data, LIVE.gpus), scenario, notes)
