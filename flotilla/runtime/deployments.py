"""The apps/v1 Deployment controller as a pure function: which pods to create or delete, and the
Deployment's status.

Kubernetes puts a ReplicaSet between a Deployment and its pods; here the Deployment owns its pods
directly and the ReplicaSet survives as the `pod-template-hash` label (the same label Kubernetes
puts on pods): pods whose hash is the current template's are *updated*, the others *old*.

- Scaling: the updated pods are kept at `replicas`; extra pods go first if not scheduled, then
  not ready, then newest (ReplicaSet's order).
- Failed pods (evicted; restartPolicy Always otherwise restarts containers in place) are deleted
  and replaced.
- RollingUpdate: at most `replicas + maxSurge` pods (default 25%, rounded up) exist while old
  ones are replaced, and at least `replicas - maxUnavailable` (default 25%, rounded down; 1 if
  both are 0) stay ready: an old pod is deleted only when enough others are ready.
- Recreate: every old pod is deleted before any updated one is created.
- Status: replicas, updatedReplicas, readyReplicas, availableReplicas (ready for
  `minReadySeconds`), unavailableReplicas, observedGeneration; conditions Available
  (MinimumReplicasAvailable / MinimumReplicasUnavailable) and Progressing
  (NewReplicaSetAvailable once the rollout is done, else ReplicaSetUpdated).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.queue.workloads import copy_json, parse_time, rfc3339
from flotilla.runtime.jobs import is_ready, is_terminating, phase

JSON = dict[str, Any]
TEMPLATE_HASH = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet


@dataclass(frozen=True)
class DeploymentContext:
    now: float
    rng: random.Random


@dataclass
class DeploymentPlan:
    create: list[JSON] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # pod names
    status: JSON | None = None


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable hash of the pod template, spelt as Kubernetes spells pod-template-hash."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])


def _scaled(value: int | str | None, replicas: int, default: str, round_up: bool) -> int:
    raw = default if value is None else value
    if isinstance(raw, int):
        return raw
    fraction = int(str(raw).rstrip("%")) * replicas / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


def surge_and_unavailable(spec: Mapping[str, Any]) -> tuple[int, int]:
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge"), replicas, "25%", round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable"), replicas, "25%", round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def new_pod(dep: Mapping[str, Any], pod_hash: str, rng: random.Random) -> JSON:
    meta = dep["metadata"]
    template = copy_json(dep["spec"]["template"])
    tmeta = template.get("metadata") or {}
    suffix = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    pod_meta: JSON = {
        "name": f"{meta['name'][:40]}-{pod_hash}-{suffix}",
        "namespace": meta["namespace"],
        "labels": {**(tmeta.get("labels") or {}), TEMPLATE_HASH: pod_hash},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": meta["name"],
                "uid": str(meta.get("uid", "")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    spec = template["spec"]
    spec.setdefault("restartPolicy", "Always")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def _deletion_order(pod: Mapping[str, Any]) -> tuple[int, int, float]:
    """ReplicaSet's preference: unscheduled first, then not ready, then the newest."""
    scheduled = bool((pod.get("spec") or {}).get("nodeName"))
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    return (int(scheduled), int(is_ready(pod)), -created)


def _available(pod: Mapping[str, Any], min_ready: int, now: float) -> bool:
    if not is_ready(pod):
        return False
    if min_ready <= 0:
        return True
    since = next(
        (parse_time(c.get("lastTransitionTime")) for c in (pod.get("status") or {}).get("conditions") or []
         if c.get("type") == "Ready"),
        now,
    )  # fmt: skip
    return now - since >= min_ready


def reconcile_deployment(
    dep: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], ctx: DeploymentContext
) -> DeploymentPlan:
    """What the Deployment controller does for `dep` given the pods it owns (module docstring)."""
    plan = DeploymentPlan()
    spec = dep["spec"]
    replicas = int(spec.get("replicas", 1))
    pod_hash = template_hash(spec["template"])
    failed = [p for p in pods if phase(p) == "Failed" and not is_terminating(p)]
    plan.delete.extend(p["metadata"]["name"] for p in failed)
    live = [p for p in pods if phase(p) not in ("Succeeded", "Failed") and not is_terminating(p)]
    updated = [p for p in live if (p["metadata"].get("labels") or {}).get(TEMPLATE_HASH) == pod_hash]
    old = [p for p in live if p not in updated]
    terminating = [p for p in pods if is_terminating(p)]
    surge, max_unavailable = surge_and_unavailable(spec)

    if (spec.get("strategy") or {}).get("type") == "Recreate":
        plan.delete.extend(p["metadata"]["name"] for p in old)
        if not old and not any((p["metadata"].get("labels") or {}).get(TEMPLATE_HASH) != pod_hash for p in terminating):
            _scale(dep, updated, replicas, pod_hash, plan, ctx)
    else:
        room = replicas + surge - len(live) - len(terminating)
        wanted = replicas - len(updated)
        if wanted > 0:
            count = min(wanted, room) if old else wanted
            plan.create.extend(new_pod(dep, pod_hash, ctx.rng) for _ in range(max(count, 0)))
        elif wanted < 0:
            extra = sorted(updated, key=_deletion_order)[:-wanted]
            plan.delete.extend(p["metadata"]["name"] for p in extra)
        if old:
            ready = sum(1 for p in live if is_ready(p))
            can_delete = ready - (replicas - max_unavailable)
            for p in sorted(old, key=lambda p: (is_ready(p), _deletion_order(p))):
                if not is_ready(p) or can_delete > 0:
                    plan.delete.append(p["metadata"]["name"])
                    if is_ready(p):
                        can_delete -= 1
    plan.status = _status(dep, live, updated, replicas, max_unavailable, ctx.now, len(terminating))
    if plan.status == (dep.get("status") or {}):
        plan.status = None
    return plan


def _scale(
    dep: Mapping[str, Any], updated: Sequence[Mapping[str, Any]], replicas: int, pod_hash: str, plan: DeploymentPlan,
    ctx: DeploymentContext,
) -> None:  # fmt: skip
    if len(updated) < replicas:
        plan.create.extend(new_pod(dep, pod_hash, ctx.rng) for _ in range(replicas - len(updated)))
    elif len(updated) > replicas:
        extra = sorted(updated, key=_deletion_order)[: len(updated) - replicas]
        plan.delete.extend(p["metadata"]["name"] for p in extra)


def _status(
    dep: Mapping[str, Any],
    live: Sequence[Mapping[str, Any]],
    updated: Sequence[Mapping[str, Any]],
    replicas: int,
    max_unavailable: int,
    now: float,
    terminating: int,
) -> JSON:
    min_ready = int(dep["spec"].get("minReadySeconds", 0))
    ready = sum(1 for p in live if is_ready(p))
    available = sum(1 for p in live if _available(p, min_ready, now))
    old_status = dep.get("status") or {}
    status: JSON = {
        "observedGeneration": (dep.get("metadata") or {}).get("generation"),
        "replicas": len(live),
        "updatedReplicas": len(updated),
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": max(replicas - available, 0),
    }
    if terminating:
        status["terminatingReplicas"] = terminating
    done = len(updated) == replicas == len(live) and all(_available(p, min_ready, now) for p in updated)
    wanted = {
        "Available": (
            available >= replicas - max_unavailable,
            "MinimumReplicasAvailable" if available >= replicas - max_unavailable else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available >= replicas - max_unavailable
            else "Deployment does not have minimum availability.",
        ),
        "Progressing": (
            True,
            "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
            "the pods of the current template are available" if done else "the pods are being updated",
        ),
    }
    old = {c["type"]: c for c in old_status.get("conditions") or []}
    conditions = []
    for ctype, (value, reason, message) in wanted.items():
        text = "True" if value else "False"
        prev = old.get(ctype)
        same = prev is not None and (prev.get("status"), prev.get("reason")) == (text, reason)
        stamp = prev.get("lastTransitionTime") if same and prev is not None else rfc3339(now)
        update = prev.get("lastUpdateTime") if same and prev is not None else rfc3339(now)
        conditions.append(
            {
                "type": ctype,
                "status": text,
                "reason": reason,
                "message": message,
                "lastUpdateTime": update,
                "lastTransitionTime": stamp,
            }
        )
    status["conditions"] = conditions
    return status
