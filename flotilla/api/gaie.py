"""Gateway API Inference Extension kinds.

InferencePool is `inference.networking.k8s.io/v1`. InferenceObjective is served where upstream
serves it, `inference.networking.x-k8s.io/v1alpha2` (it has no v1 yet).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flotilla.api.base import KubeModel, Resource
from flotilla.api.errors import FieldIssue

GROUP = "inference.networking.k8s.io"
X_GROUP = "inference.networking.x-k8s.io"


class PoolSelector(KubeModel):
    """Plain label equality, as Service selectors (the CRD allows matchLabels only)."""

    matchLabels: dict[str, str] = Field(min_length=1)


class Port(KubeModel):
    number: int = Field(ge=1, le=65535)


class EndpointPickerRef(KubeModel):
    group: str = ""
    kind: str = "Service"
    name: str = Field(min_length=1)
    port: Port | None = None
    failureMode: Literal["FailOpen", "FailClose"] = "FailClose"


class InferencePoolSpec(KubeModel):
    selector: PoolSelector
    targetPorts: list[Port] = Field(min_length=1, max_length=8)
    appProtocol: Literal["http", "kubernetes.io/h2c"] = "http"
    endpointPickerRef: EndpointPickerRef | None = None  # optional in GAIE v1: the gateway's own picker


class InferencePool(Resource):
    spec: InferencePoolSpec
    status: dict[str, Any] | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        issues = []
        numbers = [p.number for p in self.spec.targetPorts]
        if len(set(numbers)) != len(numbers):
            issues.append(FieldIssue("spec.targetPorts", f"port numbers must be unique, got {numbers}"))
        ref = self.spec.endpointPickerRef
        if ref is not None and ref.kind == "Service" and ref.group == "" and ref.port is None:
            issues.append(FieldIssue("spec.endpointPickerRef.port", "required when kind is Service; set port.number"))
        return issues


class PoolObjectReference(KubeModel):
    group: str = GROUP
    kind: str = "InferencePool"
    name: str = Field(min_length=1)


class InferenceObjectiveSpec(KubeModel):
    priority: int | None = None
    poolRef: PoolObjectReference


class InferenceObjective(Resource):
    spec: InferenceObjectiveSpec
    status: dict[str, Any] | None = None
