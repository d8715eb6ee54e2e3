"""Behaviour of the state store: JSON merge patch, delete and finalizers, apply, batches."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flotilla.store import AlreadyExists, Conflict, Invalid, NotFound, ResourceType, Store, merge_patch

from .builders import NODE, WIDGET, FakeClock, node, widget

# -- JSON merge patch ----------------------------------------------------------------------

RFC7386_EXAMPLES = [  # RFC 7386, appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_EXAMPLES)
def test_merge_patch_follows_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    original = repr(target)
    assert merge_patch(target, patch) == expected
    assert repr(target) == original


def test_patch_merges_deletes_with_null_and_bumps_generation(store: Store) -> None:
    store.create(WIDGET, widget("a").labels(app="x", tier="gold").spec(x=1, y={"z": 1}).build())
    patched = store.patch(WIDGET, "a", "default", {"metadata": {"labels": {"tier": None}}, "spec": {"y": None}})
    assert patched["metadata"]["labels"] == {"app": "x"}
    assert patched["spec"] == {"x": 1}
    assert patched["metadata"]["generation"] == 2


def test_patch_status_subresource(store: Store) -> None:
    store.create(WIDGET, widget("a").spec(x=1).status(phase="Pending", ready=False).build())
    ignored = store.patch(WIDGET, "a", "default", {"status": {"phase": "Running"}})
    assert ignored["status"]["phase"] == "Pending"  # the main resource does not write status
    assert ignored["metadata"]["resourceVersion"] == "1"
    patched = store.patch(WIDGET, "a", "default", {"status": {"phase": "Running"}, "spec": {"x": 2}}, "status")
    assert patched["status"] == {"phase": "Running", "ready": False}
    assert patched["spec"] == {"x": 1}
    assert patched["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("patch", "subresource", "error", "message"),
    [
        ({"metadata": {"resourceVersion": "0"}}, None, Conflict, "is stale"),
        ({"metadata": {"name": "b"}}, None, Invalid, "cannot change metadata.name"),
        ({"metadata": {"namespace": "other"}}, None, Invalid, "cannot change metadata.name"),
        ({"metadata": None}, None, Invalid, "metadata must be an object"),
        (["not", "an", "object"], None, Invalid, "must be an object"),
        ({"spec": {}}, "scale", Invalid, "unknown subresource 'scale'"),
    ],
)
def test_patch_rejects(store: Store, patch: Any, subresource: str | None, error: type, message: str) -> None:
    store.create(WIDGET, widget("a").build())
    with pytest.raises(error, match=re.escape(message)):
        store.patch(WIDGET, "a", "default", patch, subresource)
    with pytest.raises(NotFound):
        store.patch(WIDGET, "ghost", "default", {})


# -- delete and finalizers -----------------------------------------------------------------


def test_delete_without_finalizers_removes_and_returns_last_state(store: Store) -> None:
    store.create(WIDGET, widget("a").spec(x=1).build())
    deleted = store.delete(WIDGET, "a", "default")
    assert deleted["spec"] == {"x": 1}
    assert deleted["metadata"]["resourceVersion"] == "2"
    with pytest.raises(NotFound):
        store.get(WIDGET, "a", "default")
    with pytest.raises(NotFound):
        store.delete(WIDGET, "a", "default")


def test_delete_checks_resource_version(store: Store) -> None:
    store.create(WIDGET, widget("a").build())
    with pytest.raises(Conflict):
        store.delete(WIDGET, "a", "default", resource_version="7")
    store.delete(WIDGET, "a", "default", resource_version="1")


def test_finalizers_hold_deletion_until_removed(store: Store, clock: FakeClock) -> None:
    store.create(WIDGET, widget("a").finalizers("a/f", "b/f").build())
    marked = store.delete(WIDGET, "a", "default")
    assert marked["metadata"]["deletionTimestamp"] == "2025-01-02T03:04:05Z"
    assert store.get(WIDGET, "a", "default") == marked

    clock.advance(30)
    again = store.delete(WIDGET, "a", "default")  # set once: no new timestamp, no write
    assert again == marked

    body = store.get(WIDGET, "a", "default")
    body["metadata"]["finalizers"] = ["a/f", "b/f", "c/new"]
    with pytest.raises(Invalid, match="being deleted"):
        store.update(WIDGET, body)
    body["metadata"]["finalizers"] = ["b/f"]
    body["metadata"]["deletionTimestamp"] = None  # cannot be cleared by an update
    assert store.update(WIDGET, body)["metadata"]["deletionTimestamp"] == "2025-01-02T03:04:05Z"

    gone = store.patch(WIDGET, "a", "default", {"metadata": {"finalizers": []}})
    assert gone["metadata"]["finalizers"] == []
    with pytest.raises(NotFound):
        store.get(WIDGET, "a", "default")
    events = [(e.type, e.resource_version) for e in _drain(store.watch(WIDGET, since="0"))]
    assert events == [("ADDED", "1"), ("MODIFIED", "2"), ("MODIFIED", "3"), ("DELETED", "4")]


def _drain(watch: Any) -> list[Any]:
    events = []
    while (event := watch.next_event(timeout=0)) is not None:
        events.append(event)
    return events


# -- apply and batches ---------------------------------------------------------------------


def test_apply_creates_then_is_idempotent_then_updates(store: Store) -> None:
    body = widget("a").spec(x=1).status(phase="Pending").build()
    first, created = store.apply(WIDGET, body)
    assert created and first["metadata"]["resourceVersion"] == "1"
    again, created = store.apply(WIDGET, body)
    assert not created and again == first
    assert store.revision() == "1"
    changed, created = store.apply(WIDGET, widget("a").spec(x=2).status(phase="Lost").build())
    assert not created
    assert changed["metadata"]["resourceVersion"] == "2"
    assert changed["metadata"]["generation"] == 2
    assert changed["status"] == {"phase": "Pending"}  # apply is an update: status is kept


def test_apply_with_resource_version_is_a_precondition(store: Store) -> None:
    with pytest.raises(Conflict, match="does not exist"):
        store.apply(WIDGET, widget("a").rv("3").build())
    store.apply(WIDGET, widget("a").build())
    with pytest.raises(Conflict):
        store.apply(WIDGET, widget("a").spec(x=1).rv("9").build())
    with pytest.raises(Invalid, match=r"metadata\.name is required"):
        store.apply(WIDGET, widget().generate("x-").build())


@pytest.mark.parametrize(
    ("bad_item", "error"),
    [
        pytest.param((WIDGET, widget("dup").build()), AlreadyExists, id="duplicate-in-batch"),
        pytest.param((NODE, node("n").ns("default").build()), Invalid, id="wrong-scope"),
        pytest.param((WIDGET, {"metadata": {}}), Invalid, id="no-name"),
    ],
)
def test_create_many_is_all_or_nothing(store: Store, bad_item: tuple[ResourceType, Any], error: type) -> None:
    items = [(WIDGET, widget("dup").build()), (NODE, node("n1").build()), bad_item]
    with pytest.raises(error, match=r"^items\[2\]: .*nothing was stored"):
        store.create_many(items)
    assert store.revision() == "0"
    assert store.list(WIDGET)[0] == [] and store.list(NODE)[0] == []

    created = store.create_many(items[:2])
    assert [o["metadata"]["resourceVersion"] for o in created] == ["1", "2"]


def test_apply_many_is_all_or_nothing(store: Store) -> None:
    store.create(WIDGET, widget("a").spec(x=1).build())
    items = [(WIDGET, widget("a").spec(x=2).build()), (WIDGET, widget("b").build()), (WIDGET, {"metadata": {}})]
    with pytest.raises(Invalid, match=r"^items\[2\]"):
        store.apply_many(items)
    assert store.get(WIDGET, "a", "default")["spec"] == {"x": 1}
    results = store.apply_many(items[:2])
    assert [created for _, created in results] == [False, True]
    assert store.apply_many(items[:2]) == [(obj, False) for obj, _ in results]
