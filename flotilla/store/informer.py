"""A controller's in-memory view of the store (Kubernetes' informer pattern): the queue
controller and the runtime controller each keep one.

List every object of the kinds admission reads once, then keep the lists current by applying the
store's watch events; when the watch falls behind the event log (`Gone`), list again. The
controller's own writes go in at once (`put`, `remove`), so a pass sees what it wrote; their watch
events come back later with a resourceVersion the cache already has, and are skipped.

Every change to the cache, from the watch or from the controller, goes through one callback,
`on_change(kind, key, old, new)` (old None: added; new None: removed), which is how the controller
keeps its indexes and its set of objects to reconcile. A relist does not call it: `sync()` returns
True and the caller rebuilds what it derives from the cache.

Single consumer: the controller calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flotilla.store import Gone, ResourceType, Store, Watch, WatchEvent

JSON = dict[str, Any]
OnChange = Callable[[str, str, JSON | None, JSON | None], None]


def object_key(obj: Mapping[str, Any], namespaced: bool) -> str:
    """The cache key: "namespace/name" for namespaced kinds, "name" otherwise."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}" if namespaced else str(meta.get("name", ""))


def _revision(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("resourceVersion") or 0)


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class Informer:
    """Every object of `types` ({kind: ResourceType}), keyed as `object_key` does, in `objects`."""

    def __init__(self, store: Store, types: Mapping[str, ResourceType], on_change: OnChange) -> None:
        self.objects: dict[str, dict[str, JSON]] = {kind: {} for kind in types}
        self._store = store
        self._types = dict(types)
        self._kinds = {(rt.group, rt.kind): kind for kind, rt in types.items()}
        self._on_change = on_change
        self._watch: Watch | None = None
        self._written: set[int] = set()  # revisions put() already applied: their events are skipped
        # remove(): "kind:key" -> revision of the deletion, until the watch delivers it: older
        # events of the key must not bring it back.
        self._tombstones: dict[str, int] = {}
        self.relists = 0

    @property
    def started(self) -> bool:
        """True once listed and watching."""
        return self._watch is not None

    def sync(self) -> bool:
        """Apply every event the store has for these kinds; first list everything when not
        watching yet or when the watch fell behind. True when it listed (the caller rebuilds)."""
        listed = False
        if self._watch is None:
            self._relist()
            listed = True
        while True:
            assert self._watch is not None
            try:
                event = self._watch.next_event(0)
            except Gone:
                self._watch.close()
                self._relist()
                listed = True
                continue
            if event is None:
                return listed
            self._apply(event, notify=not listed)

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for one event and apply it. True when the cache changed
        (or must be listed again: the next `sync` does it)."""
        if self._watch is None:
            return True
        try:
            event = self._watch.next_event(timeout)
        except Gone:
            self._watch.close()
            self._watch = None
            return True
        return event is not None and self._apply(event, notify=True)

    def put(self, kind: str, obj: JSON) -> None:
        """The controller wrote `obj` (as the store returned it)."""
        items = self.objects[kind]
        key = object_key(obj, self._types[kind].namespaced)
        old = items.get(key)
        if old is not None and _revision(old) >= _revision(obj):
            return
        items[key] = obj
        self._written.add(_revision(obj))
        self._tombstones.pop(f"{kind}:{key}", None)
        self._on_change(kind, key, old, obj)

    def remove(self, kind: str, obj: Mapping[str, Any]) -> None:
        """The controller deleted `obj` (as the store returned it: its last state, at the
        revision of the deletion)."""
        key = object_key(obj, self._types[kind].namespaced)
        self._tombstones[f"{kind}:{key}"] = _revision(obj)
        old = self.objects[kind].pop(key, None)
        if old is not None:
            self._on_change(kind, key, old, None)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    # -- internals ------------------------------------------------------------------------------
    def _relist(self) -> None:
        """List every kind, then watch from the first list's revision: events the later lists
        already include are skipped by resourceVersion, and a deletion or re-creation between two
        lists still arrives as an event."""
        self.relists += 1
        since: str | None = None
        for kind, rt in self._types.items():
            items, revision = self._store.list(rt)
            since = revision if since is None else since
            self.objects[kind] = {object_key(o, rt.namespaced): o for o in items}
        self._written.clear()
        self._tombstones.clear()
        self._watch = self._store.watch(None, since=since, skip=self._seen)

    def _seen(self, revision: int) -> bool:
        """The watch reached `revision`: skip it if the controller wrote it."""
        if revision in self._written:
            self._written.discard(revision)
            return True
        return False

    def _apply(self, event: WatchEvent, notify: bool) -> bool:
        obj: JSON | None = event.object
        assert obj is not None
        kind = self._kinds.get((_group(str(obj.get("apiVersion", ""))), str(obj.get("kind", ""))))
        if kind is None:
            return False
        items = self.objects[kind]
        key = object_key(obj, self._types[kind].namespaced)
        old = items.get(key)
        revision = int(event.resource_version)
        if old is not None and _revision(old) >= revision:
            return False  # the cache has this version (the controller wrote it) or a newer one
        tombstone = self._tombstones.get(f"{kind}:{key}")
        if old is None and tombstone is not None and revision <= tombstone:
            if revision == tombstone:
                del self._tombstones[f"{kind}:{key}"]
            return False  # the controller deleted it at `tombstone`: this is older, or that
        if event.type == "DELETED":
            if old is None:
                return False
            del items[key]
            obj = None
        else:
            items[key] = obj
        if notify:
            self._on_change(kind, key, old, obj)
        return True
