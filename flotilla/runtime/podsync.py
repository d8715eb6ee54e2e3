"""The kubelet's side of a pass: start bound pods whose devices are ready, watch running ones,
stop deleted ones, and give devices back once a pod's processes are gone.

A bound pod carries the finalizer `flotilla.dev/runtime`: deleting it only marks it, its
processes get SIGTERM (then SIGKILL after the grace period), its slices are destroyed and its
claims removed, and only then the finalizer goes and the pod with it. Claims move
`created -> inUse` when the pod's processes start, `inUse -> deleted` when they are gone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flotilla.runtime.devices import claim_state

if TYPE_CHECKING:
    from flotilla.runtime.controller import RuntimeController

JSON = dict[str, Any]
log = logging.getLogger("flotilla.runtime")


class PodSync:
    """The kubelet's side of a pass (see the module docstring); one per RuntimeController."""

    def __init__(self, ctl: RuntimeController) -> None:
        self.ctl = ctl
        self.running: set[str] = set()  # pods with processes to watch or stop

    def _namespaced(self, kind: str, ns: str) -> dict[str, JSON]:
        prefix = f"{ns}/"
        return {k[len(prefix) :]: v for k, v in self.ctl.objects[kind].items() if k.startswith(prefix)}

    def has_running(self) -> bool:
        return bool(self.running)

    def sync(self, now: float) -> None:
        dirty, self.ctl._dirty_pods = self.ctl._dirty_pods, set()
        for key in sorted(dirty | self.running):
            pod = self.ctl.objects["Pod"].get(key)
            if pod is None:
                self.running.discard(key)
                continue
            if (pod.get("spec") or {}).get("nodeName"):
                self._sync_bound(key, pod)

    def _sync_bound(self, key: str, pod: JSON) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        started = self.ctl.kubelet.started(pod)
        if meta.get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
            # Over or deleted: stop what still runs, then give the devices back; a deleted pod
            # goes once its claims are gone (the finalizer comes off).
            if started and self.ctl.kubelet.alive(pod):
                self.ctl.kubelet.stop(pod)
                self.running.add(key)
                return
            self.running.discard(key)
            self._release(pod)
            if meta.get("deletionTimestamp") and not self.ctl.claims_of(pod):
                finalizers = [f for f in meta.get("finalizers") or [] if f != "flotilla.dev/runtime"]
                self.ctl.kubelet.remove(pod)
                self.ctl.write("update", "Pod", {**pod, "metadata": {**meta, "finalizers": finalizers}})
            return
        ns = meta["namespace"]
        configmaps, secrets = self._namespaced("ConfigMap", ns), self._namespaced("Secret", ns)
        claims = self.ctl.claims_of(pod)
        if not started:
            if any(claim_state(c) != "created" for c in claims):
                return  # the binder creates the slices first
            out = self.ctl.kubelet.start(pod, configmaps, secrets, claims, self._pod_ip(pod))
            self._write_pod(pod, out)
            if self.ctl.kubelet.started(pod):  # app or init containers run
                self.ctl._report.started += 1
                self.running.add(key)
                for c in claims:
                    self.ctl.write("status", "AllocationClaim", {**c, "status": _claim_status(c, "inUse")})
            return
        self.running.add(key)
        synced, wake = self.ctl.kubelet.sync(pod, configmaps, secrets, claims)
        if synced is not None:
            self._write_pod(pod, synced)
        if wake is not None:
            self.ctl._timers[f"Pod:{key}"] = wake

    def _pod_ip(self, pod: JSON) -> str:
        """A loopback address of its own for the pod (127.1.0.1 upwards), unique among live pods,
        so that replicas listen on the same port as on a cluster; host-network pods share 127.0.0.1."""
        if (pod.get("spec") or {}).get("hostNetwork"):
            return "127.0.0.1"
        current = (pod.get("status") or {}).get("podIP")
        if current:
            return str(current)
        used = {
            (p.get("status") or {}).get("podIP")
            for p in self.ctl.objects["Pod"].values()
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        }
        for n in range(1, 65535):
            ip = f"127.1.{n // 256}.{n % 256}"
            if n % 256 not in (0, 255) and ip not in used:
                return ip
        return "127.0.0.1"

    def _write_pod(self, old: JSON, new: JSON) -> None:
        """Metadata (the process records) and status are separate writes, as in Kubernetes."""
        current = old
        if new["metadata"] != old["metadata"]:
            saved = self.ctl.write("update", "Pod", {**old, "metadata": new["metadata"]})
            if saved is None:
                return
            current = saved
        if new.get("status") != old.get("status"):
            self.ctl.write("status", "Pod", {**current, "status": new.get("status") or {}})

    def _release(self, pod: JSON) -> None:
        """Destroy the pod's slices and remove its claims (deleted is their last state)."""
        for claim in self.ctl.claims_of(pod):
            self.release_claim(claim)

    def release_claim(self, claim: JSON) -> None:
        device = self.ctl.binder.device_of(claim)
        if device is not None:
            try:
                self.ctl.backend.destroy_slice(device)
            except Exception as exc:  # the slice may already be gone: the claim must still go
                log.warning("destroying %s: %s", claim["metadata"]["name"], exc)
        if claim_state(claim) != "deleted":
            saved = self.ctl.write("status", "AllocationClaim", {**claim, "status": _claim_status(claim, "deleted")})
            claim = saved or claim
        self.ctl.delete("AllocationClaim", claim["metadata"]["name"], claim["metadata"]["namespace"])


def _claim_status(claim: JSON, state: str) -> JSON:
    status = dict(claim.get("status") or {})
    status["state"] = state
    status["conditions"] = [
        {"type": "State", "status": "True", "reason": state, "message": f"Allocation is {state}"},
    ]
    return status
