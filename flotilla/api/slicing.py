"""AllocationClaim: one MIG slice for one pod container, as the Dynamic Accelerator Slicer records it.

Same group, version and spec fields as DAS's CRD (`inference.redhat.com/v1alpha1`): `profile`,
`podRef`, `migPlacement` (start and size in the GPU's 8 placement slots), `gpuUUID`, `nodename`.
The claim moves `staged -> created -> inUse -> deleted` (`status.state`, mirrored in a `State`
condition whose reason is the state): staged when the pod scheduler picks the slots, created once
the slice exists on the GPU (NVML: a GPU instance and a compute instance; emulated: recorded
here), inUse while the pod's process runs with it, deleted when the pod has ended and the slice
is destroyed (the claim object is then removed). Flotilla adds `spec.containerName` and
`status.migUUID` (the device the container sees in `CUDA_VISIBLE_DEVICES`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flotilla.api.base import Condition, KubeModel, Resource

GROUP = "inference.redhat.com"
VERSION = "v1alpha1"
ClaimState = Literal["staged", "created", "inUse", "deleted"]
STATES: tuple[ClaimState, ...] = ("staged", "created", "inUse", "deleted")


class MigPlacement(KubeModel):
    start: int = Field(ge=0, le=7)
    size: int = Field(ge=1, le=8)


class ObjectReference(KubeModel):
    apiVersion: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None


class AllocationClaimSpec(KubeModel):
    profile: str | None = None
    podRef: ObjectReference | None = None
    containerName: str | None = None
    migPlacement: MigPlacement
    gpuUUID: str
    nodename: str


class AllocationClaimStatus(KubeModel):
    state: ClaimState | None = None
    migUUID: str | None = None
    conditions: list[Condition] | None = None


class AllocationClaim(Resource):
    spec: AllocationClaimSpec
    status: AllocationClaimStatus | None = None
