"""The runtime controller: Jobs become pods, pods get nodes and devices, pods run as processes.

One loop plays the parts a Kubernetes cluster spreads over several components, each a pure
function or a small class of its own:
- node registration: the GPU backend's inventory as Node objects (nodes.py);
- the Job controller (jobs.py), the Deployment controller (deployments.py) and the garbage
  collector (pods of deleted Jobs and Deployments, claims of deleted pods);
- the pod scheduler with the Dynamic Accelerator Slicer's claims (binder.py over the pure
  policy in scheduling/ and the slicer's placement plugins);
- the kubelet (kubelet.py): start, watch, restart and stop processes; release devices;
- health reactions: pods on a GPU whose health turns EVICT or ERR are stopped and their
  Workloads evicted, so the queue requeues them (health.py).

A pass runs when the store changes (the informer, as the queue controller does), when a
deadline comes (Job backoff, TTL, restart back-off) and every `pollSeconds` while processes run.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.api.errors import ManifestErrors
from flotilla.runtime.binder import Binder
from flotilla.runtime.config import RuntimeConfig
from flotilla.runtime.deployments import DeploymentContext, reconcile_deployment
from flotilla.runtime.devices import claim_pod_uid
from flotilla.runtime.health import HealthReactor
from flotilla.runtime.jobs import JobContext, reconcile_job
from flotilla.runtime.kubelet import Kubelet
from flotilla.runtime.nodes import register_nodes
from flotilla.runtime.podsync import PodSync
from flotilla.runtime.process import ProcessRuntime
from flotilla.slicer.backends import GPUBackend
from flotilla.store import AlreadyExists, Conflict, NotFound
from flotilla.store.informer import Informer, object_key
from flotilla.store.service import ResourceService, resource_type

JSON = dict[str, Any]
log = logging.getLogger("flotilla.runtime")
KINDS = {
    "Node": "nodes",
    "Pod": "pods",
    "Job": "jobs",
    "Deployment": "deployments",
    "AllocationClaim": "allocationclaims",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Workload": "workloads",
}
FINALIZER = "flotilla.dev/runtime"


@dataclass
class RuntimeReport:
    writes: int = 0
    conflicts: int = 0
    created_pods: int = 0
    bound: int = 0
    started: int = 0
    next_wakeup: float | None = None


class RuntimeController:
    def __init__(
        self,
        service: ResourceService,
        backend: GPUBackend,
        root: Path,
        config: RuntimeConfig | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        processes: ProcessRuntime | None = None,
    ) -> None:
        self.config = config or RuntimeConfig()
        self.backend = backend
        self.root = root
        self._service = service
        self._store = service.store
        self._clock = clock
        self._rng = rng or random.Random()
        self._types = {k: resource_type(service.registry.resolve(plural)) for k, plural in KINDS.items()}
        self._informer = Informer(self._store, self._types, self._on_change)
        self.objects = self._informer.objects
        self._wake = threading.Event()
        self.kubelet = Kubelet(
            processes or ProcessRuntime(root), root, clock, self._wake.set, self.config.restartBackoffSeconds
        )
        self._dirty: dict[str, set[str]] = {"Job": set(), "Deployment": set()}  # owners to reconcile
        self._dirty_pods: set[str] = set()
        self._capacity_changed = True
        self._owners_deleted = True  # the first pass collects what a previous run left
        self._pods_by_owner: dict[tuple[str, str], set[str]] = {}
        self._claims_by_pod: dict[
            str, set[str]
        ] = {}  # pod uid -> AllocationClaim keys  # (namespace, owner uid) -> pod keys
        self._timers: dict[str, float] = {}  # "Job:key" / "Pod:key" -> when to look again
        self._registered = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._report = RuntimeReport()
        self.on_faults: Callable[[], None] | None = None  # called when injected faults change (health monitor)
        self.binder = Binder(self)
        self.pods = PodSync(self)
        self.health = HealthReactor(self)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> RuntimeController:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="flotilla-runtime", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop the loop. Running processes keep running (as containers outlive a kubelet
        restart); `shutdown()` stops them too."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop the loop and every process this controller started."""
        self.stop()
        self.kubelet.close(grace)
        self.backend.close()

    # -- the cache ---------------------------------------------------------------------------------
    def _on_change(self, kind: str, key: str, old: JSON | None, new: JSON | None) -> None:
        obj = new or old
        assert obj is not None
        if kind in ("Job", "Deployment"):
            self._dirty[kind].add(key)
            self._owners_deleted |= new is None
        elif kind == "Pod":
            self._dirty_pods.add(key)
            ref = _owner(obj)
            if ref is not None:
                owner = (obj["metadata"]["namespace"], ref[2])
                if new is None:
                    self._pods_by_owner.get(owner, set()).discard(key)
                else:
                    self._pods_by_owner.setdefault(owner, set()).add(key)
                self._dirty[ref[0]].add(f"{obj['metadata']['namespace']}/{ref[1]}")
            if new is None or _finished(new) or (new or {}).get("metadata", {}).get("deletionTimestamp"):
                self._capacity_changed = True
        elif kind in ("Node", "AllocationClaim"):
            self._capacity_changed = True
            if kind == "AllocationClaim":
                for claim, sign in ((old, -1), (new, +1)):
                    if claim is not None:
                        self._index_claim(key, claim, sign)
            if kind == "Node":
                self.health.node_changed(key, old, new)
                if self.on_faults is not None and _faults(old) != _faults(new):
                    self.on_faults()
        elif kind in ("ConfigMap", "Secret"):
            ns = obj["metadata"].get("namespace")
            self._dirty_pods.update(k for k in self.objects["Pod"] if k.startswith(f"{ns}/"))

    def _index_claim(self, key: str, claim: JSON, sign: int) -> None:
        uid = claim_pod_uid(claim)
        if sign > 0:
            self._claims_by_pod.setdefault(uid, set()).add(key)
        elif uid in self._claims_by_pod:
            self._claims_by_pod[uid].discard(key)
            if not self._claims_by_pod[uid]:
                del self._claims_by_pod[uid]

    def claims_of(self, pod: JSON) -> list[JSON]:
        """The AllocationClaims of a pod (by its uid), in name order."""
        keys = self._claims_by_pod.get(str(pod["metadata"].get("uid")), set())
        return [self.objects["AllocationClaim"][k] for k in sorted(keys) if k in self.objects["AllocationClaim"]]

    def gpu_busy(self, node: str, gpu_uuid: str) -> float:
        """The share of a GPU's 8 slots that live claims hold (for emulated utilisation readings)."""
        slots = 0
        for claim in list(self.objects["AllocationClaim"].values()):
            spec = claim.get("spec") or {}
            if spec.get("gpuUUID") == gpu_uuid and (claim.get("status") or {}).get("state") != "deleted":
                slots += int((spec.get("migPlacement") or {}).get("size") or 0)
        return min(slots / 8, 1.0)

    def pods_of(self, owner: JSON) -> list[JSON]:
        """The pods a Job or Deployment owns."""
        keys = self._pods_by_owner.get((owner["metadata"]["namespace"], str(owner["metadata"].get("uid"))), set())
        return [self.objects["Pod"][k] for k in sorted(keys) if k in self.objects["Pod"]]

    # -- one pass ----------------------------------------------------------------------------------
    def run_once(self) -> RuntimeReport:
        with self._lock:
            now = self._clock()
            self._report = report = RuntimeReport()
            if self._informer.sync():
                self._pods_by_owner = {}
                for key, pod in self.objects["Pod"].items():
                    ref = _owner(pod)
                    if ref is not None:
                        self._pods_by_owner.setdefault((pod["metadata"]["namespace"], ref[2]), set()).add(key)
                self._claims_by_pod = {}
                for key, claim in self.objects["AllocationClaim"].items():
                    self._index_claim(key, claim, +1)
                self._owners_deleted = True
                self._dirty["Job"].update(self.objects["Job"])
                self._dirty["Deployment"].update(self.objects["Deployment"])
                self._dirty_pods.update(self.objects["Pod"])
                self._capacity_changed = True
            if not self._registered:
                register_nodes(self)
                self.binder.recover_claims()
                self._registered = True
            due = [k for k, at in self._timers.items() if at <= now]
            for k in due:
                del self._timers[k]
                kind, _, key = k.partition(":")
                self._dirty.get(kind, self._dirty_pods).add(key)
            self._collect_garbage()
            self._reconcile_jobs(now)
            self._reconcile_deployments(now)
            self.binder.schedule_pending(now)
            self.pods.sync(now)
            self.health.react(now)
            wakes = list(self._timers.values())
            if self.pods.has_running():
                wakes.append(now + self.config.pollSeconds)
            report.next_wakeup = min(wakes, default=None)
            return report

    def _reconcile_jobs(self, now: float) -> None:
        dirty, self._dirty["Job"] = self._dirty["Job"], set()
        ctx = JobContext(now, self._rng, self.config.jobBackoffSeconds)
        for key in sorted(dirty):
            job = self.objects["Job"].get(key)
            if job is None:
                continue
            plan = reconcile_job(job, self.pods_of(job), ctx)
            for pod in plan.create:
                if self.write("create", "Pod", pod) is not None:
                    self._report.created_pods += 1
            for name, _reason in plan.stop:
                self.delete("Pod", name, job["metadata"]["namespace"])
            if plan.status is not None:
                self.write("status", "Job", {**job, "status": plan.status})
            if plan.delete_job:
                for pod in self.pods_of(job):
                    self.delete("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
                self.delete("Job", job["metadata"]["name"], job["metadata"]["namespace"])
            if plan.wake_at is not None:
                self._timers[f"Job:{key}"] = plan.wake_at

    def _reconcile_deployments(self, now: float) -> None:
        dirty, self._dirty["Deployment"] = self._dirty["Deployment"], set()
        ctx = DeploymentContext(now, self._rng)
        for key in sorted(dirty):
            dep = self.objects["Deployment"].get(key)
            if dep is None:
                continue
            plan = reconcile_deployment(dep, self.pods_of(dep), ctx)
            for pod in plan.create:
                if self.write("create", "Pod", pod) is not None:
                    self._report.created_pods += 1
            for name in plan.delete:
                self.delete("Pod", name, dep["metadata"]["namespace"])
            if plan.status is not None:
                self.write("status", "Deployment", {**dep, "status": plan.status})
            min_ready = int(dep["spec"].get("minReadySeconds", 0))
            if min_ready and (plan.status or dep.get("status") or {}).get("unavailableReplicas"):
                self._timers[f"Deployment:{key}"] = now + 1.0  # availability comes with time

    def _collect_garbage(self) -> None:
        """Pods whose owning Job or Deployment is gone are deleted, as Kubernetes' garbage
        collector does."""
        owners = {
            (o["metadata"]["namespace"], o["metadata"].get("uid"))
            for kind in ("Job", "Deployment")
            for o in self.objects[kind].values()
        }
        if not self._owners_deleted:
            return
        self._owners_deleted = False
        for owner, keys in list(self._pods_by_owner.items()):
            if owner in owners:
                continue
            for key in list(keys):
                pod = self.objects["Pod"].get(key)
                if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                    self.delete("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])

    # -- writes --------------------------------------------------------------------------------------
    def write(self, op: str, kind: str, obj: JSON) -> JSON | None:
        """create / update / status; on a conflict the object is looked at again next pass."""
        rt = self._types[kind]
        try:
            if op == "create":
                _, obj = self._service.validate(obj)
                saved = self._store.create(rt, obj)
            elif op == "update":
                saved = self._store.update(rt, obj)
            else:
                saved = self._store.update_status(rt, obj)
        except (Conflict, NotFound, AlreadyExists) as exc:
            log.debug("%s %s %s: %s (retrying)", op, kind, obj["metadata"].get("name"), exc)
            self._report.conflicts += 1
            self._retry(kind, obj)
            return None
        except ManifestErrors as exc:
            log.error("cannot %s %s %s: %s", op, kind, obj["metadata"].get("name"), exc)
            return None
        self._report.writes += 1
        if saved["metadata"].get("deletionTimestamp") and not saved["metadata"].get("finalizers"):
            self._informer.remove(kind, saved)  # the last finalizer went: the store deleted it
        else:
            self._informer.put(kind, saved)
        return saved

    def delete(self, kind: str, name: str, namespace: str | None) -> None:
        try:
            gone = self._store.delete(self._types[kind], name, namespace)
        except NotFound:
            return
        self._report.writes += 1
        if gone["metadata"].get("deletionTimestamp") and gone["metadata"].get("finalizers"):
            self._informer.put(kind, gone)
        else:
            self._informer.remove(kind, gone)

    def _retry(self, kind: str, obj: JSON) -> None:
        key = object_key(obj, self._types[kind].namespaced)
        if kind in self._dirty:
            self._dirty[kind].add(key)
        elif kind == "Pod":
            self._dirty_pods.add(key)
        self._timers[f"{kind if kind in self._dirty else 'Pod'}:{key}"] = self._clock()

    # -- the background loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                report = self.run_once()
                if any(self._dirty.values()) or self._dirty_pods:
                    continue
                wait = 1.0 if report.next_wakeup is None else report.next_wakeup - self._clock()
                wait = min(max(wait, 0.005), 1.0)
                self._wake.clear()
                with self._lock:
                    changed = self._informer.wait(0)
                if not changed:
                    deadline = time.monotonic() + wait
                    while not self._stopping.is_set() and time.monotonic() < deadline:
                        with self._lock:
                            if self._informer.wait(min(0.05, wait)):
                                break
                        if self._wake.is_set():
                            break
            except Exception:
                if self._store.closed or self._stopping.is_set():
                    break
                log.exception("runtime pass failed; retrying in 1s")
                self._stopping.wait(1.0)
        with self._lock:
            self._informer.close()


def _owner(obj: JSON) -> tuple[str, str, str] | None:
    """(kind, name, uid) of the Job or Deployment that controls `obj`."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") in ("Job", "Deployment") and ref.get("controller"):
            return str(ref["kind"]), str(ref.get("name")), str(ref.get("uid"))
    return None


def _faults(node: JSON | None) -> list[Any]:
    return [(g.get("uuid"), g.get("faults")) for g in ((node or {}).get("status") or {}).get("gpus") or []]


def _finished(pod: JSON) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
