"""The batch simulator's inputs: Jobs, runtime models, and the platform's parameters.

A `SimJob` is a batch/v1 Job (as `kubectl apply` would take it), when it is created, and its work for the
runtime model: `WhisperRuntime` (a Whisper model and seconds of audio; flotilla/sim/data/whisper.yaml) or
`FixedRuntime` (a `sleep`). `ClusterParams` say how the platform behaves; `inventories` builds the nodes
from an emulated-GPU config (`flotilla up --gpus`'s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flotilla.queue.build import ApiObjects
from flotilla.queue.types import QueueConfig
from flotilla.runtime.scheduling import PodInfo, SchedulerConfig
from flotilla.runtime.scheduling.types import WHOLE_GPU
from flotilla.sim.perfdata import Device, KubeSchedulerParams, RunPlan, WhisperData
from flotilla.slicer import PlacementConfig, load_catalog
from flotilla.slicer.inventory import EmulatedGPUConfig, NodeInventory, emulated_inventory
from flotilla.slicer.profiles import ProfileCatalog

JSON = dict[str, Any]
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


@dataclass(frozen=True)
class SimJob:
    """One Job to simulate: the batch/v1 Job (metadata, spec.template), when it is created, and its work
    for the runtime model (`model` and `work_s`: a Whisper model and seconds of audio, or a sleep's length)."""

    job: Mapping[str, Any]
    created: float
    model: str = ""
    work_s: float = 0.0
    item: str = ""

    @property
    def name(self) -> str:
        return str(self.job["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.job["metadata"].get("namespace") or "default")

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def queue(self) -> str:
        return str((self.job["metadata"].get("labels") or {}).get(QUEUE_LABEL) or "")


class RuntimeModel(Protocol):
    def plan(self, job: SimJob, device: Device | None) -> RunPlan | str:
        """How the job runs on `device` (None: no GPU), or why it cannot."""
        ...


@dataclass(frozen=True)
class FixedRuntime:
    """`work_s` seconds wherever the job runs (a `sleep` job)."""

    def plan(self, job: SimJob, device: Device | None) -> RunPlan | str:
        return RunPlan(0.0, job.work_s)


@dataclass(frozen=True)
class WhisperRuntime:
    """Transcribing `work_s` seconds of audio with Whisper `model` (flotilla/sim/data/whisper.yaml)."""

    data: WhisperData
    catalog: ProfileCatalog = field(default_factory=load_catalog)

    def plan(self, job: SimJob, device: Device | None) -> RunPlan | str:
        if device is None:
            return f"whisper {job.model} was given no GPU"
        return self.data.run_plan(job.model, job.work_s, device)


@dataclass(frozen=True)
class ClusterParams:
    """How the platform behaves: kube-scheduler's queue timings and plugins, the slicer's placement policy,
    latencies, and how many candidate nodes the node scheduler scores per pod."""

    scheduler: KubeSchedulerParams = field(default_factory=KubeSchedulerParams)
    scheduler_config: SchedulerConfig = field(default_factory=SchedulerConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)  # first-fit, as DAS
    queue_config: QueueConfig = field(default_factory=QueueConfig)
    pod_startup_s: float = 0.0
    mig_slice_create_s: float = 0.0
    job_to_pod_s: float = 0.0
    # how long a Kueue preemption victim keeps its quota: the Job is suspended and its pods terminate before
    # Kueue releases the quota and requeues the Workload (kubelet's default grace period is 30 s; 0: at once)
    eviction_s: float = 0.0
    # candidate nodes scored per pod (kube-scheduler scores at least 100 in a big cluster; each costs the node
    # scheduler ~50 us here); None: kube-scheduler's adaptive percentageOfNodesToScore
    nodes_to_score: int | None = 4
    daemon_requests: Mapping[str, int] = field(default_factory=dict)  # per node, canonical units


def device_of(runtime: RuntimeModel, gpu_model: str, profile: str, catalog: ProfileCatalog) -> Device:
    """The device a job got: compute fraction and memory from the speed data (Whisper) or the profile table."""
    if isinstance(runtime, WhisperRuntime):
        return runtime.data.device(catalog, gpu_model, profile)
    model = catalog.model(gpu_model)
    if profile == WHOLE_GPU:
        return Device(gpu_model, profile, 1.0, model.memory_mib)
    p = model.profile(profile)
    return Device(gpu_model, profile, p.compute_slices / model.compute_slices, p.memory_mib)


def inventories(config: EmulatedGPUConfig, cpu: str = "96", memory: str = "1152Gi") -> list[NodeInventory]:
    """The emulated nodes of `config` (as `flotilla up --gpus` registers them); groups without cpu or
    memory get `cpu` and `memory`."""
    return emulated_inventory(config, load_catalog(), "simulated", cpu, memory)


_KINDS = {
    "ClusterQueue": "cluster_queues",
    "Cohort": "cohorts",
    "ResourceFlavor": "flavors",
    "LocalQueue": "local_queues",
    "WorkloadPriorityClass": "priority_classes",
    "Namespace": "namespaces",
}


def queue_api_objects(docs: Sequence[Mapping[str, Any]]) -> ApiObjects:
    """Kueue's objects (and Namespaces) keyed as the admission policy's snapshot builder reads them."""
    lists: dict[str, list[JSON]] = {v: [] for v in _KINDS.values()}
    for doc in docs:
        kind = str(doc.get("kind"))
        if kind not in _KINDS:
            raise ValueError(f"queue objects: {kind!r} is not one of {', '.join(_KINDS)}")
        lists[_KINDS[kind]].append(dict(doc))
    return ApiObjects.from_lists(**lists)


_NOT_PLACEMENT = frozenset(
    {"name", "image", "command", "args", "env", "envFrom", "volumeMounts", "ports", "workingDir"}
)


def placement_view(pod_spec: Mapping[str, Any]) -> JSON:
    """The parts of a pod spec that admission and placement read (containers without names, images,
    commands, env or mounts), so Jobs that differ only in those share their PodInfo and Workload."""
    view = {k: v for k, v in pod_spec.items() if k not in ("containers", "initContainers", "volumes")}
    for group in ("containers", "initContainers"):
        view[group] = [{k: v for k, v in c.items() if k not in _NOT_PLACEMENT} for c in pod_spec.get(group) or []]
    return view


def pod_class(pod: PodInfo) -> tuple[object, ...]:
    """What a placement depends on (everything but the pod's name)."""
    return (
        tuple(sorted(pod.requests.items())),
        pod.gpus,
        pod.mig,
        tuple(sorted(pod.node_selector.items())),
        pod.required_affinity,
        pod.tolerations,
        pod.node_name,
    )
