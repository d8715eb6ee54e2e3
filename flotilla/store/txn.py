"""One write transaction: every state change the store makes, with Kubernetes semantics.

A `WriteTxn` lives inside `BEGIN IMMEDIATE ... COMMIT` (opened and closed by `Store`), so a
read-modify-write such as a patch cannot lose a concurrent update, and a batch is all-or-nothing.
Every change takes the next global revision and appends one row to the event log; rows of the log
are therefore contiguous, which is what lets a watcher detect that it fell behind compaction.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from flotilla.store.errors import AlreadyExists, Conflict, Invalid, StoreError
from flotilla.store.keys import ResourceType
from flotilla.store.objects import (
    GENERATE_NAME_ALPHABET,
    GENERATE_NAME_SUFFIX_LENGTH,
    EventType,
    Obj,
    check_precondition,
    decode,
    describe,
    encode,
    finalizers_of,
    merge_patch,
    metadata_of,
    not_found,
    object_key,
    rfc3339,
    scope_namespace,
    spec_changed,
)

T = TypeVar("T")

_GENERATE_NAME_ATTEMPTS = 16
# Fields the store owns: an update cannot change them, whatever its body says.
_SERVER_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "generation")

_MAX_REVISION = "SELECT max(rv) FROM events"
_SELECT = "SELECT body FROM objects WHERE grp = ? AND kind = ? AND namespace = ? AND name = ?"
_INSERT = "INSERT INTO objects (grp, kind, namespace, name, body) VALUES (?, ?, ?, ?, ?)"
_UPDATE = "UPDATE objects SET body = ? WHERE grp = ? AND kind = ? AND namespace = ? AND name = ?"
_DELETE = "DELETE FROM objects WHERE grp = ? AND kind = ? AND namespace = ? AND name = ?"
_EVENT = "INSERT INTO events (rv, type, grp, kind, namespace, name, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
_TRIM = "DELETE FROM events WHERE rv <= ?"


class WriteTxn:
    """The operations of one open write transaction; see `Store` for the public contract."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], datetime], rng: random.Random) -> None:
        self._conn = conn
        self._clock = clock
        self._rng = rng
        # The log is never empty once written (trimming keeps the newest), so its max is the
        # global revision; reading it inside the write lock makes it safe across processes.
        self.start_revision: int = conn.execute(_MAX_REVISION).fetchone()[0] or 0
        self.revision = self.start_revision

    # -- the operations -------------------------------------------------------------------

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = metadata_of(rt, obj)
        name = meta.get("name")
        namespace = scope_namespace(rt, meta.get("namespace"), name)
        if meta.get("resourceVersion") not in (None, ""):
            raise Invalid(
                f"{describe(rt, namespace, name)}: metadata.resourceVersion must not be set on "
                "create; remove it (or use update/apply for an existing object)",
                kind=rt.kind,
                namespace=namespace,
                name=name if isinstance(name, str) else None,
            )
        new_meta = dict(meta)
        new_meta.pop("deletionTimestamp", None)
        if namespace is None:
            new_meta.pop("namespace", None)
        new_meta["uid"] = str(uuid.uuid4())
        new_meta["creationTimestamp"] = rfc3339(self._clock())
        new_meta["generation"] = 1
        new_meta["resourceVersion"] = str(self.revision + 1)
        new = {**obj, "metadata": new_meta}
        if isinstance(name, str) and name:
            text = self._insert(rt, namespace, name, new)
            if text is None:
                raise AlreadyExists(
                    f"{describe(rt, namespace, name)} already exists; use update or apply to "
                    "change it, or choose another name",
                    kind=rt.kind,
                    namespace=namespace,
                    name=name,
                )
        else:
            name, text = self._insert_generated(rt, namespace, new)
        self._emit(rt, namespace, name, "ADDED", text)
        return decode(text)

    def update(self, rt: ResourceType, obj: Obj) -> Obj:
        namespace, name = object_key(rt, metadata_of(rt, obj))
        old = self._load(rt, namespace, name)
        check_precondition(rt, namespace, name, obj["metadata"].get("resourceVersion"), old)
        return self._replace(rt, namespace, name, old, obj)

    def update_status(self, rt: ResourceType, obj: Obj) -> Obj:
        self._require_status(rt)
        namespace, name = object_key(rt, metadata_of(rt, obj))
        old = self._load(rt, namespace, name)
        check_precondition(rt, namespace, name, obj["metadata"].get("resourceVersion"), old)
        return self._replace_status(rt, namespace, name, old, obj)

    def patch(self, rt: ResourceType, name: str, namespace: str | None, patch: Obj, subresource: str | None) -> Obj:
        if subresource not in (None, "status"):
            raise Invalid(f'{rt.group_kind}: unknown subresource {subresource!r}; use None or "status"')
        if subresource == "status":
            self._require_status(rt)
        ns = scope_namespace(rt, namespace, name)
        if not isinstance(patch, dict):
            raise Invalid(
                f"{describe(rt, ns, name)}: a JSON merge patch must be an object, got {type(patch).__name__}",
                kind=rt.kind,
                namespace=ns,
                name=name,
            )
        old = self._load(rt, ns, name)
        patched = merge_patch(old, patch)
        meta = metadata_of(rt, patched)
        if meta.get("name") != name or (meta.get("namespace") or None) != ns:
            raise Invalid(
                f"{describe(rt, ns, name)}: a patch cannot change metadata.name or "
                "metadata.namespace; create a new object instead",
                kind=rt.kind,
                namespace=ns,
                name=name,
            )
        check_precondition(rt, ns, name, meta.get("resourceVersion"), old)
        if subresource == "status":
            return self._replace_status(rt, ns, name, old, patched)
        return self._replace(rt, ns, name, old, patched)

    def delete(self, rt: ResourceType, name: str, namespace: str | None, resource_version: str | None) -> Obj:
        ns = scope_namespace(rt, namespace, name)
        old = self._load(rt, ns, name)
        check_precondition(rt, ns, name, resource_version, old)
        meta = old["metadata"]
        if finalizers_of(old):
            if meta.get("deletionTimestamp"):
                return old  # already terminating: deleting again changes nothing
            meta["deletionTimestamp"] = rfc3339(self._clock())
            return self._store_change(rt, ns, name, old)
        meta["resourceVersion"] = str(self.revision + 1)
        text = encode(old, rt, ns, name)
        self._conn.execute(_DELETE, (rt.group, rt.kind, ns or "", name))
        self._emit(rt, ns, name, "DELETED", text)
        return old

    def apply(self, rt: ResourceType, obj: Obj) -> tuple[Obj, bool]:
        meta = metadata_of(rt, obj)
        namespace, name = object_key(rt, meta)
        old = self._find(rt, namespace, name)
        if old is None:
            if meta.get("resourceVersion") not in (None, ""):
                raise Conflict(
                    f"{describe(rt, namespace, name)}: the body requires resourceVersion "
                    f"{meta['resourceVersion']!r} but the object does not exist; drop "
                    "metadata.resourceVersion to create it",
                    kind=rt.kind,
                    namespace=namespace,
                    name=name,
                )
            return self.create(rt, obj), True
        check_precondition(rt, namespace, name, meta.get("resourceVersion"), old)
        return self._replace(rt, namespace, name, old, obj), False

    def each(self, items: Sequence[tuple[ResourceType, Obj]], op: Callable[[ResourceType, Obj], T]) -> list[T]:
        """Run `op` on every item; an error names the failing item's index (and aborts all)."""
        results: list[T] = []
        for index, (rt, obj) in enumerate(items):
            try:
                results.append(op(rt, obj))
            except StoreError as exc:
                raise type(exc)(
                    f"items[{index}]: {exc.message}; nothing was stored",
                    kind=exc.kind,
                    namespace=exc.namespace,
                    name=exc.name,
                ) from exc
        return results

    def trim(self, retention: int) -> None:
        """Drop events beyond the newest `retention`, in batches so most writes skip it."""
        step = max(1, min(1000, retention // 10))
        if self.revision // step > self.start_revision // step:
            self._conn.execute(_TRIM, (self.revision - retention,))

    # -- building blocks -------------------------------------------------------------------

    def _replace(self, rt: ResourceType, namespace: str | None, name: str, old: Obj, body: Obj) -> Obj:
        """Whole-object replace of an existing object (update, patch and apply share it)."""
        old_meta = old["metadata"]
        meta = dict(body["metadata"])
        for field in _SERVER_FIELDS:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if namespace is None:
            meta.pop("namespace", None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        new = {**body, "metadata": meta}
        if rt.has_status:  # status subresource: only update_status may change status
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        # Normalise through JSON so the no-op check compares what would be stored.
        new = decode(encode(new, rt, namespace, name))
        if new == old:
            return old  # nothing changed: no write, no new revision (as the Kubernetes API server)
        if old_meta.get("deletionTimestamp"):
            added = [f for f in finalizers_of(new) if f not in finalizers_of(old)]
            if added:
                raise Invalid(
                    f"{describe(rt, namespace, name)} is being deleted: finalizers {added} cannot be "
                    "added now; only remove finalizers",
                    kind=rt.kind,
                    namespace=namespace,
                    name=name,
                )
        if spec_changed(rt, old, new):
            new["metadata"]["generation"] = int(old_meta.get("generation", 0)) + 1
        return self._store_change(rt, namespace, name, new)

    def _replace_status(self, rt: ResourceType, namespace: str | None, name: str, old: Obj, body: Obj) -> Obj:
        new = dict(old)
        if "status" in body:
            new["status"] = body["status"]
        else:
            new.pop("status", None)
        new = decode(encode(new, rt, namespace, name))
        if new == old:
            return old
        return self._store_change(rt, namespace, name, new)

    def _store_change(self, rt: ResourceType, namespace: str | None, name: str, new: Obj) -> Obj:
        """Write a changed existing object, or remove it when its last finalizer is gone."""
        meta = new["metadata"]
        meta["resourceVersion"] = str(self.revision + 1)
        text = encode(new, rt, namespace, name)
        key = (rt.group, rt.kind, namespace or "", name)
        if meta.get("deletionTimestamp") and not finalizers_of(new):
            self._conn.execute(_DELETE, key)
            self._emit(rt, namespace, name, "DELETED", text)
        else:
            self._conn.execute(_UPDATE, (text, *key))
            self._emit(rt, namespace, name, "MODIFIED", text)
        return new

    def _insert(self, rt: ResourceType, namespace: str | None, name: str, obj: Obj) -> str | None:
        """Insert a new object; the stored text, or None if the key is taken."""
        text = encode(obj, rt, namespace, name)
        try:
            self._conn.execute(_INSERT, (rt.group, rt.kind, namespace or "", name, text))
        except sqlite3.IntegrityError:
            return None  # only the objects primary key can clash; the statement alone rolls back
        return text

    def _insert_generated(self, rt: ResourceType, namespace: str | None, new: Obj) -> tuple[str, str]:
        meta = new["metadata"]
        prefix = meta.get("generateName")
        if not isinstance(prefix, str) or not prefix:
            raise Invalid(
                f"{rt.group_kind}: set metadata.name, or metadata.generateName for a generated one",
                kind=rt.kind,
                namespace=namespace,
            )
        rest = {k: v for k, v in meta.items() if k != "name"}
        for _ in range(_GENERATE_NAME_ATTEMPTS):
            suffix = self._rng.choices(GENERATE_NAME_ALPHABET, k=GENERATE_NAME_SUFFIX_LENGTH)
            name = prefix + "".join(suffix)
            new["metadata"] = {"name": name, **rest}
            text = self._insert(rt, namespace, name, new)
            if text is not None:
                return name, text
        raise AlreadyExists(
            f"{rt.group_kind}: no free name from generateName {prefix!r} after "
            f"{_GENERATE_NAME_ATTEMPTS} tries; use a more specific prefix or set metadata.name",
            kind=rt.kind,
            namespace=namespace,
        )

    def _find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        row = self._conn.execute(_SELECT, (rt.group, rt.kind, namespace or "", name)).fetchone()
        return None if row is None else decode(row[0])

    def _load(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        found = self._find(rt, namespace, name)
        if found is None:
            raise not_found(rt, namespace, name)
        return found

    def _emit(self, rt: ResourceType, namespace: str | None, name: str, type_: EventType, text: str) -> None:
        self.revision += 1
        self._conn.execute(_EVENT, (self.revision, type_, rt.group, rt.kind, namespace or "", name, text))

    @staticmethod
    def _require_status(rt: ResourceType) -> None:
        if not rt.has_status:
            raise Invalid(
                f"{rt.group_kind} has no status subresource; change status with update() instead",
                kind=rt.kind,
            )
