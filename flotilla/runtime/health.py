"""Keeping work off bad GPUs (Vela's Autopilot semantics, the runtime's half).

The health monitor (`flotilla.telemetry`) writes each GPU's verdict into its Node. When a GPU
turns EVICT or ERR, every pod holding a slice of it (or the whole GPU) is stopped and marked
Failed with reason `Evicted`; if the pod belongs to a Job whose Workload is admitted, the Workload
is evicted too (condition Evicted, reason `NodeFailures`, as Kueue does for failed nodes), so the
queue suspends the Job, releases its quota and requeues it; the pod scheduler then keeps the new
pods off the bad GPU. New work never lands there (the scheduler's GPUHealth and GPUFit filters).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flotilla.queue import workloads as wls
from flotilla.runtime.devices import claim_pod_uid
from flotilla.runtime.scheduling.types import UNHEALTHY_GPU

if TYPE_CHECKING:
    from flotilla.runtime.controller import RuntimeController

JSON = dict[str, Any]
EVICTED_BY_NODE_FAILURES = "NodeFailures"
log = logging.getLogger("flotilla.runtime")


def _bad_gpus(node: JSON | None) -> dict[str, str]:
    out = {}
    for g in ((node or {}).get("status") or {}).get("gpus") or []:
        if g.get("health") in UNHEALTHY_GPU:
            out[g["uuid"]] = f"{g['health']}: {g.get('healthMessage') or 'health check failed'}"
    return out


class HealthReactor:
    """Stops work on GPUs that turned EVICT or ERR (see the module docstring)."""

    def __init__(self, ctl: RuntimeController) -> None:
        self.ctl = ctl
        self._nodes: set[str] = set()  # nodes with a GPU that newly turned bad

    def node_changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if _bad_gpus(new).keys() - _bad_gpus(old).keys():
            self._nodes.add(key)

    def react(self, now: float) -> None:
        nodes, self._nodes = self._nodes, set()
        if not nodes:
            return
        bad: dict[str, str] = {}
        for name in sorted(nodes):
            for uuid, why in _bad_gpus(self.ctl.objects["Node"].get(name)).items():
                bad[uuid] = f"GPU {uuid} on node {name} is {why}"
        victims: dict[str, str] = {}
        for claim in self.ctl.objects["AllocationClaim"].values():
            bad_why = bad.get(claim["spec"]["gpuUUID"])
            if bad_why is not None:
                victims[claim_pod_uid(claim)] = bad_why
        for pod in list(self.ctl.objects["Pod"].values()):
            victim = victims.get(str(pod["metadata"].get("uid")))
            if victim is None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            log.warning("evicting pod %s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], victim)
            self.ctl.kubelet.stop(pod, grace=float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)))
            out = self.ctl.kubelet.finish_stopped(pod, "Evicted", victim)
            self.ctl.write("status", "Pod", {**pod, "status": out["status"]})
            self.ctl.pods.running.add(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
            self._evict_workload(pod, victim, now)

    def _evict_workload(self, pod: JSON, why: str, now: float) -> None:
        owner = next(
            (r for r in pod["metadata"].get("ownerReferences") or [] if r.get("kind") == "Job" and r.get("controller")),
            None,
        )
        if owner is None:
            return
        ns = pod["metadata"]["namespace"]
        for key, wl in self.ctl.objects["Workload"].items():
            if not key.startswith(f"{ns}/"):
                continue
            refs = wl["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == owner.get("uid") for r in refs):
                continue
            if not wls.is_admitted(wl) or wls.is_evicted(wl) or wls.is_finished(wl):
                continue
            body = wls.copy_json(wl)
            if wls.set_evicted(body, EVICTED_BY_NODE_FAILURES, why, now):
                self.ctl.write("status", "Workload", body)
