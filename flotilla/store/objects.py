"""Pure helpers over Kubernetes-shaped object dicts: keys, metadata rules, JSON merge patch.

Nothing here touches SQLite; the write transaction (`txn.py`) composes these.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from flotilla.store.errors import Conflict, Invalid, NotFound
from flotilla.store.keys import ResourceType

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]

# Kubernetes' generateName alphabet: no vowels (no accidental words), no look-alikes (0/o, 1/l).
GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
GENERATE_NAME_SUFFIX_LENGTH = 5

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def describe(rt: ResourceType, namespace: str | None, name: str | None) -> str:
    """'Kind.group "namespace/name"', the way messages name an object."""
    if name is None:
        return rt.group_kind
    return f'{rt.group_kind} "{namespace}/{name}"' if namespace else f'{rt.group_kind} "{name}"'


def encode(obj: Obj, rt: ResourceType, namespace: str | None, name: str | None) -> str:
    """Compact JSON text of an object; Invalid if it is not plain JSON (NaN, sets, objects...)."""
    try:
        return _encoder.encode(obj)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"{describe(rt, namespace, name)}: the object is not plain JSON ({exc}); "
            "use only dicts, lists, strings, finite numbers, booleans and null",
            kind=rt.kind,
            namespace=namespace,
            name=name,
        ) from exc


def decode(text: str) -> Obj:
    """Parse stored JSON text back into a fresh dict."""
    obj: Obj = json.loads(text)
    return obj


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC timestamp with second precision, as Kubernetes writes metadata times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata_of(rt: ResourceType, obj: object) -> Obj:
    """The object's metadata dict; Invalid unless the object is a dict with a dict `metadata`."""
    if not isinstance(obj, dict):
        raise Invalid(f"{rt.group_kind}: an object must be a JSON object, got {type(obj).__name__}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise Invalid(f"{rt.group_kind}: metadata must be an object with at least a name")
    if "kind" in obj and obj["kind"] != rt.kind:
        raise Invalid(f"{rt.group_kind}: the body says kind {obj['kind']!r}; send it to that kind instead")
    return meta


def scope_namespace(rt: ResourceType, namespace: object, name: object = None) -> str | None:
    """Check a namespace against the kind's scope: required iff namespaced, else absent."""
    if namespace == "":
        namespace = None
    if rt.namespaced:
        if namespace is None:
            raise Invalid(
                f'{rt.group_kind} is namespaced: set metadata.namespace (e.g. "default")',
                kind=rt.kind,
                name=name if isinstance(name, str) else None,
            )
        if not isinstance(namespace, str):
            raise Invalid(f"{rt.group_kind}: metadata.namespace must be a string", kind=rt.kind)
        return namespace
    if namespace is not None:
        raise Invalid(
            f"{rt.group_kind} is cluster-scoped: remove metadata.namespace ({namespace!r})",
            kind=rt.kind,
            name=name if isinstance(name, str) else None,
        )
    return None


def object_key(rt: ResourceType, meta: Obj) -> tuple[str | None, str]:
    """(namespace, name) of an object that must already be named."""
    name = meta.get("name")
    namespace = scope_namespace(rt, meta.get("namespace"), name)
    if not isinstance(name, str) or not name:
        raise Invalid(f"{rt.group_kind}: metadata.name is required", kind=rt.kind, namespace=namespace)
    return namespace, name


def not_found(rt: ResourceType, namespace: str | None, name: str) -> NotFound:
    """NotFound naming the object and what to do."""
    return NotFound(
        f"{describe(rt, namespace, name)} not found; check the name and namespace, or create it first",
        kind=rt.kind,
        namespace=namespace,
        name=name,
    )


def check_precondition(rt: ResourceType, namespace: str | None, name: str, wanted: object, current: Obj) -> None:
    """Conflict unless `wanted` is empty (unconditional) or equals the stored resourceVersion."""
    if wanted is None or wanted == "":
        return
    have = current["metadata"]["resourceVersion"]
    if str(wanted) != have:
        raise Conflict(
            f"{describe(rt, namespace, name)}: resourceVersion {str(wanted)!r} is stale (the stored "
            f"object is at {have!r}); get the object again, reapply your change and retry",
            kind=rt.kind,
            namespace=namespace,
            name=name,
        )


def finalizers_of(obj: Obj) -> list[Any]:
    """metadata.finalizers, or [] when absent or null."""
    found = obj["metadata"].get("finalizers")
    return list(found) if isinstance(found, list) else []


def spec_changed(rt: ResourceType, old: Obj, new: Obj) -> bool:
    """Whether anything that bumps metadata.generation differs between two objects.

    Metadata never counts. Status does not count for kinds with a status subresource; for kinds
    without one every non-metadata change counts, as for Kubernetes CRDs without /status.
    """
    ignored = ("metadata", "status") if rt.has_status else ("metadata",)
    keys = (old.keys() | new.keys()).difference(ignored)
    return any(old.get(k) != new.get(k) for k in keys)


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch; returns a new value and mutates neither argument.

    A null member deletes the key, an object member merges recursively, anything else (arrays
    included) replaces the target's value whole.
    """
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
