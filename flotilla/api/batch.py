"""batch/v1 Job: the parts users write, with Kubernetes' defaults and Kueue's labels."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flotilla.api.base import KubeModel, ProbedCondition, Resource
from flotilla.api.errors import FieldIssue
from flotilla.api.pod import PodTemplateSpec

QUEUE_NAME_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
MIN_PARALLELISM_ANNOTATION = "kueue.x-k8s.io/job-min-parallelism"


class JobSpec(KubeModel):
    template: PodTemplateSpec
    parallelism: int = Field(default=1, ge=0)
    completions: int | None = Field(default=None, ge=0)
    completionMode: Literal["NonIndexed", "Indexed"] = "NonIndexed"
    backoffLimit: int = Field(default=6, ge=0)
    backoffLimitPerIndex: int | None = Field(default=None, ge=0)
    maxFailedIndexes: int | None = Field(default=None, ge=0)
    activeDeadlineSeconds: int | None = Field(default=None, ge=1)
    ttlSecondsAfterFinished: int | None = Field(default=None, ge=0)
    suspend: bool = False
    manualSelector: bool | None = None
    selector: dict[str, Any] | None = None
    podFailurePolicy: dict[str, Any] | None = None
    successPolicy: dict[str, Any] | None = None
    podReplacementPolicy: Literal["TerminatingOrFailed", "Failed"] | None = None
    managedBy: str | None = None


class JobStatus(KubeModel):
    conditions: list[ProbedCondition] | None = None
    startTime: str | None = None
    completionTime: str | None = None
    active: int | None = None
    ready: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    terminating: int | None = None
    completedIndexes: str | None = None
    failedIndexes: str | None = None


class Job(Resource):
    spec: JobSpec
    status: JobStatus | None = None

    @property
    def queue_name(self) -> str | None:
        return self.labels.get(QUEUE_NAME_LABEL)

    def validate_semantics(self) -> list[FieldIssue]:
        spec = self.spec
        issues = spec.template.spec.semantic_issues("spec.template.spec")
        policy = spec.template.spec.restartPolicy
        if policy not in ("Never", "OnFailure"):
            message = (
                f'"{policy}" is not allowed for a Job; use Never or OnFailure'
                if policy
                else "required for a Job (the Pod default, Always, is not allowed); set Never or OnFailure"
            )
            issues.append(FieldIssue("spec.template.spec.restartPolicy", message))
        if spec.completionMode == "Indexed" and spec.completions is None:
            issues.append(FieldIssue("spec.completions", "required when completionMode is Indexed; set it"))
        if spec.backoffLimitPerIndex is not None and spec.completionMode != "Indexed":
            issues.append(FieldIssue("spec.backoffLimitPerIndex", "only allowed when completionMode is Indexed"))
        raw = self.annotations.get(MIN_PARALLELISM_ANNOTATION)
        if raw is not None:
            if not raw.isdigit() or int(raw) < 1:
                issues.append(
                    FieldIssue(
                        f"metadata.annotations[{MIN_PARALLELISM_ANNOTATION}]",
                        f'"{raw}" is not a positive integer',
                    )
                )
            elif int(raw) >= spec.parallelism:
                issues.append(
                    FieldIssue(
                        f"metadata.annotations[{MIN_PARALLELISM_ANNOTATION}]",
                        f"must be less than spec.parallelism ({spec.parallelism})",
                    )
                )
        return issues
