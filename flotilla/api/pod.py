"""The parts of core/v1 PodSpec that users write in Job and Deployment templates.

Fields Flotilla does not act on yet (affinity, securityContext, probes' details) are accepted as
free-form objects so that real manifests load; docs/resources.md lists what is honoured.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flotilla.api.base import KubeModel, ObjectMeta, Toleration
from flotilla.api.errors import FieldIssue
from flotilla.api.quantity import Quantity, QuantityField


class KeySelector(KubeModel):
    name: str | None = None
    key: str
    optional: bool | None = None


class ObjectFieldSelector(KubeModel):
    fieldPath: str
    apiVersion: str | None = None


class ResourceFieldSelector(KubeModel):
    resource: str
    containerName: str | None = None
    divisor: QuantityField | None = None


class EnvVarSource(KubeModel):
    configMapKeyRef: KeySelector | None = None
    secretKeyRef: KeySelector | None = None
    fieldRef: ObjectFieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None


class EnvVar(KubeModel):
    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class LocalRef(KubeModel):
    name: str | None = None
    optional: bool | None = None


class EnvFromSource(KubeModel):
    prefix: str | None = None
    configMapRef: LocalRef | None = None
    secretRef: LocalRef | None = None


class ResourceRequirements(KubeModel):
    requests: dict[str, QuantityField] | None = None
    limits: dict[str, QuantityField] | None = None
    claims: list[dict[str, Any]] | None = None

    def effective_requests(self) -> dict[str, Quantity]:
        """Requests, with limits standing in for requests that are not set (Kubernetes defaulting)."""
        out = dict(self.limits or {})
        out.update(self.requests or {})
        return out


class VolumeMount(KubeModel):
    name: str
    mountPath: str
    readOnly: bool | None = None
    subPath: str | None = None
    subPathExpr: str | None = None
    mountPropagation: str | None = None
    recursiveReadOnly: str | None = None


class ContainerPort(KubeModel):
    containerPort: int = Field(ge=1, le=65535)
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None
    hostPort: int | None = None
    hostIP: str | None = None


class Container(KubeModel):
    name: str
    image: str | None = None
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    workingDir: str | None = None
    env: list[EnvVar] | None = None
    envFrom: list[EnvFromSource] | None = None
    resources: ResourceRequirements | None = None
    volumeMounts: list[VolumeMount] | None = None
    ports: list[ContainerPort] | None = None
    livenessProbe: dict[str, Any] | None = None
    readinessProbe: dict[str, Any] | None = None
    startupProbe: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None
    securityContext: dict[str, Any] | None = None
    restartPolicy: Literal["Always"] | None = None  # sidecar init containers
    stdin: bool | None = None
    tty: bool | None = None
    terminationMessagePath: str | None = None
    terminationMessagePolicy: str | None = None


class KeyToPath(KubeModel):
    key: str
    path: str
    mode: int | None = None


class ConfigMapVolumeSource(KubeModel):
    name: str
    items: list[KeyToPath] | None = None
    defaultMode: int | None = Field(default=None, ge=0, le=0o777)
    optional: bool | None = None


class SecretVolumeSource(KubeModel):
    secretName: str
    items: list[KeyToPath] | None = None
    defaultMode: int | None = Field(default=None, ge=0, le=0o777)
    optional: bool | None = None


class EmptyDirVolumeSource(KubeModel):
    medium: Literal["", "Memory"] | None = None
    sizeLimit: QuantityField | None = None


class HostPathVolumeSource(KubeModel):
    path: str
    type: str | None = None


class PVCVolumeSource(KubeModel):
    claimName: str
    readOnly: bool | None = None


class Volume(KubeModel):
    name: str
    emptyDir: EmptyDirVolumeSource | None = None
    configMap: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    hostPath: HostPathVolumeSource | None = None
    persistentVolumeClaim: PVCVolumeSource | None = None
    projected: dict[str, Any] | None = None
    downwardAPI: dict[str, Any] | None = None
    ephemeral: dict[str, Any] | None = None


RestartPolicy = Literal["Always", "OnFailure", "Never"]


class PodSpec(KubeModel):
    containers: list[Container] = Field(min_length=1)
    initContainers: list[Container] | None = None
    volumes: list[Volume] | None = None
    restartPolicy: RestartPolicy | None = None
    nodeSelector: dict[str, str] | None = None
    nodeName: str | None = None
    tolerations: list[Toleration] | None = None
    affinity: dict[str, Any] | None = None
    schedulerName: str | None = None
    serviceAccountName: str | None = None
    automountServiceAccountToken: bool | None = None
    priorityClassName: str | None = None
    priority: int | None = None
    terminationGracePeriodSeconds: int | None = Field(default=None, ge=0)
    activeDeadlineSeconds: int | None = Field(default=None, ge=1)
    hostNetwork: bool | None = None
    securityContext: dict[str, Any] | None = None
    imagePullSecrets: list[LocalRef] | None = None
    topologySpreadConstraints: list[dict[str, Any]] | None = None
    runtimeClassName: str | None = None
    dnsPolicy: str | None = None
    enableServiceLinks: bool | None = None
    shareProcessNamespace: bool | None = None
    subdomain: str | None = None
    hostname: str | None = None

    def pod_requests(self) -> dict[str, Quantity]:
        """Per-pod requests as Kubernetes computes them: the sum over containers, or the largest
        init container where that is bigger (sidecars add to both)."""
        total: dict[str, Quantity] = {}
        for c in self.containers:
            for name, q in (c.resources.effective_requests() if c.resources else {}).items():
                total[name] = total[name] + q if name in total else q
        for c in self.initContainers or []:
            for name, q in (c.resources.effective_requests() if c.resources else {}).items():
                if name not in total or total[name] < q:
                    total[name] = q
        return total

    def semantic_issues(self, prefix: str) -> list[FieldIssue]:
        issues: list[FieldIssue] = []
        volumes = {v.name for v in self.volumes or []}
        groups = (("containers", self.containers), ("initContainers", self.initContainers or []))
        for group, containers in groups:
            names: set[str] = set()
            for i, c in enumerate(containers):
                where = f"{prefix}.{group}[{i}]"
                if c.name in names:
                    issues.append(FieldIssue(f"{where}.name", f'duplicate container name "{c.name}"'))
                names.add(c.name)
                for j, m in enumerate(c.volumeMounts or []):
                    if m.name not in volumes:
                        issues.append(
                            FieldIssue(
                                f"{where}.volumeMounts[{j}].name",
                                f'volume "{m.name}" is not defined; add it to {prefix}.volumes',
                            )
                        )
                if c.resources:
                    issues.extend(_resource_issues(c.resources, f"{where}.resources"))
        return issues


def is_extended_resource(name: str) -> bool:
    """Domain-qualified resources outside kubernetes.io (nvidia.com/gpu, nvidia.com/mig-1g.5gb)."""
    domain, slash, _ = name.partition("/")
    return bool(slash) and "." in domain and not domain.endswith("kubernetes.io") and not name.startswith("requests.")


def _resource_issues(res: ResourceRequirements, where: str) -> list[FieldIssue]:
    issues = []
    for section in ("requests", "limits"):
        for name, q in (getattr(res, section) or {}).items():
            if q.value < 0:
                issues.append(FieldIssue(f"{where}.{section}[{name}]", f'"{q}" must be greater than or equal to 0'))
    for name, q in (res.requests or {}).items():
        limit = (res.limits or {}).get(name)
        if limit is not None and q > limit:
            issues.append(
                FieldIssue(f"{where}.requests[{name}]", f'"{q}" must be less than or equal to the limit ({limit})')
            )
        if is_extended_resource(name) and (limit is None or q != limit):
            issues.append(
                FieldIssue(
                    f"{where}.requests[{name}]",
                    f"{name} is an extended resource: set it in limits (requests, if set, must equal limits)",
                )
            )
    return issues


class PodTemplateSpec(KubeModel):
    metadata: ObjectMeta | None = None
    spec: PodSpec
