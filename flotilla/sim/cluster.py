"""The batch cluster simulator: Jobs through Kueue (or not), the node scheduler and the slicer, on simulated time.

    sim = BatchSimulation(inventories(config), WhisperRuntime(load_whisper_data()), queue_objects=docs, seed=1)
    for job in jobs:
        sim.submit(job)                       # SimJob: a batch/v1 Job, its creation time, its work
    result = sim.run()                        # BatchResult: per-job records, makespan, JCT, utilization

A Job with a `kueue.x-k8s.io/queue-name` label, when queue objects are given, becomes a Workload admitted by
`flotilla.sim.admission` (Kueue's queueing around the pure policy `flotilla.queue.cycle.schedule`, as live);
once admitted its pod is created (`job_to_pod_s` later). A Job without the label creates its pod at once. A
pod waits in kube-scheduler's queue (`flotilla.sim.kubesched`: activeQ, backoff, unschedulable pods, their
flushes) and is placed by the live runtime's node scheduler (`flotilla.runtime.scheduling`: the same filter
and score plugins) over the candidate nodes of `flotilla.sim.nodes`; its MIG slices are carved by the slicer's
placement policy (first-fit, as the Dynamic Accelerator Slicer) and released when it ends. It starts
`pod_startup_s` (+ `mig_slice_create_s` with slices) after binding and runs as the runtime model says
(`RunPlan`: idle setup, then busy). Kueue preemption evicts it: its pod is deleted, its devices freed, and
it starts over when admitted again.

Records (`JobRecord`, as `flotilla bench batch` writes them): created, admitted (first quota reservation),
started (first container start), finished, node, GPU, slice, slots; times in seconds from 0.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

from flotilla.queue.build import local_queue_snapshots, pod_set_infos, queue_snapshots, workload_priority
from flotilla.queue.cycle import schedule
from flotilla.queue.jobs import build_workload
from flotilla.queue.types import AdmissionRecord, PodSetInfo, WorkloadInfo
from flotilla.runs.records import JobRecord
from flotilla.runtime.scheduling import (
    Bound,
    NodeInfo,
    PodInfo,
    SchedulingContext,
    Unschedulable,
    default_registry,
    pod_info,
)
from flotilla.runtime.scheduling.types import WHOLE_GPU
from flotilla.sim.admission import AdmissionSimulation, Policy
from flotilla.sim.batch import (
    ClusterParams,
    RuntimeModel,
    SimJob,
    device_of,
    placement_view,
    pod_class,
    queue_api_objects,
)
from flotilla.sim.batchstats import BatchResult, summarize
from flotilla.sim.engine import Engine, EventHandle
from flotilla.sim.kubesched import QueuedPod, SchedulingQueue
from flotilla.sim.nodes import ClusterState
from flotilla.sim.perfdata import Device, RunPlan
from flotilla.slicer import load_catalog
from flotilla.slicer.inventory import NodeInventory
from flotilla.slicer.profiles import ProfileCatalog

JSON = dict[str, Any]
Status = Literal["pending", "admitted", "running", "succeeded", "failed"]


@dataclass
class _Job:
    sim: SimJob
    pod: PodInfo
    generation: int = 0
    managed: bool = False  # admitted by Kueue
    pod_now: PodInfo | None = None  # the pod that exists now (queued or bound)
    node: str = ""
    gpu: str = ""
    slice: str = ""
    placement: str = ""
    device: Device | None = None
    gpus_held: frozenset[str] = frozenset()  # UUIDs of every GPU the pod has a device on
    cluster_queue: str = ""
    admitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    status: Status = "pending"
    attempts: int = 0
    message: str = ""
    tried_version: int = -1
    run: tuple[float, RunPlan] | None = None  # (start, plan) of the run in progress
    finish_event: EventHandle | None = None
    segments: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    # (start, busy from, end, SM rate in GPU-equivalents, compute fraction held)


class BatchSimulation:
    """Jobs on a simulated cluster (see the module docstring)."""

    def __init__(
        self,
        inventories: Sequence[NodeInventory],
        runtime: RuntimeModel,
        *,
        queue_objects: Sequence[Mapping[str, Any]] = (),
        params: ClusterParams | None = None,
        seed: int = 0,
        catalog: ProfileCatalog | None = None,
        policy: Policy = schedule,
    ) -> None:
        self.params = params or ClusterParams()
        self.catalog = catalog or load_catalog()
        self.runtime = runtime
        self.cluster = ClusterState(inventories, self.catalog, dict(self.params.daemon_requests))
        self.queue = SchedulingQueue(self.params.scheduler)
        self.ctx = SchedulingContext.of(
            random.Random(f"kube-scheduler/{seed}"), self.catalog, self.params.scheduler_config, self.params.placement
        )
        self.framework = default_registry().bind(self.params.scheduler_config)
        self.jobs: dict[str, _Job] = {}
        self._objects = queue_api_objects(queue_objects)
        self.admission: AdmissionSimulation | None = None
        if queue_objects:
            queues = queue_snapshots(self._objects)
            adm = AdmissionSimulation(
                queues.cluster_queues,
                queues.cohorts,
                queues.flavors,
                local_queue_snapshots(self._objects),
                policy,
                config=self.params.queue_config,
                namespace_labels=queues.namespace_labels,
                seed=seed,
            )
            adm.external = True  # the cluster runs what Kueue admits
            adm.on_arrive, adm.on_admit, adm.on_evict = self._arrived, self._admitted, self._evicted
            adm.on_requeue = self._requeued
            adm.eviction_s = self.params.eviction_s
            self.admission = adm
            self.engine = adm.engine
        else:
            self.engine = Engine(seed)
        self._templates: dict[str, tuple[PodInfo, tuple[PodSetInfo, ...], int]] = {}
        self._failed_at: dict[tuple[object, ...], int] = {}  # pod class -> cluster version it failed at
        self._never: dict[tuple[object, ...], Unschedulable | None] = {}
        self._inflight = 0  # job events scheduled and not yet run: while 0, nothing can change
        self._wake_at: float | None = None
        self._admission_dirty = False
        self.attempts = 0
        self.evictions = 0  # pods evicted by GPU health

    # -- inputs ---------------------------------------------------------------------------------------
    def submit(self, job: SimJob) -> None:
        if job.key in self.jobs:
            raise ValueError(f"Job {job.key} submitted twice")
        pod, pod_sets, priority = self._template(job)
        state = self.jobs[job.key] = _Job(job, replace(pod, key=job.key, uid=job.key))
        self._inflight += 1
        if job.queue and self.admission is not None:
            state.managed = True
            wl = WorkloadInfo(
                namespace=job.namespace,
                name=job.name,
                local_queue=job.queue,
                priority=priority,
                created=job.created,
                pod_sets=pod_sets,
                uid=job.key,
            )
            self.admission.submit(job.created, wl, 0.0)
        else:
            self.engine.at(job.created + self.params.job_to_pod_s, lambda: self._create_pod(job.key, 0))

    def advance(self, until: float) -> None:
        """Run the events up to simulated time `until` (call again to go on; `run` summarizes)."""
        self.engine.run(until, on_quiescent=self._quiescent)

    def run(self, until: float | None = None) -> BatchResult:
        self.engine.run(until, on_quiescent=self._quiescent)
        return summarize(self.records(), self._segments(), self.cluster.gpu_count, self._counters())

    def _template(self, job: SimJob) -> tuple[PodInfo, tuple[PodSetInfo, ...], int]:
        """The pod's scheduler view and the Workload Kueue would create, once per distinct template."""
        spec = (job.job.get("spec") or {}).get("template") or {}
        labels = job.job["metadata"].get("labels") or {}
        text = json.dumps([placement_view(spec.get("spec") or {}), labels], sort_keys=True)
        if text not in self._templates:
            pod = pod_info({"metadata": {"name": job.name, "namespace": job.namespace}, "spec": spec.get("spec") or {}})
            workload = build_workload(
                {**job.job, "metadata": {**job.job["metadata"], "uid": job.key}},
                self._objects.priority_classes,
                self.params.queue_config,
            )
            priority = workload_priority(workload, self._objects.priority_classes)
            self._templates[text] = (pod, pod_set_infos(workload), priority)
        return self._templates[text]

    # -- Kueue --------------------------------------------------------------------------------------
    def _arrived(self, key: str) -> None:
        self._inflight -= 1
        self._admission_dirty = True

    def _admitted(self, key: str, admission: AdmissionRecord) -> None:
        st = self.jobs[key]
        if st.admitted_at is None:
            st.admitted_at = self.engine.now
        st.cluster_queue = admission.cluster_queue
        selector = dict(st.pod.node_selector)
        assert self.admission is not None
        for ps in admission.pod_sets:
            for flavor in ps.flavors.values():
                selector.update(self.admission.flavors[flavor].node_labels)
        st.pod_now = replace(st.pod, node_selector=selector)
        generation = st.generation
        self._inflight += 1
        self.engine.after(self.params.job_to_pod_s, lambda: self._create_pod(key, generation))

    def _evicted(self, key: str) -> None:
        """Kueue preempted the workload: its pod is deleted; it starts over when admitted again."""
        st = self.jobs[key]
        st.generation += 1
        self.queue.delete(key)
        if st.node:
            self._stop(st, preempted=True)
        st.status = "pending"

    # -- GPU health --------------------------------------------------------------------------------
    def fail_gpu(self, node: str, gpu_uuid: str) -> int:
        """A health check found the GPU bad (Autopilot's EVICT): it takes no new pods, and the pods with a
        device on it are evicted; their Jobs make replacement pods, which start over elsewhere, as the live
        runtime's health reaction does (Kueue's admission stands). Returns the pods evicted."""
        self.cluster.set_health(node, gpu_uuid, False)
        evicted = 0
        for st in self.jobs.values():
            if st.node != node or gpu_uuid not in st.gpus_held or st.status in ("succeeded", "failed"):
                continue
            evicted += 1
            st.generation += 1
            self.queue.delete(st.sim.key)
            self._stop(st, preempted=True)
            st.gpus_held = frozenset()
            st.status = "admitted" if st.managed else "pending"
            self._inflight += 1
            generation = st.generation
            self.engine.after(self.params.job_to_pod_s, partial(self._create_pod, st.sim.key, generation))
        self.evictions += evicted
        return evicted

    def repair_gpu(self, node: str, gpu_uuid: str) -> None:
        """The GPU is back in service (repaired or replaced): capacity again."""
        self.cluster.set_health(node, gpu_uuid, True)
        self.queue.move_all(self.engine.now)

    def _requeued(self) -> None:
        """A preemption victim's quota came free (its pods were stopped at the eviction's start)."""
        self._admission_dirty = True

    # -- pods ---------------------------------------------------------------------------------------
    def _create_pod(self, key: str, generation: int) -> None:
        self._inflight -= 1
        st = self.jobs[key]
        if st.generation != generation:
            return
        if st.pod_now is None:
            st.pod_now = st.pod
        st.attempts += 1
        self.queue.add(key, 0, self.engine.now)  # pods of these Jobs have no PriorityClass

    def _quiescent(self) -> None:
        if self.admission is not None and self._admission_dirty:  # only arrivals and departures change admission
            self._admission_dirty = False
            self.admission.run_cycles()
        while (queued := self.queue.pop()) is not None:
            self._attempt(queued)
        self._arm_wakeup()

    def _attempt(self, queued: QueuedPod) -> None:
        self.attempts += 1
        st = self.jobs[queued.key]
        pod = st.pod_now or st.pod
        cls = pod_class(pod)
        version = self.cluster.version
        st.tried_version = version
        if self._failed_at.get(cls) == version:  # the same pod failed on the same cluster state
            self.queue.failed(queued, self.engine.now)
            return
        candidates = self.cluster.candidates(pod, self.params.nodes_to_score)
        if candidates:
            result = self.framework.schedule(self.ctx, pod, [n.node_info() for n in candidates])
        else:
            total = len(self.cluster.nodes)
            room = Unschedulable(f"0/{total} nodes are available: no node has room for the pod now.", {}, True)
            result = self._never_fits(pod, cls) or room
        if isinstance(result, Bound):
            self.queue.delete(queued.key)
            self._bind(st, pod, result)
        elif not result.retryable:
            self.queue.delete(queued.key)
            self._end(st, "failed", result.message)
        else:
            self._failed_at[cls] = version
            self.queue.failed(queued, self.engine.now)

    def _never_fits(self, pod: PodInfo, cls: tuple[object, ...]) -> Unschedulable | None:
        """The node scheduler's answer on empty copies of each kind of node when no node could hold the
        pod even then (None when one could)."""
        if cls not in self._never:
            kinds: dict[tuple[object, ...], NodeInfo] = {}
            for n in self.cluster.nodes:
                info = n.node_info()
                empty = replace(
                    info,
                    requested=dict(self.params.daemon_requests),
                    pods=0,
                    gpus=tuple(replace(g, allocations=()) for g in info.gpus),
                )
                kinds.setdefault((tuple(g.model for g in info.gpus), tuple(sorted(info.allocatable.items()))), empty)
            result = self.framework.schedule(self.ctx, pod, list(kinds.values()))
            self._never[cls] = result if isinstance(result, Unschedulable) and not result.retryable else None
        return self._never[cls]

    def _bind(self, st: _Job, pod: PodInfo, bound: Bound) -> None:
        self.cluster.bind(pod, bound)
        st.node = bound.node
        st.device = None
        st.gpus_held = frozenset(d.gpu_uuid for d in bound.devices)
        if bound.devices:
            d = bound.devices[0]
            st.gpu, st.slice = d.gpu_uuid, "gpu" if d.profile == WHOLE_GPU else f"mig-{d.profile}"
            st.placement = f"{d.start}-{d.start + d.size - 1}"
            st.device = device_of(self.runtime, self.cluster.gpu_model(bound.node, d.gpu_uuid), d.profile, self.catalog)
        delay = self.params.pod_startup_s
        if any(d.profile != WHOLE_GPU for d in bound.devices):
            delay += self.params.mig_slice_create_s
        generation = st.generation
        self._inflight += 1
        self.engine.after(delay, lambda: self._start(st.sim.key, generation))

    def _start(self, key: str, generation: int) -> None:
        self._inflight -= 1
        st = self.jobs[key]
        if st.generation != generation:
            return
        plan = self.runtime.plan(st.sim, st.device)
        if isinstance(plan, str):
            self._end(st, "failed", plan)
            return
        now = self.engine.now
        st.started_at = now if st.started_at is None else st.started_at
        st.status = "running"
        st.run = (now, plan)
        self._inflight += 1
        st.finish_event = self.engine.after(plan.duration, lambda: self._finished(key, generation))

    def _finished(self, key: str, generation: int) -> None:
        self._inflight -= 1
        st = self.jobs[key]
        if st.generation == generation:
            self._end(st, "succeeded", "")

    def _end(self, st: _Job, status: Status, message: str) -> None:
        if st.node:
            self._stop(st, preempted=False)
        st.status, st.message, st.finished_at = status, message, self.engine.now
        st.generation += 1
        if st.managed and self.admission is not None:
            self.admission.finish(st.sim.key)
            self._admission_dirty = True

    def _stop(self, st: _Job, preempted: bool) -> None:
        """The pod ends (finished, failed or preempted): its devices and requests are freed."""
        now = self.engine.now
        if st.run is not None:
            start, plan = st.run
            busy_from = min(now, start + plan.setup_s)
            rate = plan.sm_seconds / plan.busy_s if plan.busy_s > 0 else 0.0
            held = st.device.compute_fraction if st.device is not None else 0.0
            st.segments.append((start, busy_from, now, rate, held))
            st.run = None
        if st.finish_event is not None:
            if preempted:
                st.finish_event.cancel()
                self._inflight -= 1
            st.finish_event = None
        pod = st.pod_now or st.pod
        self.cluster.release(pod, st.node)
        if preempted:
            st.node = ""
        self.queue.move_all(now)  # an assigned pod went away: room for the unschedulable pods

    def _arm_wakeup(self) -> None:
        when = self.queue.next_wakeup()
        if when is None:
            return
        if self._inflight == 0 and all(
            self.jobs[k].tried_version == self.cluster.version for k in self.queue.pods
        ):  # nothing will ever change: the pods left can never be placed
            return
        when = max(when, self.engine.now)
        if self._wake_at is None or when < self._wake_at - 1e-9:
            self._wake_at = when
            self.engine.at(when, self._wake)

    def _wake(self) -> None:
        if self._wake_at is not None and self.engine.now >= self._wake_at - 1e-9:
            self._wake_at = None
        self.queue.flush(self.engine.now)

    # -- results ------------------------------------------------------------------------------------
    def records(self) -> list[JobRecord]:
        """One JobRecord per Job, in submission order (times in simulated seconds)."""
        out = []
        for st in self.jobs.values():
            out.append(
                JobRecord(
                    name=st.sim.key,
                    queue=st.sim.queue,
                    cluster_queue=st.cluster_queue,
                    item=st.sim.item,
                    created_at=st.sim.created,
                    admitted_at=st.admitted_at,
                    started_at=st.started_at,
                    finished_at=st.finished_at,
                    status=st.status,
                    attempts=max(st.attempts, 1),
                    node=st.node,
                    gpu=st.gpu,
                    slice=st.slice,
                    placement=st.placement,
                    message=st.message,
                )
            )
        return out

    def _segments(self) -> list[tuple[float, float, float, float, float]]:
        return [s for st in self.jobs.values() for s in st.segments]

    def _counters(self) -> dict[str, float]:
        preemptions = 0
        if self.admission is not None:
            preemptions = sum(r.evictions for r in self.admission.records.values())
        return {
            "events": float(self.engine.events_run),
            "scheduling_attempts": float(self.attempts),
            "preemptions": float(preemptions),
            "admission_cycles": float(self.admission.cycles if self.admission is not None else 0),
            "health_evictions": float(self.evictions),
        }
