"""A batch scenario on the embedded platform, for the simulator's fidelity (`flotilla experiment ... --live`).

`run_live` starts a control plane in this process (`ControlPlane`, emulated GPUs, the live runtime), applies
the queue objects, creates each Job at its time over HTTP with its container's command replaced by
`sleep <work_s>`, and polls the Jobs, Workloads, Pods and AllocationClaims as `flotilla bench batch` does
(`flotilla.loadgen.batch.observe`) until every Job has ended. It returns the Jobs' records, which compare
with the simulator's for the same Jobs (`FixedRuntime`, `EMBEDDED` params).

`EMBEDDED` is the embedded platform as the simulator models it: its pod scheduler retries a pod as soon as
capacity changes (no kube-scheduler backoff) and its latencies (Job to pod, bind to process start) are
measured on it (tests/sim/test_fidelity.py checks they still hold).
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from flotilla.loadgen.batch import RUN_LABEL, JobPlan, JobTrack, observe
from flotilla.loadgen.batchrun import snapshot
from flotilla.runs.records import JobRecord
from flotilla.sim.batch import ClusterParams, SimJob
from flotilla.sim.batchstats import summarize
from flotilla.sim.experiments.base import Fidelity, fidelity_error
from flotilla.sim.perfdata import KubeSchedulerParams
from flotilla.slicer.inventory import EmulatedGPUConfig

JSON = dict[str, Any]
APPLY = "/apis/flotilla.dev/v1/apply"

EMBEDDED = ClusterParams(
    scheduler=KubeSchedulerParams(pod_initial_backoff_s=0.0, pod_max_backoff_s=0.0),
    job_to_pod_s=0.05,  # measured: the queue controller and the Job controller
    pod_startup_s=0.13,  # measured: binder, process start, and the end seen (poll loops)
    mig_slice_create_s=0.0,  # the emulated backend creates a slice at once
)


def sleep_job(job: SimJob, label: str) -> JSON:
    """`job`'s Job with every container running `sleep <work_s>` and the run label on it and its pods."""
    obj: JSON = {**job.job, "metadata": {**job.job["metadata"]}}
    obj["metadata"]["labels"] = {**(obj["metadata"].get("labels") or {}), RUN_LABEL: label}
    spec = {**obj["spec"]}
    template = {**spec["template"]}
    meta = {**(template.get("metadata") or {})}
    meta["labels"] = {**(meta.get("labels") or {}), RUN_LABEL: label}
    pod_spec = {**template["spec"]}
    pod_spec["containers"] = [
        {**c, "command": ["sleep", f"{job.work_s:.3f}"], "args": []} for c in pod_spec.get("containers") or []
    ]
    template.update(metadata=meta, spec=pod_spec)
    spec["template"] = template
    obj["spec"] = spec
    return obj


def run_live(
    jobs: Sequence[SimJob],
    queue_objects: Sequence[Mapping[str, Any]],
    gpus: EmulatedGPUConfig,
    *,
    poll_interval: float = 0.1,
    timeout: float = 300.0,
) -> list[JobRecord]:
    """Run `jobs` (sleeping `work_s` each) through a fresh embedded control plane; their records, times in
    seconds from the start (see the module docstring). RuntimeError when they do not all end by `timeout`."""
    from flotilla.runtime.config import RuntimeConfig
    from flotilla.server.runner import ControlPlane, free_port

    namespaces = sorted({j.namespace for j in jobs})
    setup = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces]
    setup += [dict(o) for o in queue_objects if o.get("kind") != "Namespace"]
    with tempfile.TemporaryDirectory(prefix="flotilla-live-") as tmp:
        plane = ControlPlane(
            Path(tmp) / "data",
            port=free_port(),
            gpus=gpus,
            gpu_backend="emulated",
            runtime_config=RuntimeConfig(jobBackoffSeconds=0, restartBackoffSeconds=0, pollSeconds=0.05),
        ).start_in_thread()
        try:
            with httpx.Client(base_url=plane.url, timeout=30.0) as http:
                items = [{"source": "live", "index": i, "object": o} for i, o in enumerate(setup, 1)]
                response = http.post(APPLY, json={"items": items})
                if response.status_code >= 300:
                    raise RuntimeError(
                        f"applying the queue objects: HTTP {response.status_code}: {response.text[:300]}"
                    )
                return _drive(http, jobs, poll_interval, timeout)
        finally:
            plane.stop()


def _drive(http: httpx.Client, jobs: Sequence[SimJob], poll_interval: float, timeout: float) -> list[JobRecord]:
    label = f"sim-{secrets.token_hex(3)}"
    order = sorted(jobs, key=lambda j: j.created)
    tracks: dict[str, JobTrack] = {}
    origin, clock0 = time.time(), time.perf_counter()

    def now() -> float:
        return time.perf_counter() - clock0

    prev_poll = next_poll = 0.0
    created = 0
    while True:
        while created < len(order) and now() >= order[created].created:
            job = order[created]
            at = now()
            response = http.post(f"/apis/batch/v1/namespaces/{job.namespace}/jobs", json=sleep_job(job, label))
            if response.status_code >= 300:
                raise RuntimeError(f"creating Job {job.key}: HTTP {response.status_code}: {response.text[:300]}")
            tracks[job.name] = JobTrack(JobPlan(job.name, "medium", created, Path(job.item or job.name), job.model), at)
            created += 1
        if now() >= next_poll:
            started = now()
            for ns in sorted({j.namespace for j in order}):
                observe(tracks, snapshot(http, ns, label), prev_poll, now(), origin)
            prev_poll, next_poll = started, started + poll_interval
        if created == len(order) and all(t.finished for t in tracks.values()):
            break
        if now() > timeout:
            raise RuntimeError(f"live run: not every Job ended within {timeout:.0f} s")
        due = [next_poll] + ([order[created].created] if created < len(order) else [])
        time.sleep(max(0.0, min(due) - now()))
    by_name = {j.name: j for j in order}
    return [
        tracks[j.name].record(j.namespace).model_copy(update={"queue": by_name[j.name].queue, "item": j.item})
        for j in order
    ]


def fidelity(
    arms: Sequence[tuple[str, Sequence[SimJob], Sequence[Mapping[str, Any]]]],
    gpus: EmulatedGPUConfig,
    scenario: str,
    notes: Sequence[str] = (),
) -> Fidelity:
    """Each arm's Jobs in the simulator (`FixedRuntime`, `EMBEDDED`) and on the embedded platform:
    makespan and mean JCT side by side, with |simulated - live| / live."""
    from flotilla.sim.batch import FixedRuntime, inventories
    from flotilla.sim.cluster import BatchSimulation

    metrics: dict[str, dict[str, float]] = {}
    for name, jobs, queues in arms:
        sim = BatchSimulation(inventories(gpus), FixedRuntime(), queue_objects=queues, params=EMBEDDED)
        for job in jobs:
            sim.submit(job)
        simulated = sim.run()
        live = summarize(run_live(jobs, queues, gpus), [], 0, {})
        for metric, s, v in (
            ("makespan_s", simulated.makespan, live.makespan),
            ("mean_jct_s", simulated.jct_mean, live.jct_mean),
        ):
            metrics[f"{metric} ({name})"] = {"simulated": s, "live": v, "error_pct": fidelity_error(s, v)}
    return Fidelity(scenario=scenario, metrics=metrics, notes=list(notes))
