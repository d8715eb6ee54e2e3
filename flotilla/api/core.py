"""core/v1 kinds: Namespace, ConfigMap, Secret, Node, Pod."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flotilla.api.base import KubeModel, ProbedCondition, Resource, Taint
from flotilla.api.errors import FieldIssue
from flotilla.api.pod import PodSpec
from flotilla.api.quantity import QuantityField


class NamespaceStatus(KubeModel):
    phase: Literal["Active", "Terminating"] | None = None


class Namespace(Resource):
    spec: dict[str, Any] | None = None
    status: NamespaceStatus | None = None


class ConfigMap(Resource):
    data: dict[str, str] | None = None
    binaryData: dict[str, str] | None = None
    immutable: bool | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        both = set(self.data or {}) & set(self.binaryData or {})
        return [FieldIssue(f"binaryData[{k}]", "key also appears in data; keys must be unique") for k in sorted(both)]


class Secret(Resource):
    """Values are stored; the CLI never prints them."""

    type: str | None = None
    data: dict[str, str] | None = None
    stringData: dict[str, str] | None = None
    immutable: bool | None = None


class NodeSpec(KubeModel):
    taints: list[Taint] | None = None
    unschedulable: bool | None = None
    podCIDR: str | None = None
    providerID: str | None = None


class NodeAddress(KubeModel):
    type: str
    address: str


class NodeCondition(KubeModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    lastHeartbeatTime: str | None = None
    lastTransitionTime: str | None = None


GPUFault = Literal["remapped-rows", "pcie-degraded", "xid", "offline"]
GPUHealth = Literal["PASS", "WARN", "TESTING", "EVICT", "ERR"]


class GPUInfo(KubeModel):
    """Flotilla's GPU inventory entry (what NVML or the emulator reports for one device).

    `model` is the MIG profile table's key (`A100-40GB`); `health` is the last health check's
    verdict (Autopilot's values) and `healthMessage` names the failing check; `faults` are the
    faults injected into an emulated GPU (`flotilla fault inject`)."""

    index: int = Field(ge=0)
    uuid: str
    product: str
    model: str | None = None
    memoryMiB: int = Field(ge=0)
    migCapable: bool = False
    migEnabled: bool = False
    emulated: bool = False
    health: GPUHealth | None = None
    healthMessage: str | None = None
    faults: list[GPUFault] | None = None


class NodeStatus(KubeModel):
    capacity: dict[str, QuantityField] | None = None
    allocatable: dict[str, QuantityField] | None = None
    conditions: list[NodeCondition] | None = None
    addresses: list[NodeAddress] | None = None
    nodeInfo: dict[str, str] | None = None
    gpus: list[GPUInfo] | None = None


class Node(Resource):
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus | None = None


class ContainerStatus(KubeModel):
    name: str
    ready: bool = False
    started: bool | None = None
    restartCount: int = 0
    state: dict[str, Any] | None = None
    lastState: dict[str, Any] | None = None
    image: str | None = None
    imageID: str | None = None
    containerID: str | None = None


class PodStatus(KubeModel):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] | None = None
    conditions: list[ProbedCondition] | None = None
    reason: str | None = None
    message: str | None = None
    hostIP: str | None = None
    podIP: str | None = None
    startTime: str | None = None
    initContainerStatuses: list[ContainerStatus] | None = None
    containerStatuses: list[ContainerStatus] | None = None
    nominatedNodeName: str | None = None
    qosClass: str | None = None


class Pod(Resource):
    spec: PodSpec
    status: PodStatus | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        return self.spec.semantic_issues("spec")
