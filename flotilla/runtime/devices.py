"""GPUs and their slices as the pod scheduler sees them, and the AllocationClaims that record them.

Every device a pod holds is an AllocationClaim (`inference.redhat.com/v1alpha1`, DAS's kind) in
the pod's namespace, named `<pod uid>-<container>-<n>`: a MIG slice (`spec.profile` such as
`1g.5gb`, `migPlacement` start and size) or, a Flotilla addition, a whole GPU (`spec.profile`
`gpu`, start 0, size 8). Claims are written before the pod is bound, so the store is the record
of which slots are taken: after a restart the occupancy is rebuilt from the claims, and a claim
whose pod is gone is released (no leaked or double-booked slices).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flotilla.api.slicing import GROUP, VERSION
from flotilla.runtime.scheduling.types import UNHEALTHY_GPU
from flotilla.slicer import GPUState, SlotRange

JSON = dict[str, Any]


def claim_name(pod_uid: str, container: str, n: int) -> str:
    return f"{pod_uid}-{container}-{n}"[:253]


def claim_object(pod: Mapping[str, Any], container: str, n: int, node: str, device: Any) -> JSON:
    """A staged claim for one device of `pod` (`device`: gpu_uuid, profile, start, size)."""
    meta = pod["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AllocationClaim",
        "metadata": {
            "name": claim_name(str(meta["uid"]), container, n),
            "namespace": meta["namespace"],
            "labels": {"flotilla.dev/pod-uid": str(meta["uid"])},
        },
        "spec": {
            "profile": device.profile,
            "podRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": str(meta["uid"])},
            "containerName": container,
            "migPlacement": {"start": device.start, "size": device.size},
            "gpuUUID": device.gpu_uuid,
            "nodename": node,
        },
        "status": {"state": "staged"},
    }


def claim_state(claim: Mapping[str, Any]) -> str:
    return str((claim.get("status") or {}).get("state") or "staged")


def claim_pod_uid(claim: Mapping[str, Any]) -> str:
    return str(((claim.get("spec") or {}).get("podRef") or {}).get("uid") or "")


def gpu_health(node: Mapping[str, Any]) -> dict[str, str]:
    return {g["uuid"]: g.get("health") or "PASS" for g in (node.get("status") or {}).get("gpus") or []}


def gpu_states(
    nodes: Iterable[Mapping[str, Any]], claims: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[GPUState, ...]]:
    """Node name -> its GPUs with the slots every live claim holds; GPUs whose health is EVICT or
    ERR are unhealthy (policies never place on them)."""
    taken: dict[str, list[SlotRange]] = {}
    for c in claims:
        if claim_state(c) == "deleted":
            continue
        spec = c["spec"]
        placement = spec["migPlacement"]
        owner = f"{(spec.get('podRef') or {}).get('namespace', '')}/{(spec.get('podRef') or {}).get('name', '')}"
        taken.setdefault(spec["gpuUUID"], []).append(
            SlotRange(int(placement["start"]), int(placement["size"]), owner, str(spec.get("profile") or ""))
        )
    out: dict[str, tuple[GPUState, ...]] = {}
    for node in nodes:
        name = node["metadata"]["name"]
        gpus = []
        for g in (node.get("status") or {}).get("gpus") or []:
            allocations = tuple(sorted(taken.get(g["uuid"], []), key=lambda a: a.start))
            try:
                gpus.append(
                    GPUState(
                        uuid=g["uuid"],
                        node=name,
                        model=g.get("model") or "",
                        allocations=allocations,
                        healthy=(g.get("health") or "PASS") not in UNHEALTHY_GPU,
                    )
                )
            except ValueError:  # overlapping claims (written by hand): keep the GPU off limits
                gpus.append(GPUState(uuid=g["uuid"], node=name, model=g.get("model") or "", healthy=False))
        out[name] = tuple(gpus)
    return out


def visible_devices(claims: Iterable[Mapping[str, Any]], container: str) -> str:
    """CUDA_VISIBLE_DEVICES for a container: its MIG device UUIDs (or whole-GPU UUIDs), in claim order."""
    mine = sorted(
        (c for c in claims if (c.get("spec") or {}).get("containerName") == container),
        key=lambda c: c["metadata"]["name"],
    )
    return ",".join(str((c.get("status") or {}).get("migUUID") or c["spec"]["gpuUUID"]) for c in mine)
