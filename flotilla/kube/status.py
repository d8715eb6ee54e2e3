"""`flotilla kube status` tables: the columns of `flotilla get` (the registry's printer columns), plus
what only a cluster reports: a ClusterQueue's usage per resource and an InferencePool's readiness
(its Gateways' Accepted and ResolvedRefs conditions)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from flotilla.api.catalog import build_registry, get
from flotilla.api.registry import Column, Kind
from flotilla.kube.cluster import STATUS_KINDS, Status

JSON = dict[str, Any]


def cq_usage(obj: JSON) -> str:
    """`nvidia.com/mig-1g.5gb=3/14,...`: reserved over nominal quota, per resource of every flavor."""
    quota: dict[str, str] = {}
    for group in get(obj, "spec.resourceGroups", []) or []:
        for flavor in group.get("flavors") or []:
            for r in flavor.get("resources") or []:
                quota[f"{flavor.get('name')}/{r.get('name')}"] = str(r.get("nominalQuota"))
    parts = []
    for flavor in get(obj, "status.flavorsReservation", None) or get(obj, "status.flavorsUsage", []) or []:
        for r in flavor.get("resources") or []:
            key = f"{flavor.get('name')}/{r.get('name')}"
            parts.append(f"{r.get('name')}={r.get('total', 0)}/{quota.get(key, '?')}")
    return ",".join(parts) or "-"


def pool_ready(obj: JSON) -> str:
    """`True` when every parent (Gateway) accepted the pool and resolved its references."""
    parents = get(obj, "status.parents", []) or []
    if not parents:
        return "Unknown"
    for parent in parents:
        conditions = {c.get("type"): c.get("status") for c in parent.get("conditions") or []}
        if conditions.get("Accepted") != "True" or conditions.get("ResolvedRefs") != "True":
            return "False"
    return "True"


EXTRA_COLUMNS = {
    ("kueue.x-k8s.io", "ClusterQueue"): (Column("USAGE", cq_usage),),
    ("inference.networking.k8s.io", "InferencePool"): (Column("READY", pool_ready),),
}


def _kind(registry_kind: Kind) -> Kind:
    extra = EXTRA_COLUMNS.get((registry_kind.group, registry_kind.kind), ())
    return dataclasses.replace(registry_kind, columns=registry_kind.columns + extra) if extra else registry_kind


TableRenderer = Callable[[Kind, Iterable[JSON]], str]


def tables(result: Status, render: TableRenderer) -> str:
    """One table per kind, in STATUS_KINDS order, all namespaces; `render` draws one table (the CLI passes
    `flotilla get`'s printer)."""
    registry = build_registry()
    kinds = {(k.group, k.kind): k for k in registry}
    sections = []
    for group, kind_name in STATUS_KINDS:
        items = result.objects.get((group, kind_name))
        if items is None:
            continue
        kind = _kind(kinds[(group, kind_name)])
        title = f"{kind.plural}.{group}" if group else kind.plural
        body = render(kind, items) if items else "No resources found."
        sections.append(f"== {title}\n{body}")
    sections += [f"(unavailable) {line}" for line in result.unavailable]
    return "\n\n".join(sections)
