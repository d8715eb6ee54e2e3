"""Shared building blocks of every resource: strict models, ObjectMeta, selectors, conditions.

Field names keep Kubernetes' camelCase spelling so that YAML maps onto models one to one.
Every model forbids unknown fields, as a strict API server does.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flotilla.api.errors import FieldIssue
from flotilla.api.labels import Selector, selector_from_object

# RFC 1123 subdomain (object names) and label (namespaces), as Kubernetes validates them.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KubeModel(BaseModel):
    """Base of every API model: unknown fields are errors; values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form users write (camelCase, unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class OwnerReference(KubeModel):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    blockOwnerDeletion: bool | None = None


class ObjectMeta(KubeModel):
    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    deletionGracePeriodSeconds: int | None = None
    finalizers: list[str] | None = None
    ownerReferences: list[OwnerReference] | None = None

    @field_validator("name")
    @classmethod
    def _name_is_dns_subdomain(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 253 or not DNS_SUBDOMAIN.match(v)):
            raise ValueError(
                f'"{v}" is not a valid name: use lower-case letters, digits, "-" and ".", '
                "starting and ending with a letter or digit (at most 253 characters)"
            )
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace_is_dns_label(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 63 or not DNS_LABEL.match(v)):
            raise ValueError(
                f'"{v}" is not a valid namespace: use lower-case letters, digits and "-", '
                "starting and ending with a letter or digit (at most 63 characters)"
            )
        return v


class LabelSelectorRequirement(KubeModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(KubeModel):
    """metav1.LabelSelector. Note: an empty selector `{}` matches everything."""

    matchLabels: dict[str, str] | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None

    def to_selector(self) -> Selector:
        return selector_from_object(
            self.matchLabels,
            [(e.key, e.operator, e.values or []) for e in self.matchExpressions or []],
        )


class Condition(KubeModel):
    """metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: str | None = None
    observedGeneration: int | None = None


class ProbedCondition(Condition):
    """A core/batch condition (JobCondition, PodCondition): metav1.Condition plus lastProbeTime."""

    lastProbeTime: str | None = None


TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Taint(KubeModel):
    key: str
    value: str | None = None
    effect: TaintEffect
    timeAdded: str | None = None


class Toleration(KubeModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: TaintEffect | None = None
    tolerationSeconds: int | None = None

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' ToleratesTaint: empty key with Exists tolerates everything."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if (self.operator or "Equal") == "Exists":
            return True
        return (self.value or "") == (taint.value or "")


class Resource(KubeModel):
    """A top-level object: apiVersion, kind, metadata. Subclasses add spec and status."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    def validate_semantics(self) -> list[FieldIssue]:
        """Checks that span fields (the CRDs' CEL rules); paths are relative to the object."""
        return []

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.labels or {}

    @property
    def annotations(self) -> dict[str, str]:
        return self.metadata.annotations or {}
