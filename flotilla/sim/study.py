"""The study's batch scenario for the simulator: its node, its Jobs, its queues (shared/reference/icpe26/).

kube-burner creates `iterations` x {whisper-medium, whisper-large} Jobs, one object a second (qps 1,
burst 1: medium-0 at 0 s, large-0 at 1 s, medium-1 at 2 s, ...). Medium Job i transcribes Earnings-22
file i, large Job i file 50 + i (the manifests' BASE_INDEX); a file's length is drawn from the data file's
audio distribution with a generator seeded by (seed, file), so every arm of an experiment gets the same
recordings. Jobs and queue objects are plain API objects (batch/v1, Kueue v1beta2): the simulator reads
them, and `--live` applies the same objects to an embedded control plane.

Variants (`Resources`):
- Kueue study: each Job asks `nvidia.com/gpu: 1` (limits only, no cpu or memory requests).
- DAS study: medium asks `nvidia.com/mig-1g.5gb` with 2 CPU and 8Gi, large `nvidia.com/mig-3g.20gb` with
  4 CPU and 12Gi; the whole-GPU baseline the same requests with `nvidia.com/gpu: 1`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flotilla.api.quantity import Quantity
from flotilla.runtime.scheduling import canonical_amount
from flotilla.sim.batch import ClusterParams, SimJob, inventories
from flotilla.sim.perfdata import WHOLE_GPU, WhisperData
from flotilla.slicer import load_catalog
from flotilla.slicer.inventory import EmulatedGPUConfig, EmulatedNodeGroup, NodeInventory, mig_capacity

JSON = dict[str, Any]
Size = Literal["medium", "large"]
SIZES: tuple[Size, ...] = ("medium", "large")
NAMESPACE = "whisper-scale"
KUEUE = "kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
LOCAL_QUEUES: dict[Size, str] = {"medium": "local-queue-medium", "large": "local-queue-large"}
MODELS: dict[Size, str] = {"medium": "medium", "large": "large"}  # the manifests' `--model`
LARGE_BASE_INDEX = 50  # the large manifests' BASE_INDEX
HIGH_PRIORITY = "high-priority"
FLAVOR = "gpu-flavor"


@dataclass(frozen=True)
class Resources:
    """What each size's container asks: the device resource, and cpu/memory requests (None: none)."""

    device: Mapping[Size, str]
    cpu: Mapping[Size, str] | None = None
    memory: Mapping[Size, str] | None = None


KUEUE_GPUS = Resources({"medium": "nvidia.com/gpu", "large": "nvidia.com/gpu"})
DAS_WHOLE = Resources(
    {"medium": "nvidia.com/gpu", "large": "nvidia.com/gpu"},
    {"medium": "2", "large": "4"},
    {"medium": "8Gi", "large": "12Gi"},
)
DAS_MIG = Resources(
    {"medium": "nvidia.com/mig-1g.5gb", "large": "nvidia.com/mig-3g.20gb"},
    {"medium": "2", "large": "4"},
    {"medium": "8Gi", "large": "12Gi"},
)


def job_object(
    size: Size,
    iteration: int,
    resources: Resources,
    *,
    queue: bool,
    priority_class: str | None = None,
    namespace: str = NAMESPACE,
    prefix: str = "whisper-transcription",
    labels: Mapping[str, str] | None = None,
    command: list[str] | None = None,
) -> JSON:
    """One Job as the study's templates render it (the transcription command is the manifests' unless
    `command` replaces it, e.g. by a `sleep` for a live run)."""
    meta_labels = {"group": f"whisper-{size}", **(labels or {})}
    if queue:
        meta_labels[QUEUE_LABEL] = LOCAL_QUEUES[size]
    if priority_class:
        meta_labels[PRIORITY_LABEL] = priority_class
    requests: JSON = {}
    limits: JSON = {resources.device[size]: 1}
    if resources.cpu is not None:
        requests["cpu"] = resources.cpu[size]
    if resources.memory is not None:
        requests["memory"] = limits["memory"] = resources.memory[size]
    container: JSON = {
        "name": "whisper-transcriber",
        "image": "quay.io/smalleni/whisper:latest",
        "command": command or ["/bin/sh", "-c"],
        "args": [] if command else [f'whisper "$FILE" --model {MODELS[size]} --output_dir /tmp'],
        "env": [{"name": "ITERATION", "value": str(iteration)}],
        "resources": {"limits": limits, **({"requests": requests} if requests else {})},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{prefix}-{size}-{iteration}", "namespace": namespace, "labels": meta_labels},
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "completionMode": "Indexed",
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": dict(labels or {})},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def audio_seconds(data: WhisperData, seed: int, file: int) -> float:
    """Earnings-22 file `file`'s length in this seed's draw (the same in every arm)."""
    return data.audio.sample(random.Random(f"{seed}/{data.audio.dataset}/{file}"))


def study_jobs(
    data: WhisperData,
    seed: int,
    iterations: int,
    resources: Resources,
    *,
    queue: bool,
    priorities: bool = False,
    interval_s: float = 1.0,
) -> list[SimJob]:
    """iterations x {medium, large}, created one per `interval_s` (kube-burner's qps), with their audio.
    `priorities`: large Jobs in WorkloadPriorityClass high-priority."""
    jobs: list[SimJob] = []
    for i in range(iterations):
        for size in SIZES:
            file = i if size == "medium" else LARGE_BASE_INDEX + i
            obj = job_object(
                size,
                i,
                resources,
                queue=queue,
                priority_class=HIGH_PRIORITY if priorities and size == "large" else None,
            )
            jobs.append(
                SimJob(
                    obj,
                    len(jobs) * interval_s,
                    model=MODELS[size],
                    work_s=audio_seconds(data, seed, file),
                    item=f"{data.audio.dataset}-{file}",
                )
            )
    return jobs


# -- the node -------------------------------------------------------------------------------------
def study_nodes(data: WhisperData, nodes: int = 1, gpus: int | None = None) -> list[NodeInventory]:
    """The study's p4d.24xlarge (8 x A100-40GB, allocatable cpu and memory), `nodes` of them; `gpus` per
    node to scale it down."""
    return inventories(node_group(data, nodes, gpus))


def node_group(data: WhisperData, nodes: int = 1, gpus: int | None = None) -> EmulatedGPUConfig:
    """The study's p4d.24xlarge as an emulated-GPU config (`flotilla up --gpus`'s model): `nodes` of them,
    `gpus` GPUs each to scale it down, with the p4d's allocatable cpu and memory."""
    node = data.study_node
    group = EmulatedNodeGroup(
        nodes=nodes,
        gpusPerNode=gpus or node.gpus,
        model=node.gpu_model,
        namePrefix="p4d",
        cpu=node.allocatable_cpu,
        memory=node.allocatable_memory,
    )
    return EmulatedGPUConfig(groups=[group])


def live_gpus(data: WhisperData, gpus: int) -> EmulatedGPUConfig:
    """The emulated node of a `--live` run: 1 scaled-down p4d (so the Jobs' cpu and memory fit too)."""
    return node_group(data, 1, gpus)


def study_params(data: WhisperData) -> ClusterParams:
    """The platform's latencies and the node daemons' requests from the data file; kube-scheduler's
    queue timings; first-fit MIG placement (DAS)."""
    lat, node = data.latencies, data.study_node
    return ClusterParams(
        scheduler=data.kube_scheduler,
        pod_startup_s=lat.pod_startup_s,
        mig_slice_create_s=lat.mig_slice_create_s,
        job_to_pod_s=lat.job_to_pod_s,
        daemon_requests={
            "cpu": canonical_amount("cpu", node.daemon_cpu),
            "memory": canonical_amount("memory", node.daemon_memory),
        },
    )


# -- the queues -------------------------------------------------------------------------------------
def _flavor() -> JSON:
    return {
        "apiVersion": KUEUE,
        "kind": "ResourceFlavor",
        "metadata": {"name": FLAVOR},
        "spec": {"nodeLabels": {"nvidia.com/gpu.present": "true"}},
    }


def _cluster_queue(
    name: str, quotas: Mapping[str, JSON], *, cohort: str | None = None, preemption: JSON | None = None
) -> JSON:
    spec: JSON = {
        "namespaceSelector": {},
        "queueingStrategy": "BestEffortFIFO",
        "resourceGroups": [
            {
                "coveredResources": list(quotas),
                "flavors": [{"name": FLAVOR, "resources": [{"name": r, **q} for r, q in quotas.items()]}],
            }
        ],
    }
    if cohort:
        spec["cohortName"] = cohort
    if preemption:
        spec["preemption"] = preemption
    return {"apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec}


def _local_queue(size: Size, cluster_queue: str, namespace: str) -> JSON:
    return {
        "apiVersion": KUEUE,
        "kind": "LocalQueue",
        "metadata": {"name": LOCAL_QUEUES[size], "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue},
    }


def _namespace(namespace: str) -> JSON:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}


def single_queue(gpus: int, namespace: str = NAMESPACE) -> list[JSON]:
    """The study's Kueue setup: one ClusterQueue `cluster-queue` (BestEffortFIFO, nvidia.com/gpu
    nominalQuota = `gpus`), LocalQueues local-queue-medium and local-queue-large."""
    cq = _cluster_queue("cluster-queue", {"nvidia.com/gpu": {"nominalQuota": gpus}})
    return [_namespace(namespace), _flavor(), cq, *(_local_queue(s, "cluster-queue", namespace) for s in SIZES)]


def cohort_queues(gpus: int, medium_quota: int, namespace: str = NAMESPACE) -> list[JSON]:
    """The study's later variant: the study's `cluster-queue` (nvidia.com/gpu nominalQuota = `gpus`) now
    serves the large Jobs (WorkloadPriorityClass high-priority, 10000) and preempts lower priorities
    (withinClusterQueue and reclaimWithinCohort, and while borrowing); a new `cluster-queue-medium`
    (nominalQuota `medium_quota`, borrowingLimit 0, lendingLimit `medium_quota`) serves the medium Jobs; both
    in cohort `whisper`. Quota (gpus + medium_quota) exceeds the GPUs: admitted pods can wait for a GPU in
    kube-scheduler."""
    large = _cluster_queue(
        "cluster-queue",
        {"nvidia.com/gpu": {"nominalQuota": gpus}},
        cohort="whisper",
        preemption={
            "withinClusterQueue": "LowerPriority",
            "reclaimWithinCohort": "Any",
            "borrowWithinCohort": {"policy": "LowerPriority"},
        },
    )
    medium = _cluster_queue(
        "cluster-queue-medium",
        {"nvidia.com/gpu": {"nominalQuota": medium_quota, "borrowingLimit": 0, "lendingLimit": medium_quota}},
        cohort="whisper",
    )
    priority = {
        "apiVersion": KUEUE,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": HIGH_PRIORITY},
        "value": 10000,
        "description": "the large transcription Jobs",
    }
    return [
        _namespace(namespace),
        _flavor(),
        priority,
        large,
        medium,
        _local_queue("medium", "cluster-queue-medium", namespace),
        _local_queue("large", "cluster-queue", namespace),
    ]


def das_queue(
    nodes: list[NodeInventory], resources: Resources, cpu: str, memory: str, namespace: str = NAMESPACE
) -> list[JSON]:
    """One ClusterQueue for the DAS study (Kueue in both arms): cpu and memory (`cpu`, `memory`) and the
    devices the Jobs ask for, each with the most the nodes can hold (whole GPUs: their count; a MIG
    profile: the sum of its max instances per GPU, as the device plugin advertises it)."""
    catalog = load_catalog()
    capacity: dict[str, int] = {"nvidia.com/gpu": sum(len(n.gpus) for n in nodes)}
    for n in nodes:
        for r, count in mig_capacity(n.gpus, catalog).items():
            capacity[r] = capacity.get(r, 0) + count
    quotas: dict[str, JSON] = {"cpu": {"nominalQuota": cpu}, "memory": {"nominalQuota": memory}}
    for r in dict.fromkeys(resources.device.values()):
        quotas[r] = {"nominalQuota": capacity[r]}
    cq = _cluster_queue("cluster-queue", quotas)
    return [_namespace(namespace), _flavor(), cq, *(_local_queue(s, "cluster-queue", namespace) for s in SIZES)]


def cpu_cores(quantity: str) -> float:
    return float(Quantity.parse(quantity).value)


def as_sleeps(data: WhisperData, jobs: list[SimJob], time_scale: float, gap_s: float = 0.1) -> list[SimJob]:
    """The jobs for a `--live` run: each sleeps its simulated run time on the device its limits ask for
    (a whole GPU or a MIG slice of the study's GPU model) divided by `time_scale`, created `gap_s` apart."""
    catalog = load_catalog()
    gpu = data.study_node.gpu_model
    out = []
    for i, job in enumerate(jobs):
        limits = job.job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        resource = next(r for r in limits if r.startswith("nvidia.com/"))
        profile = WHOLE_GPU if resource == "nvidia.com/gpu" else resource.removeprefix("nvidia.com/mig-")
        plan = data.run_plan(job.model, job.work_s, data.device(catalog, gpu, profile))
        assert not isinstance(plan, str), plan
        out.append(SimJob(job.job, i * gap_s, model=job.model, work_s=plan.duration / time_scale, item=job.item))
    return out
