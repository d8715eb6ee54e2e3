"""The pod scheduler's driver and the Dynamic Accelerator Slicer's claim lifecycle.

For each pending pod (oldest first) the pure node scheduler (`flotilla.runtime.scheduling`)
chooses a node and its devices over a snapshot of the nodes, the pods bound to them and the live
AllocationClaims. Then, as DAS does:
1. staged: one claim per device is written (the store now holds the slots);
2. the pod is bound (`spec.nodeName`, condition PodScheduled, finalizer `flotilla.dev/runtime`);
3. created: the backend creates each slice (NVML: GPU + compute instance; emulated: recorded)
   and the claim gets the device's UUID (`status.migUUID`).
A pod that cannot fit now gets PodScheduled False, reason Unschedulable, with kube-scheduler's
message, and is tried again when capacity changes. A pod that can never fit (a MIG profile no GPU
here offers, two slices in one container) fails at once with reason UnsupportedDevice.

After a restart, staged claims of unbound pods are dropped, slices of created/inUse claims are
created again on the backend (idempotent), and claims whose pod is gone are released.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flotilla.api.quantity import Quantity
from flotilla.queue.workloads import rfc3339
from flotilla.runtime.devices import claim_object, claim_pod_uid, claim_state, gpu_health, gpu_states
from flotilla.runtime.jobs import UNSUPPORTED_DEVICE
from flotilla.runtime.podsync import _claim_status
from flotilla.runtime.scheduling import (
    Bound,
    DeviceAssignment,
    NodeInfo,
    PodSpecError,
    SchedulingContext,
    Unschedulable,
    canonical_amount,
    default_registry,
    pod_info,
)
from flotilla.runtime.scheduling.types import GPU_RESOURCE, WHOLE_GPU, Taint
from flotilla.slicer import load_catalog
from flotilla.slicer.backends import MigDevice
from flotilla.slicer.profiles import RESOURCE_PREFIX

if TYPE_CHECKING:
    from flotilla.runtime.controller import RuntimeController

JSON = dict[str, Any]
log = logging.getLogger("flotilla.runtime")
FINALIZER = "flotilla.dev/runtime"


class Binder:
    """The pod scheduler's driver (see the module docstring); one per RuntimeController."""

    def __init__(self, ctl: RuntimeController) -> None:
        self.ctl = ctl
        self._catalog = load_catalog()
        self._ctx = SchedulingContext.of(ctl._rng, self._catalog, self.ctl.config.scheduler, self.ctl.config.placement)
        self._framework = default_registry().bind(self.ctl.config.scheduler)
        self._unschedulable: set[str] = set()

    # -- the snapshot --------------------------------------------------------------------------------
    def _node_infos(self) -> list[NodeInfo]:
        nodes = list(self.ctl.objects["Node"].values())
        gpus = gpu_states(nodes, self.ctl.objects["AllocationClaim"].values())
        requested: dict[str, dict[str, int]] = {}
        counts: dict[str, int] = {}
        for pod in self.ctl.objects["Pod"].values():
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            counts[node] = counts.get(node, 0) + 1
            try:
                info = pod_info(pod)
            except PodSpecError:
                continue
            into = requested.setdefault(node, {})
            for r, v in info.requests.items():
                into[r] = into.get(r, 0) + v
        infos = []
        for node in nodes:
            name = node["metadata"]["name"]
            status, spec = node.get("status") or {}, node.get("spec") or {}
            allocatable = {}
            for r, q in (status.get("allocatable") or {}).items():
                if r != GPU_RESOURCE and not str(r).startswith(RESOURCE_PREFIX):
                    allocatable[r] = canonical_amount(r, Quantity.parse(q))
            infos.append(
                NodeInfo(
                    name=name,
                    labels=dict(node["metadata"].get("labels") or {}),
                    taints=tuple(Taint(**t) for t in spec.get("taints") or []),
                    unschedulable=bool(spec.get("unschedulable")),
                    allocatable=allocatable,
                    requested=requested.get(name, {}),
                    pods=counts.get(name, 0),
                    gpus=gpus.get(name, ()),
                    gpu_health=gpu_health(node),
                )
            )
        return infos

    # -- scheduling ------------------------------------------------------------------------------------
    def schedule_pending(self, now: float) -> None:
        pending = [
            p
            for p in self.ctl.objects["Pod"].values()
            if not (p.get("spec") or {}).get("nodeName")
            and not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase", "Pending") == "Pending"
            and (p.get("spec") or {}).get("schedulerName") in (None, "", "default-scheduler")
        ]
        if not self.ctl._capacity_changed:
            pending = [p for p in pending if _key(p) not in self._unschedulable]
        self.ctl._capacity_changed = False
        if not pending:
            return
        pending.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", _key(p)))
        nodes = self._node_infos()
        for pod in pending:
            try:
                info = pod_info(pod)
            except PodSpecError as exc:
                self._fail_unsupported(pod, str(exc), now)
                continue
            result = self._framework.schedule(self._ctx, info, nodes)
            if isinstance(result, Unschedulable):
                self._unschedulable.add(_key(pod))
                if not result.retryable:
                    self._fail_unsupported(pod, result.message, now)
                else:
                    self._mark_unschedulable(pod, result.message, now)
                continue
            self._unschedulable.discard(_key(pod))
            if self._bind(pod, result, now):
                self.ctl._report.bound += 1
                nodes = self._node_infos()  # the next pod sees what this one took

    def _bind(self, pod: JSON, bound: Bound, now: float) -> bool:
        staged: list[JSON] = []
        for n, (container, device) in enumerate(assign_containers(pod, bound.devices)):
            claim = self.ctl.write("create", "AllocationClaim", claim_object(pod, container, n, bound.node, device))
            if claim is None:
                for c in staged:
                    self.ctl.delete("AllocationClaim", c["metadata"]["name"], c["metadata"]["namespace"])
                return False
            staged.append(claim)
        meta = pod["metadata"]
        finalizers = [*(meta.get("finalizers") or []), FINALIZER]
        body = {**pod, "metadata": {**meta, "finalizers": finalizers}, "spec": {**pod["spec"], "nodeName": bound.node}}
        saved = self.ctl.write("update", "Pod", body)
        if saved is None:
            for c in staged:
                self.ctl.delete("AllocationClaim", c["metadata"]["name"], c["metadata"]["namespace"])
            return False
        status = dict(saved.get("status") or {})
        status["phase"] = "Pending"
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"] + [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(now)}
        ]
        self.ctl.write("status", "Pod", {**saved, "status": status})
        for claim in staged:
            self.create_slice(claim)
        return True

    def create_slice(self, claim: JSON) -> bool:
        spec = claim["spec"]
        if spec.get("profile") == WHOLE_GPU:
            device_uuid = spec["gpuUUID"]
        else:
            try:
                device = self.ctl.backend.create_slice(
                    spec["gpuUUID"], spec["profile"], int(spec["migPlacement"]["start"])
                )
            except Exception as exc:
                log.error("creating slice %s: %s", claim["metadata"]["name"], exc)
                return False
            device_uuid = device.uuid
        status = {**_claim_status(claim, "created"), "migUUID": device_uuid}
        return self.ctl.write("status", "AllocationClaim", {**claim, "status": status}) is not None

    def device_of(self, claim: JSON) -> MigDevice | None:
        spec = claim["spec"]
        if spec.get("profile") in (None, WHOLE_GPU) or claim_state(claim) == "staged":
            return None
        placement = spec["migPlacement"]
        for device in self.ctl.backend.slices(spec["gpuUUID"]):
            if device.start == int(placement["start"]) and device.profile == spec["profile"]:
                return device
        return None

    def _mark_unschedulable(self, pod: JSON, message: str, now: float) -> None:
        status = dict(pod.get("status") or {})
        current = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if current and current.get("reason") == "Unschedulable" and current.get("message") == message:
            return
        status["phase"] = "Pending"
        self.ctl.write("status", "Pod", {**pod, "status": _unschedulable(status, message, now)})

    def _fail_unsupported(self, pod: JSON, message: str, now: float) -> None:
        status = dict(pod.get("status") or {})
        status.update(phase="Failed", reason=UNSUPPORTED_DEVICE, message=message)
        self.ctl.write("status", "Pod", {**pod, "status": _unschedulable(status, message, now)})

    # -- after a restart -------------------------------------------------------------------------------
    def recover_claims(self) -> None:
        pods = {str(p["metadata"].get("uid")): p for p in self.ctl.objects["Pod"].values()}
        for claim in list(self.ctl.objects["AllocationClaim"].values()):
            pod = pods.get(claim_pod_uid(claim))
            state = claim_state(claim)
            if pod is None or state == "deleted" or (state == "staged" and not (pod.get("spec") or {}).get("nodeName")):
                self.ctl.pods.release_claim(claim)
            elif state == "staged":
                self.create_slice(claim)
            elif claim["spec"].get("profile") != WHOLE_GPU:
                spec = claim["spec"]
                try:
                    self.ctl.backend.create_slice(spec["gpuUUID"], spec["profile"], int(spec["migPlacement"]["start"]))
                except Exception as exc:
                    log.error("re-creating slice %s: %s", claim["metadata"]["name"], exc)


def assign_containers(
    pod: Mapping[str, Any], devices: Sequence[DeviceAssignment]
) -> list[tuple[str, DeviceAssignment]]:
    """Which container each device is for: containers in order take their whole GPUs and their
    slices (by profile, in the order the scheduler returned them)."""
    pools: dict[str, list[DeviceAssignment]] = {}
    for d in devices:
        pools.setdefault(d.profile, []).append(d)
    out: list[tuple[str, DeviceAssignment]] = []
    for c in [*(pod["spec"].get("containers") or []), *(pod["spec"].get("initContainers") or [])]:
        res = c.get("resources") or {}
        wanted = {**(res.get("requests") or {}), **(res.get("limits") or {})}
        for name, q in wanted.items():
            profile = (
                WHOLE_GPU
                if name == GPU_RESOURCE
                else name[len(RESOURCE_PREFIX) :]
                if name.startswith(RESOURCE_PREFIX)
                else None
            )
            if profile is None:
                continue
            for _ in range(int(Quantity.parse(q).as_int())):
                pool = pools.get(profile) or pools.get(profile.replace(".me", "+me")) or []
                if pool:
                    out.append((c["name"], pool.pop(0)))
    return out


def _unschedulable(status: JSON, message: str, now: float) -> JSON:
    """`status` with condition PodScheduled False, reason Unschedulable, saying why."""
    kept = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    return {**status, "conditions": [*kept, {**scheduled, "lastTransitionTime": rfc3339(now)}]}


def _key(pod: JSON) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
