"""The embedded state store: Kubernetes-like objects, resourceVersions and watches on SQLite.

    from flotilla.store import ResourceType, Store

    widgets = ResourceType("example.com", "v1", "Widget", "widgets", namespaced=True)
    with Store.open(".flotilla/state.db") as store:
        created = store.create(widgets, {"metadata": {"name": "a", "namespace": "default"}})
        items, rv = store.list(widgets)
        with store.watch(widgets, since=rv) as w:
            event = w.next_event(timeout=1.0)

The store itself is schema-agnostic and stdlib-only, so importing it is cheap. Bodies are
validated by `flotilla.store.service.ResourceService` (imported on its own), the layer every writer
goes through: the HTTP API and the in-process controllers alike.
"""

from flotilla.store.db import SCHEMA_VERSION
from flotilla.store.errors import AlreadyExists, Conflict, Gone, Invalid, NotFound, StoreError
from flotilla.store.keys import ResourceType
from flotilla.store.objects import GENERATE_NAME_ALPHABET, EventType, merge_patch
from flotilla.store.sqlite import LabelSelector, Store
from flotilla.store.watch import Watch, WatchEvent

__all__ = [
    "GENERATE_NAME_ALPHABET",
    "SCHEMA_VERSION",
    "AlreadyExists",
    "Conflict",
    "EventType",
    "Gone",
    "Invalid",
    "LabelSelector",
    "NotFound",
    "ResourceType",
    "Store",
    "StoreError",
    "Watch",
    "WatchEvent",
    "merge_patch",
]
