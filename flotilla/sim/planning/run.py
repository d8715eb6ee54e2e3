"""Cluster planning: a Vela-like cluster, a multi-tenant workload mix, GPU failures, on simulated time.

    result = plan(load_cluster("cluster.yaml"), load_workload("workload.yaml"), progress=print)
    result.tenants["research"]["queue_wait_s"]["p90"], result.cluster["utilization"], result.services

Batch: every tenant is a Kueue ClusterQueue in one cohort (`nvidia.com/gpu` nominal quota, borrowing up to
`borrowingLimit`, reclaim within the cohort and lower-priority preemption when `queueing.preemption`) with
a LocalQueue of its own; its jobs arrive as a Poisson stream and run for a lognormal time on whole GPUs.
They go through the batch cluster simulator (flotilla/sim/cluster.py): the same admission policy as
`flotilla up`, kube-scheduler's queue, the live node scheduler's plugins. Online services hold their
replicas' GPUs for the whole run (pods outside the queues, placed first).

GPU health: each GPU fails as a Poisson process (`gpuFailuresPerGpuDay`); the periodic health check
finds a fault a uniform time within `detectionSeconds` later (until then the GPU's jobs run on; their
work is not counted as lost), evicts its pods (their Jobs restart them elsewhere from the start) and
keeps new pods off it for `repairHours`. Online SLOs: each service's traffic is simulated for
`sloWindowSeconds` (60 by default) with the online simulator (flotilla/sim/online.py: emulated vLLM
engines behind the gateway's profile); attainment = the share of requests whose TTFT meets the SLO.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from flotilla.loadgen.stats import distribution
from flotilla.runs.records import JobRecord
from flotilla.sim.batch import ClusterParams, FixedRuntime, SimJob, inventories
from flotilla.sim.cluster import BatchSimulation
from flotilla.sim.planning.spec import ClusterSpec, Service, WorkloadSpec, check_fits, read_trace
from flotilla.slicer.inventory import EmulatedGPUConfig

JSON = dict[str, Any]
COHORT = "cluster"
FLAVOR = "gpu"
SERVICE_NAMESPACE = "services"
EVICTION_S = 30.0  # a preempted Job's pods terminate (kubelet's default grace period) before its quota is free
JOB_CPU, JOB_MEMORY_GI = 4, 16  # per GPU of a batch job (a p4d node gives 96 vCPU and 1,152 GiB to 8 GPUs)


@dataclass
class PlanResult:
    cluster: JSON
    tenants: dict[str, JSON]
    services: dict[str, JSON]
    timeline: list[JSON] = field(default_factory=list)  # per sample: t, per-tenant GPUs in use, healthy GPUs
    records: list[JobRecord] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)


def queue_objects(cluster: ClusterSpec, workload: WorkloadSpec) -> list[JSON]:
    """Kueue's objects for the tenants: one flavor, a cohort, a ClusterQueue and LocalQueue per tenant."""
    docs: list[JSON] = [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": FLAVOR},
            "spec": {"nodeLabels": {"nvidia.com/gpu.present": "true"}},
        }
    ]
    priorities = sorted({t.priority for t in workload.tenants})
    for value in priorities:
        docs.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": _priority_class(value)},
                "value": value,
            }
        )
    big = 1_000_000
    for t in workload.tenants:
        gpu: JSON = {"name": "nvidia.com/gpu", "nominalQuota": str(t.nominalGPUs)}
        if t.borrowingLimit is not None:
            gpu["borrowingLimit"] = str(t.borrowingLimit)
        spec: JSON = {
            "cohortName": COHORT,
            "namespaceSelector": {},
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": FLAVOR,
                            "resources": [
                                {"name": "cpu", "nominalQuota": str(big)},
                                {"name": "memory", "nominalQuota": f"{big}Gi"},
                                gpu,
                            ],
                        }
                    ],
                }
            ],
        }
        if cluster.queueing.preemption:
            spec["preemption"] = {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
        if cluster.queueing.fairSharing:
            spec["fairSharing"] = {"weight": "1"}
        docs.append(
            {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": t.name}, "spec": spec}
        )
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": t.name}})
        docs.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": {"name": t.name, "namespace": t.name},
                "spec": {"clusterQueue": t.name},
            }
        )
    return docs


def _priority_class(value: int) -> str:
    return f"priority-{value}" if value >= 0 else f"priority-minus-{-value}"


def _job(name: str, namespace: str, gpus: int, queue: str | None, priority: int | None) -> JSON:
    labels: JSON = {}
    if queue:
        labels["kueue.x-k8s.io/queue-name"] = queue
    if priority is not None:
        labels["kueue.x-k8s.io/priority-class"] = _priority_class(priority)
    container = {
        "name": "main",
        "image": "work",
        "resources": {
            "requests": {"cpu": str(JOB_CPU * gpus), "memory": f"{JOB_MEMORY_GI * gpus}Gi"},
            "limits": {"nvidia.com/gpu": gpus},
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def arrivals(workload: WorkloadSpec, seed: int) -> list[tuple[float, str, int, float]]:
    """Every batch job: (created, tenant, GPUs, run seconds), Poisson per tenant, seeded."""
    horizon = workload.hours * 3600.0
    out: list[tuple[float, str, int, float]] = []
    for t in workload.tenants:
        if t.trace is not None:
            out.extend(
                (at, t.name, gpus, minutes * 60.0) for at, gpus, minutes in read_trace(Path(t.trace)) if at < horizon
            )
            continue
        assert t.jobs is not None
        rng = random.Random(f"{seed}:{t.name}")
        rate = t.jobs.perHour / 3600.0
        sizes, weights = zip(*sorted(t.jobs.gpus.items()), strict=True)
        now = 0.0
        while rate > 0:
            now += rng.expovariate(rate)
            if now >= horizon:
                break
            gpus = rng.choices(sizes, weights)[0]
            minutes = min(t.jobs.minutes.max, t.jobs.minutes.median * math.exp(rng.gauss(0.0, t.jobs.minutes.sigma)))
            out.append((now, t.name, gpus, minutes * 60.0))
    out.sort()
    return out


def failures(
    cluster: ClusterSpec, gpus: list[tuple[str, str]], horizon: float, seed: int
) -> list[tuple[float, float, str, str]]:
    """(found at, repaired at, node, GPU) for every fault within the horizon, seeded."""
    rate = cluster.health.gpuFailuresPerGpuDay / 86400.0
    if rate <= 0:
        return []
    rng = random.Random(f"{seed}:failures")
    out = []
    for node, uuid in gpus:
        t = rng.expovariate(rate)
        while t < horizon:
            found = t + rng.uniform(0.0, cluster.health.detectionSeconds)
            repaired = found + cluster.health.repairHours * 3600.0
            out.append((found, repaired, node, uuid))
            t = repaired + rng.expovariate(rate)
    return sorted(out)


def plan(
    cluster: ClusterSpec,
    workload: WorkloadSpec,
    slo_window_s: float = 60.0,
    *,
    progress: Callable[[float], None] | None = None,
    keep_records: bool = False,
) -> PlanResult:
    """Simulate `workload` on `cluster` for `workload.hours` (see the module docstring)."""
    check_fits(cluster, workload)
    seed = workload.seed
    horizon = workload.hours * 3600.0
    config = EmulatedGPUConfig.model_validate(
        {
            "groups": [
                {
                    "nodes": g.count,
                    "gpusPerNode": max(g.gpus, 1),
                    "model": g.model,
                    "namePrefix": g.name,
                    "cpu": str(g.cpu),
                    "memory": g.memory,
                    "migEnabled": False,
                }
                for g in cluster.nodes
            ]
        }
    )
    sim = BatchSimulation(
        inventories(config),
        FixedRuntime(),
        queue_objects=queue_objects(cluster, workload) if workload.tenants and cluster.queueing.kueue else (),
        params=ClusterParams(eviction_s=EVICTION_S),
        seed=seed,
    )
    # services first: their replicas hold GPUs for the whole run (a Deployment's pods, outside the queues)
    for s in workload.services:
        for i in range(s.replicas):
            job = _job(f"{s.name}-{i}", SERVICE_NAMESPACE, 1, None, None)
            sim.submit(SimJob(job, 0.0, work_s=horizon * 10, item=f"service/{s.name}"))
    tenant_of: dict[str, tuple[str, int]] = {}
    priority = {t.name: t.priority for t in workload.tenants}
    for n, (at, tenant, gpus, seconds) in enumerate(arrivals(workload, seed)):
        name = f"{tenant}-{n}"
        queued = cluster.queueing.kueue
        job = _job(name, tenant, gpus, tenant if queued else None, priority[tenant] if queued else None)
        sim.submit(SimJob(job, at, work_s=seconds, item=tenant))
        tenant_of[f"{tenant}/{name}"] = (tenant, gpus)
    gpu_list = [(n.name, g.uuid) for n in sim.cluster.nodes for g in n.gpus]
    faults = failures(cluster, gpu_list, horizon, seed)
    for found, repaired, node, uuid in faults:
        sim.engine.at(found, partial(_fail, sim, node, uuid), priority=-1)
        if repaired < horizon:
            sim.engine.at(repaired, partial(sim.repair_gpu, node, uuid), priority=-1)
    timeline: list[JSON] = []
    chunks = 96
    for i in range(1, chunks + 1):
        sim.advance(horizon * i / chunks)
        timeline.append(_sample(sim, tenant_of, horizon * i / chunks, faults))
        if progress is not None:
            progress(i / chunks)
    records = sim.records()
    batch = [r for r in records if r.name in tenant_of]
    result = PlanResult(
        cluster=_cluster_metrics(sim, batch, tenant_of, timeline, horizon, faults, workload),
        tenants=_tenant_metrics(workload, batch, tenant_of, horizon, cluster.total_gpus),
        services={s.name: service_slo(s, seed, slo_window_s) for s in workload.services},
        timeline=timeline,
        records=batch if keep_records else [],
        assumptions=_assumptions(cluster, workload, slo_window_s),
    )
    return result


def _fail(sim: BatchSimulation, node: str, uuid: str) -> None:
    sim.fail_gpu(node, uuid)


def _sample(sim: BatchSimulation, tenant_of: Mapping[str, tuple[str, int]], t: float, faults: list[Any]) -> JSON:
    in_use: dict[str, int] = {}
    pending = 0
    for key, st in sim.jobs.items():  # one pass over the jobs per sample
        if key not in tenant_of:
            continue
        if st.status == "running":
            tenant, gpus = tenant_of[key]
            in_use[tenant] = in_use.get(tenant, 0) + gpus
        elif st.status in ("pending", "admitted"):
            pending += 1
    down = sum(1 for found, repaired, _, _ in faults if found <= t < repaired)
    return {"t": t, "gpus_in_use": in_use, "gpus_down": down, "pending_jobs": pending}


def _stats(values: list[float]) -> JSON:
    return {"n": len(values), **distribution(values, (50, 90, 99))}


def _wait(r: JobRecord) -> float | None:
    """Creation to admission (Kueue), or to the first start without a queue; None: still waiting."""
    if r.admitted_at is not None:
        return r.admitted_at - r.created_at
    return None if r.started_at is None else r.started_at - r.created_at


def _gpu_seconds(r: JobRecord, gpus: int, horizon: float) -> float:
    if r.started_at is None:
        return 0.0
    end = r.finished_at if r.finished_at is not None else horizon
    return max(0.0, min(end, horizon) - r.started_at) * gpus


def _tenant_metrics(
    workload: WorkloadSpec, batch: list[JobRecord], tenant_of: Mapping[str, tuple[str, int]], horizon: float, total: int
) -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    quota_total = sum(t.nominalGPUs for t in workload.tenants) or 1
    used_total = sum(_gpu_seconds(r, tenant_of[r.name][1], horizon) for r in batch) or 1.0
    for t in workload.tenants:
        mine = [r for r in batch if tenant_of[r.name][0] == t.name]
        done = [r for r in mine if r.status == "succeeded"]
        used = sum(_gpu_seconds(r, tenant_of[r.name][1], horizon) for r in mine)
        waits = [w for r in mine if (w := _wait(r)) is not None]
        waits += [horizon - r.created_at for r in mine if _wait(r) is None]  # still waiting at the end
        out[t.name] = {
            "nominal_gpus": t.nominalGPUs,
            "priority": t.priority,
            "jobs_submitted": len(mine),
            "jobs_finished": len(done),
            "jobs_waiting_at_end": sum(1 for r in mine if _wait(r) is None),
            "restarts": sum(max(0, r.attempts - 1) for r in mine),
            "queue_wait_s": _stats(waits),
            "jct_s": _stats([r.completion_time for r in done if r.completion_time is not None]),
            "gpu_hours": used / 3600.0,
            "mean_gpus_in_use": used / horizon,
            # fair share: the tenant's share of the GPU time the batch jobs got, over its share of the quota
            "share_of_use": used / used_total,
            "share_of_quota": t.nominalGPUs / quota_total,
            "fair_share_ratio": (used / used_total) / (t.nominalGPUs / quota_total) if t.nominalGPUs else None,
        }
    return out


def _cluster_metrics(
    sim: BatchSimulation,
    batch: list[JobRecord],
    tenant_of: Mapping[str, tuple[str, int]],
    timeline: list[JSON],
    horizon: float,
    faults: list[Any],
    workload: WorkloadSpec,
) -> JSON:
    total = sim.cluster.gpu_count
    service_gpus = sum(s.replicas for s in workload.services)
    batch_gpu_s = sum(_gpu_seconds(r, tenant_of[r.name][1], horizon) for r in batch)
    down_gpu_s = sum(max(0.0, min(rep, horizon) - found) for found, rep, _, _ in faults if found < horizon)
    done = [r for r in batch if r.status == "succeeded"]
    return {
        "gpus": total,
        "service_gpus": service_gpus,
        "hours": horizon / 3600.0,
        "jobs": len(batch),
        "jobs_finished": len(done),
        "events": int(sim.engine.events_run),
        "utilization": (batch_gpu_s + service_gpus * horizon) / (total * horizon),
        "batch_utilization": batch_gpu_s / max(1.0, (total - service_gpus) * horizon),
        "gpu_failures": len(faults),
        "gpu_hours_down": down_gpu_s / 3600.0,
        "health_evictions": sim.evictions,
        "queue_wait_s": _stats([w for r in batch if (w := _wait(r)) is not None]),
        "jct_s": _stats([r.completion_time for r in done if r.completion_time is not None]),
        "peak_pending_jobs": max((s["pending_jobs"] for s in timeline), default=0),
    }


def service_slo(service: Service, seed: int, window_s: float) -> JSON:
    """The service's traffic for `window_s` simulated seconds on its replicas (online simulator)."""
    from flotilla.loadgen.datasets import load_dataset
    from flotilla.loadgen.profiles import Step
    from flotilla.sim.gateway_model import GatewaySpec
    from flotilla.sim.online import OnlineSimulation, ReplicaSpec
    from flotilla.sim.requests import from_step

    sim = OnlineSimulation(
        ReplicaSpec(service.gpu, service.model, count=service.replicas), GatewaySpec(profile=service.profile), seed=seed
    )
    samples = max(16, int(service.requestsPerSecond * window_s))
    spec = f"synthetic:prompt_tokens={service.promptTokens},output_tokens={service.outputTokens},samples={samples}"
    prompts = load_dataset(spec, seed=seed)
    step = Step(strategy="poisson", rate=service.requestsPerSecond, seed=seed)
    run = sim.run(from_step(step, prompts, max_seconds=window_s))
    ttfts = [o.ttft for o in run.outcomes if o.status == 200 and o.ttft is not None]
    met = sum(1 for x in ttfts if x <= service.slo.ttftSeconds)
    return {
        "replicas": service.replicas,
        "requests": len(run.outcomes),
        "served": len(ttfts),
        "slo_ttft_s": service.slo.ttftSeconds,
        "slo_attainment": met / len(run.outcomes) if run.outcomes else None,
        "ttft_s": _stats(ttfts),
        "window_s": window_s,
        "keeps_up": bool(run.summary().get("keeps_up")),
    }


def _assumptions(cluster: ClusterSpec, workload: WorkloadSpec, window: float) -> list[str]:
    return [
        "Batch jobs run on whole GPUs of one node (JOB_CPU=4 vCPU and 16 GiB per GPU); their run time is the "
        "lognormal draw, the same on every GPU model.",
        "Every tenant is a ClusterQueue in one cohort with nvidia.com/gpu nominal quota and unlimited cpu/memory; "
        + (
            "preemption reclaims lent GPUs within the cohort and lower priorities within a queue."
            if cluster.queueing.preemption
            else "no preemption."
        ),
        "A GPU fault is found within the health check's interval (uniform); until then its jobs run on and their "
        "work counts; then its pods are evicted and restart from the beginning elsewhere; it is back after "
        "repairHours.",
        f"Online services hold their replicas' GPUs for the whole run; their SLO is measured on {window:g} simulated "
        "seconds of Poisson traffic with synthetic prompts (the online simulator; no network time).",
        f"A Kueue preemption victim keeps its quota for {EVICTION_S:g} s (its pods' termination grace period) "
        "before it is requeued; the preemptor waits for it.",
        "The node scheduler scores at most 4 candidate nodes per pod (ClusterParams.nodes_to_score), "
        "kube-scheduler scores at least 100 in a cluster this size.",
    ]
