"""Plain-JSON helpers shared by the Kubernetes mode: identity, apply order, deterministic YAML.

Every manifest here is a plain dict (the JSON a cluster's API server takes). The apply order is
Kubernetes' usual dependency order: namespaces and cluster-scoped setup first, identities and
permissions, then queues, then the things that run, then what routes and watches them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

JSON = dict[str, Any]

# (group, kind) -> rank: lower ranks are applied first and deleted last.
APPLY_ORDER: tuple[tuple[str, str], ...] = (
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("", "Namespace"),
    ("", "ServiceAccount"),
    ("", "Secret"),
    ("", "ConfigMap"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("kueue.x-k8s.io", "ResourceFlavor"),
    ("kueue.x-k8s.io", "Topology"),
    ("kueue.x-k8s.io", "WorkloadPriorityClass"),
    ("kueue.x-k8s.io", "Cohort"),
    ("kueue.x-k8s.io", "MultiKueueCluster"),
    ("kueue.x-k8s.io", "MultiKueueConfig"),
    ("kueue.x-k8s.io", "AdmissionCheck"),
    ("kueue.x-k8s.io", "ClusterQueue"),
    ("kueue.x-k8s.io", "LocalQueue"),
    ("", "Service"),
    ("apps", "Deployment"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("inference.networking.k8s.io", "InferencePool"),
    ("inference.networking.x-k8s.io", "InferenceObjective"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "HTTPRoute"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "ServiceMonitor"),
)
_RANK = {key: i for i, key in enumerate(APPLY_ORDER)}
UNKNOWN_RANK = len(APPLY_ORDER)  # kinds not listed go after every listed one


def group_of(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion") or "")
    return api_version.partition("/")[0] if "/" in api_version else ""


def version_of(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion") or "")
    return api_version.rpartition("/")[2]


def kind_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("kind") or "")


def meta(obj: Mapping[str, Any]) -> JSON:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace") or "")


def rank(obj: Mapping[str, Any]) -> int:
    return _RANK.get((group_of(obj), kind_of(obj)), UNKNOWN_RANK)


def identity(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name): what names one object in a cluster."""
    return group_of(obj), kind_of(obj), namespace_of(obj), name_of(obj)


def sort_key(obj: Mapping[str, Any]) -> tuple[int, str, str, str, str]:
    group, kind, namespace, name = identity(obj)
    return rank(obj), group, kind, namespace, name


def in_apply_order(objects: Iterable[JSON]) -> list[JSON]:
    """Objects in dependency order; within a kind by namespace and name (stable, so output diffs well)."""
    return sorted(objects, key=sort_key)


def ref(obj: Mapping[str, Any]) -> str:
    """`Kind/name` or `Kind namespace/name`, as messages name an object."""
    namespace = namespace_of(obj)
    return f"{kind_of(obj)} {namespace}/{name_of(obj)}" if namespace else f"{kind_of(obj)}/{name_of(obj)}"


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors and aliases: a value shared by two fields is written out twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_documents(objects: Iterable[Mapping[str, Any]]) -> str:
    """Multi-document YAML with sorted keys (list order is kept: it carries meaning)."""
    return "---\n".join(
        yaml.dump(dict(o), Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)
        for o in objects
    )


def deep_copy(obj: Mapping[str, Any]) -> JSON:
    return copy.deepcopy(dict(obj))


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    value = meta(obj).get("labels")
    return dict(value) if isinstance(value, dict) else {}


def plural_of(kind: str) -> str:
    """Kubernetes' plural of a kind name, as controller-gen makes it (`Ingress` -> `ingresses`)."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    return lower + "s"
