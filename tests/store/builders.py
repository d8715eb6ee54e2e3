"""Fluent builders and fakes shared by the store tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from flotilla.store import ResourceType

WIDGET = ResourceType("example.com", "v1", "Widget", "widgets", namespaced=True)
# Same kind name in another group: a different resource to the store.
OTHER_WIDGET = ResourceType("other.example.com", "v1", "Widget", "widgets", namespaced=True)
NODE = ResourceType("", "v1", "Node", "nodes", namespaced=False)
SETTING = ResourceType("example.com", "v1", "Setting", "settings", namespaced=True, has_status=False)


class ObjectBuilder:
    """`widget("a").labels(app="web").spec(replicas=2).build()`"""

    def __init__(self, rt: ResourceType, name: str) -> None:
        meta: dict[str, Any] = {"name": name}
        if rt.namespaced:
            meta["namespace"] = "default"
        self._obj: dict[str, Any] = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": meta}

    def ns(self, namespace: str | None) -> Self:
        if namespace is None:
            self._obj["metadata"].pop("namespace", None)
        else:
            self._obj["metadata"]["namespace"] = namespace
        return self

    def generate(self, prefix: str) -> Self:
        self._obj["metadata"].pop("name", None)
        self._obj["metadata"]["generateName"] = prefix
        return self

    def labels(self, **labels: str) -> Self:
        self._obj["metadata"].setdefault("labels", {}).update(labels)
        return self

    def finalizers(self, *names: str) -> Self:
        self._obj["metadata"]["finalizers"] = list(names)
        return self

    def rv(self, resource_version: str) -> Self:
        self._obj["metadata"]["resourceVersion"] = resource_version
        return self

    def meta(self, **fields: Any) -> Self:
        self._obj["metadata"].update(fields)
        return self

    def spec(self, **fields: Any) -> Self:
        self._obj.setdefault("spec", {}).update(fields)
        return self

    def status(self, **fields: Any) -> Self:
        self._obj.setdefault("status", {}).update(fields)
        return self

    def build(self) -> dict[str, Any]:
        return copy.deepcopy(self._obj)


def widget(name: str = "w") -> ObjectBuilder:
    return ObjectBuilder(WIDGET, name)


def node(name: str = "n") -> ObjectBuilder:
    return ObjectBuilder(NODE, name)


def setting(name: str = "s") -> ObjectBuilder:
    return ObjectBuilder(SETTING, name)


class FakeClock:
    """An injectable clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
