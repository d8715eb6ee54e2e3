"""The resource service: validation, version conversion and defaulting in front of the store.

Both the HTTP API (`flotilla.server`) and in-process drivers (the queue controller) go through
this layer, so every write is validated the same way and stored in its kind's internal version.
It sits with the store, below the policies and drivers, so that a driver never imports the server.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from flotilla.api.errors import FieldIssue, ManifestError, ManifestErrors
from flotilla.api.loader import decode, encode
from flotilla.api.registry import Kind, Registry, UnknownKind
from flotilla.store import AlreadyExists, NotFound, ResourceType, Store, Watch, merge_patch

JSON = dict[str, Any]

# Apply order: what other objects refer to comes first (namespaces before what lives in them,
# flavors and cohorts before queues, queues before jobs).
APPLY_ORDER = (
    "Namespace",
    "ResourceFlavor",
    "Cohort",
    "WorkloadPriorityClass",
    "ClusterQueue",
    "LocalQueue",
    "ConfigMap",
    "Secret",
    "Node",
    "InferencePool",
    "InferenceObjective",
)


def resource_type(kind: Kind) -> ResourceType:
    return ResourceType(kind.group, kind.internal.name, kind.kind, kind.plural, kind.namespaced, kind.has_status)


def _apply_rank(kind: Kind) -> int:
    return APPLY_ORDER.index(kind.kind) if kind.kind in APPLY_ORDER else len(APPLY_ORDER)


def _normalize_secret(body: JSON) -> JSON:
    """Kubernetes folds stringData into base64 data on write and never returns stringData."""
    string_data = body.pop("stringData", None)
    if string_data:
        data = dict(body.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
        body["data"] = data
    return body


def _same_apart_from_status(old: JSON | None, saved: JSON) -> bool:
    """Whether an apply left the object as it was. Status and resourceVersion are ignored: a
    controller may have written status between the read of `old` and the apply."""
    if old is None:
        return False

    def strip(obj: JSON) -> JSON:
        meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}

    return strip(old) == strip(saved)


class WriteHook(Protocol):
    """A mutating admission hook (like a Kubernetes mutating webhook) for some kinds.

    `mutate` changes a validated object in place before it is stored; `old` is the stored object
    on update, patch and apply of an existing object, None on create. Hooks run for writes made
    through the service (API and CLI), not for controllers writing to the store directly, and
    must keep the object valid.
    """

    kinds: frozenset[str]

    def mutate(self, obj: JSON, old: JSON | None) -> None: ...


@dataclass(frozen=True)
class ApplyResult:
    kind: Kind
    object: JSON
    action: str  # "created", "configured" or "unchanged"

    @property
    def ref(self) -> str:
        return f"{self.kind.singular}.{self.kind.group}/{self.object['metadata']['name']}".replace("./", "/")


class ResourceService:
    """Validated CRUD over the store, in any served version of a kind."""

    DEFAULT_NAMESPACE = "default"

    def __init__(self, store: Store, registry: Registry, hooks: Iterable[WriteHook] = ()) -> None:
        self.store = store
        self.registry = registry
        self.hooks: list[WriteHook] = list(hooks)

    def add_hook(self, hook: WriteHook) -> None:
        """Run `hook` on every write of its kinds from now on."""
        self.hooks.append(hook)

    def _mutate(self, kind: Kind, obj: JSON, old: JSON | None) -> None:
        for hook in self.hooks:
            if kind.kind in hook.kinds:
                hook.mutate(obj, old)

    def _current(self, kind: Kind, obj: JSON) -> JSON | None:
        meta = obj.get("metadata") or {}
        if not meta.get("name"):
            return None
        try:
            return self.store.get(resource_type(kind), meta["name"], meta.get("namespace"))
        except NotFound:
            return None

    # -- helpers -----------------------------------------------------------------------------------
    def kind_for(self, group: str, version: str, plural: str) -> Kind:
        kind = self.registry.by_plural(group, plural)
        if kind.version(version) is None:
            raise UnknownKind(f'{kind.kind} is not served in version "{version}"')
        return kind

    def validate(self, body: Any, kind: Kind | None = None, source: str = "request body") -> tuple[Kind, JSON]:
        """Validate a document; return its kind and internal-version JSON, or raise ManifestErrors."""
        loaded = decode(body, self.registry, source)
        if kind is not None and loaded.kind is not kind:
            raise ManifestErrors(
                [
                    ManifestError(
                        source,
                        1,
                        loaded.kind.kind,
                        loaded.obj.name,
                        (FieldIssue("kind", f"expected kind {kind.kind} at this URL, got {loaded.kind.kind}"),),
                    )
                ]
            )
        out = loaded.obj.to_dict()
        if loaded.kind.kind == "Secret":
            out = _normalize_secret(out)
        return loaded.kind, out

    def _check_namespace(self, kind: Kind, body: JSON) -> None:
        ns = body["metadata"].get("namespace")
        if not kind.namespaced:
            return
        if not ns:
            body["metadata"]["namespace"] = ns = self.DEFAULT_NAMESPACE
        ns_kind = self.registry.resolve("namespaces")
        try:
            self.store.get(resource_type(ns_kind), ns)
        except NotFound:
            raise NotFound(
                f'namespace "{ns}" not found; create it first (apply a manifest with kind: Namespace, '
                f"metadata.name: {ns})",
                kind="Namespace",
                name=ns,
            ) from None

    def out(self, kind: Kind, obj: JSON, version: str | None = None) -> JSON:
        return encode(obj, kind, version)

    # -- reads -----------------------------------------------------------------------------------
    def get(self, kind: Kind, name: str, namespace: str | None = None, version: str | None = None) -> JSON:
        return self.out(kind, self.store.get(resource_type(kind), name, namespace), version)

    def list_objects(
        self,
        kind: Kind,
        namespace: str | None = None,
        selector: Callable[[dict[str, str]], bool] | None = None,
        version: str | None = None,
    ) -> tuple[list[JSON], str]:
        items, rv = self.store.list(resource_type(kind), namespace, selector)
        return [self.out(kind, o, version) for o in items], rv

    def watch(self, kind: Kind, namespace: str | None = None, since: str | None = None) -> Watch:
        return self.store.watch(resource_type(kind), namespace, since)

    # -- writes ----------------------------------------------------------------------------------
    def create(self, body: Any, kind: Kind | None = None, namespace: str | None = None) -> JSON:
        kind, obj = self.validate(body, kind)
        if namespace and kind.namespaced:
            obj["metadata"].setdefault("namespace", namespace)
        self._check_namespace(kind, obj)
        self._mutate(kind, obj, None)
        return self.store.create(resource_type(kind), obj)

    def update(self, body: Any, kind: Kind | None = None) -> JSON:
        kind, obj = self.validate(body, kind)
        self._check_namespace(kind, obj)
        if any(kind.kind in h.kinds for h in self.hooks):
            self._mutate(kind, obj, self._current(kind, obj))
        return self.store.update(resource_type(kind), obj)

    def update_status(self, body: Any, kind: Kind | None = None) -> JSON:
        kind, obj = self.validate(body, kind)
        return self.store.update_status(resource_type(kind), obj)

    def patch(self, kind: Kind, name: str, namespace: str | None, patch: JSON, subresource: str | None = None) -> JSON:
        """JSON merge patch. The merged object is validated like any write, and written only if
        nobody changed the object in between (its resourceVersion is the one patched)."""
        rt = resource_type(kind)
        current = self.store.get(rt, name, namespace)
        if not isinstance(patch, dict):
            raise ManifestErrors(
                [ManifestError("patch", 1, kind.kind, name, (FieldIssue("", "a merge patch must be an object"),))]
            )
        merged = merge_patch(current, patch)
        for fixed in ("name", "namespace", "uid"):
            merged.setdefault("metadata", {})[fixed] = current["metadata"].get(fixed)
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        _, obj = self.validate(merged, kind)
        if subresource == "status":
            return self.store.update_status(rt, obj)
        self._mutate(kind, obj, current)
        return self.store.update(rt, obj)

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> JSON:
        if kind.kind == "Namespace":
            self._delete_namespace_contents(name)
        return self.store.delete(resource_type(kind), name, namespace)

    def _delete_namespace_contents(self, namespace: str) -> None:
        for kind in self.registry:
            if kind.namespaced:
                rt = resource_type(kind)
                for obj in self.store.list(rt, namespace)[0]:
                    self.store.delete(rt, obj["metadata"]["name"], namespace)

    def apply_many(
        self, documents: Iterable[tuple[str, int, Any]], default_namespace: str | None = None
    ) -> list[ApplyResult]:
        """Create or update every document, or nothing: all are validated before any is written,
        and all are written in one transaction. Documents are (source, index, body)."""
        validated: list[tuple[Kind, JSON]] = []
        errors: list[ManifestError] = []
        for source, index, body in documents:
            try:
                loaded = decode(body, self.registry, source, index)
            except ManifestErrors as exc:
                errors.extend(exc.errors)
                continue
            obj = loaded.obj.to_dict()
            if loaded.kind.kind == "Secret":
                obj = _normalize_secret(obj)
            if loaded.kind.namespaced and not obj["metadata"].get("namespace"):
                obj["metadata"]["namespace"] = default_namespace or self.DEFAULT_NAMESPACE
            if not obj["metadata"].get("name"):
                errors.append(
                    ManifestError(
                        source,
                        index,
                        loaded.kind.kind,
                        None,
                        (FieldIssue("metadata.name", "apply needs metadata.name (generateName is for create)"),),
                    )
                )
                continue
            validated.append((loaded.kind, obj))
        if errors:
            raise ManifestErrors(errors)
        validated.sort(key=lambda pair: _apply_rank(pair[0]))
        self._check_namespaces_exist(validated)
        before = {}
        for kind, obj in validated:
            with contextlib.suppress(NotFound):
                before[(kind.kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = self.store.get(
                    resource_type(kind), obj["metadata"]["name"], obj["metadata"].get("namespace")
                )
        for kind, obj in validated:
            meta = obj["metadata"]
            self._mutate(kind, obj, before.get((kind.kind, meta.get("namespace"), meta["name"])))
        stored = self.store.apply_many([(resource_type(k), o) for k, o in validated])
        results = []
        for (kind, obj), (saved, created) in zip(validated, stored, strict=True):
            key = (kind.kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            old = before.get(key)
            action = "created" if created else ("unchanged" if _same_apart_from_status(old, saved) else "configured")
            results.append(ApplyResult(kind, saved, action))
        return results

    def _check_namespaces_exist(self, validated: list[tuple[Kind, JSON]]) -> None:
        incoming = {o["metadata"]["name"] for k, o in validated if k.kind == "Namespace"}
        ns_rt = resource_type(self.registry.resolve("namespaces"))
        missing: dict[str, None] = {}
        for kind, obj in validated:
            ns = obj["metadata"].get("namespace")
            if kind.namespaced and ns not in incoming and ns not in missing:
                try:
                    self.store.get(ns_rt, ns)
                except NotFound:
                    missing[ns] = None
        if missing:
            names = ", ".join(f'"{n}"' for n in missing)
            raise NotFound(
                f"namespace {names} not found; create it first or add a Namespace document "
                "(kind: Namespace) to what you apply",
                kind="Namespace",
                name=next(iter(missing)),
            )

    def ensure_namespace(self, name: str) -> None:
        ns_kind = self.registry.resolve("namespaces")
        with contextlib.suppress(AlreadyExists):
            self.store.create(
                resource_type(ns_kind),
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name},
                    "status": {"phase": "Active"},
                },
            )
