"""kubectl-style output: tables, YAML/JSON, names, and `describe`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

from flotilla.api.registry import Kind

JSON = dict[str, Any]
NONE = "<none>"


def redact(kind: Kind, obj: JSON) -> JSON:
    """Replace values of sensitive fields (Secret data) by their size: they are never printed."""
    if not kind.sensitive_fields:
        return obj
    out = dict(obj)
    for field in kind.sensitive_fields:
        if isinstance(out.get(field), dict):
            out[field] = {k: f"<redacted: {len(str(v))} bytes>" for k, v in out[field].items()}
    return out


def _cell(value: Any) -> str:
    if value is None or value == "":
        return NONE
    return str(value)


def table(kind: Kind, items: Iterable[JSON], *, wide: bool = False, all_namespaces: bool = False) -> str:
    """Columns like `kubectl get`: NAME first, NAMESPACE before it with -A, wide columns with -o wide."""
    columns = [c for c in kind.columns if wide or not c.wide]
    header = (["NAMESPACE"] if all_namespaces and kind.namespaced else []) + ["NAME"] + [c.name for c in columns]
    rows = []
    for obj in items:
        meta = obj.get("metadata", {})
        row = [meta.get("namespace", "")] if all_namespaces and kind.namespaced else []
        row.append(meta.get("name", ""))
        row.extend(_cell(c.value(obj)) for c in columns)
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["   ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def as_list(items: list[JSON]) -> JSON:
    """What `kubectl get -o json` prints for several objects."""
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def dump(obj: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4)
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip("\n")


def describe(kind: Kind, obj: JSON) -> str:
    """A human-readable view, in the spirit of `kubectl describe`."""
    obj = redact(kind, obj)
    meta = obj.get("metadata", {})
    lines = [
        f"Name:         {meta.get('name')}",
    ]
    if kind.namespaced:
        lines.append(f"Namespace:    {meta.get('namespace')}")
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    lines.append("Labels:       " + (("\n" + " " * 14).join(f"{k}={v}" for k, v in sorted(labels.items())) or NONE))
    lines.append(
        "Annotations:  " + (("\n" + " " * 14).join(f"{k}: {v}" for k, v in sorted(annotations.items())) or NONE)
    )
    lines.append(f"API Version:  {obj.get('apiVersion')}")
    lines.append(f"Kind:         {obj.get('kind')}")
    lines.append(f"Created:      {meta.get('creationTimestamp')}")
    if meta.get("deletionTimestamp"):
        lines.append(f"Deleting:     since {meta['deletionTimestamp']} (finalizers: {meta.get('finalizers')})")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    if body:
        lines.append(_section(body))
    status = dict(obj.get("status") or {})
    conditions = status.pop("conditions", None)
    if status:
        lines.append(_section({"status": status}))
    if conditions:
        lines.append("Conditions:")
        lines.append(_conditions(conditions))
    return "\n".join(lines)


def _section(data: JSON) -> str:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")
    # Title-case top-level keys the way kubectl describe does ("spec:" -> "Spec:").
    return "\n".join(
        (line[0].upper() + line[1:]) if line and not line[0].isspace() else line for line in text.splitlines()
    )


def _conditions(conditions: list[JSON]) -> str:
    header = ["Type", "Status", "Reason", "Message"]
    rows = [[c.get("type", ""), c.get("status", ""), c.get("reason") or "", c.get("message") or ""] for c in conditions]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    return "\n".join(
        "  " + "   ".join(str(v).ljust(w) for v, w in zip(r[:3], widths, strict=True)) + "   " + r[3]
        for r in [header, *rows]
    )
