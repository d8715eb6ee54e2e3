"""apps/v1 Deployment: long-running pods (model servers) kept at a number of ready replicas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flotilla.api.base import KubeModel, LabelSelector, ProbedCondition, Resource
from flotilla.api.errors import FieldIssue
from flotilla.api.pod import PodTemplateSpec

IntOrPercent = int | str


class RollingUpdate(KubeModel):
    maxSurge: IntOrPercent | None = None
    maxUnavailable: IntOrPercent | None = None


class DeploymentStrategy(KubeModel):
    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    rollingUpdate: RollingUpdate | None = None


class DeploymentSpec(KubeModel):
    replicas: int = Field(default=1, ge=0)
    selector: LabelSelector
    template: PodTemplateSpec
    strategy: DeploymentStrategy = Field(default_factory=DeploymentStrategy)
    minReadySeconds: int = Field(default=0, ge=0)
    revisionHistoryLimit: int | None = Field(default=None, ge=0)
    progressDeadlineSeconds: int | None = Field(default=None, ge=1)
    paused: bool | None = None


class DeploymentCondition(ProbedCondition):
    lastUpdateTime: str | None = None


class DeploymentStatus(KubeModel):
    observedGeneration: int | None = None
    replicas: int | None = None
    updatedReplicas: int | None = None
    readyReplicas: int | None = None
    availableReplicas: int | None = None
    unavailableReplicas: int | None = None
    terminatingReplicas: int | None = None
    collisionCount: int | None = None
    conditions: list[DeploymentCondition] | None = None


class Deployment(Resource):
    spec: DeploymentSpec
    status: DeploymentStatus | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        spec = self.spec
        issues = spec.template.spec.semantic_issues("spec.template.spec")
        policy = spec.template.spec.restartPolicy
        if policy not in (None, "Always"):
            issues.append(
                FieldIssue(
                    "spec.template.spec.restartPolicy", f'"{policy}" is not allowed for a Deployment; use Always'
                )
            )
        selector = spec.selector
        if not selector.matchLabels and not selector.matchExpressions:
            issues.append(FieldIssue("spec.selector", "empty selector is invalid for deployment; set matchLabels"))
        else:
            labels = (spec.template.metadata.labels if spec.template.metadata else None) or {}
            if not selector.to_selector().matches(labels):
                issues.append(
                    FieldIssue(
                        "spec.template.metadata.labels",
                        "`selector` does not match template `labels`; give the template the selector's labels",
                    )
                )
        for name in ("maxSurge", "maxUnavailable"):
            value: Any = getattr(spec.strategy.rollingUpdate, name, None) if spec.strategy.rollingUpdate else None
            if isinstance(value, str) and not (value.endswith("%") and value[:-1].isdigit()):
                issues.append(
                    FieldIssue(f"spec.strategy.rollingUpdate.{name}", f'"{value}" must be an integer or a percentage')
                )
        return issues
