"""Least-privilege RBAC for Flotilla's cluster components: one ServiceAccount each, and only the verbs
on the resources it reads or writes (namespaced Roles where the component works in one namespace)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flotilla.kube.objects import JSON

RBAC_API = "rbac.authorization.k8s.io/v1"
READ = ("get", "list", "watch")


@dataclass(frozen=True)
class Rule:
    """One PolicyRule: `verbs` on `resources` of `group` (core group: "")."""

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def to_dict(self) -> JSON:
        return {"apiGroups": [self.group], "resources": list(self.resources), "verbs": list(self.verbs)}


def service_account(name: str, namespace: str, labels: dict[str, str]) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "automountServiceAccountToken": True,
    }


def role(name: str, namespace: str | None, rules: Sequence[Rule], labels: dict[str, str]) -> JSON:
    """A Role in `namespace`, or a ClusterRole when `namespace` is None."""
    metadata: JSON = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": RBAC_API,
        "kind": "Role" if namespace is not None else "ClusterRole",
        "metadata": metadata,
        "rules": [r.to_dict() for r in rules],
    }


def binding(
    name: str, namespace: str | None, role_name: str, subjects: Sequence[tuple[str, str]], labels: dict[str, str]
) -> JSON:
    """A RoleBinding (or, without a namespace, a ClusterRoleBinding) of ServiceAccounts (namespace, name)."""
    metadata: JSON = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding" if namespace is not None else "ClusterRoleBinding",
        "metadata": metadata,
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role" if namespace is not None else "ClusterRole",
            "name": role_name,
        },
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns} for ns, sa in sorted(set(subjects))],
    }
