"""Behaviour of the state store: create, get, generateName, list, update, status, revisions, files."""

from __future__ import annotations

import random
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from flotilla.store import (
    GENERATE_NAME_ALPHABET,
    AlreadyExists,
    Conflict,
    Invalid,
    NotFound,
    ResourceType,
    Store,
    StoreError,
)

from .builders import NODE, OTHER_WIDGET, SETTING, WIDGET, FakeClock, node, setting, widget

# -- create and get ------------------------------------------------------------------------


def test_create_sets_server_fields_and_returns_a_copy(store: Store) -> None:
    body = widget("a").labels(app="web").spec(replicas=2).status(phase="Pending").build()
    created = store.create(WIDGET, body)

    meta = created["metadata"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", meta["uid"])
    assert meta["creationTimestamp"] == "2025-01-02T03:04:05Z"
    assert meta["generation"] == 1
    assert meta["resourceVersion"] == "1"
    assert created["apiVersion"] == "example.com/v1"
    assert created["spec"] == {"replicas": 2}
    assert created["status"] == {"phase": "Pending"}  # status is kept on create
    assert "uid" not in body["metadata"]  # the caller's dict is untouched
    created["spec"]["replicas"] = 99  # and the result is not the stored object
    assert store.get(WIDGET, "a", "default")["spec"] == {"replicas": 2}


def test_get_returns_what_create_returned(store: Store) -> None:
    created = store.create(NODE, node("n1").spec(unschedulable=False).build())
    assert store.get(NODE, "n1") == created


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param((WIDGET, widget("a").ns("one")), (WIDGET, widget("a").ns("two")), id="other-namespace"),
        pytest.param((WIDGET, widget("a")), (SETTING, setting("a")), id="other-kind"),
        pytest.param((WIDGET, widget("a")), (OTHER_WIDGET, widget("a")), id="same-kind-other-group"),
    ],
)
def test_same_name_in_another_namespace_kind_or_group_is_a_different_object(
    store: Store, first: tuple[ResourceType, Any], second: tuple[ResourceType, Any]
) -> None:
    store.create(first[0], first[1].build())
    store.create(second[0], second[1].build())
    assert len(store.list(first[0])[0]) == (2 if first[0] == second[0] else 1)


def test_create_duplicate_is_already_exists(store: Store) -> None:
    store.create(WIDGET, widget("a").build())
    with pytest.raises(AlreadyExists, match=r'Widget\.example\.com "default/a" already exists') as info:
        store.create(WIDGET, widget("a").spec(x=1).build())
    assert (info.value.kind, info.value.namespace, info.value.name) == ("Widget", "default", "a")
    assert info.value.http_status == 409


@pytest.mark.parametrize(
    ("rt", "body", "message"),
    [
        (WIDGET, widget().meta(name=None).build(), "metadata.name, or metadata.generateName"),
        (WIDGET, widget("a").ns(None).build(), "is namespaced: set metadata.namespace"),
        (NODE, node("a").ns("default").build(), "cluster-scoped: remove metadata.namespace"),
        (WIDGET, widget("a").rv("5").build(), "resourceVersion must not be set on create"),
        (WIDGET, {"kind": "Node", "metadata": {"name": "a", "namespace": "d"}}, "the body says kind 'Node'"),
        (WIDGET, {"spec": {}}, "metadata must be an object"),
        (WIDGET, ["not", "an", "object"], "must be a JSON object"),
        (WIDGET, widget("a").spec(ratio=float("nan")).build(), "not plain JSON"),
        (WIDGET, widget("a").spec(tags={"a", "b"}).build(), "not plain JSON"),
    ],
)
def test_create_rejects_invalid_requests(store: Store, rt: ResourceType, body: Any, message: str) -> None:
    with pytest.raises(Invalid, match=re.escape(message)):
        store.create(rt, body)
    assert store.revision() == "0"


def test_get_missing_is_not_found_and_scope_is_checked(store: Store) -> None:
    with pytest.raises(NotFound, match=r'Widget\.example\.com "default/nope" not found'):
        store.get(WIDGET, "nope", "default")
    with pytest.raises(Invalid, match="namespaced"):
        store.get(WIDGET, "nope")
    with pytest.raises(Invalid, match="cluster-scoped"):
        store.get(NODE, "nope", "default")


# -- generateName --------------------------------------------------------------------------


def _first_names(seed: int, prefix: str, count: int) -> list[str]:
    rng = random.Random(seed)
    return [prefix + "".join(rng.choices(GENERATE_NAME_ALPHABET, k=5)) for _ in range(count)]


def test_generate_name_appends_five_characters_from_the_kubernetes_alphabet(store: Store) -> None:
    created = store.create(WIDGET, widget().generate("job-").build())
    name = created["metadata"]["name"]
    assert re.fullmatch(r"job-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    assert created["metadata"]["generateName"] == "job-"
    assert store.get(WIDGET, name, "default") == created


def test_generate_name_retries_on_collision(db_path: Path) -> None:
    taken, second = _first_names(seed=3, prefix="job-", count=2)
    with Store.open(db_path, rng=random.Random(3)) as store:
        store.create(WIDGET, widget(taken).build())
        assert store.create(WIDGET, widget().generate("job-").build())["metadata"]["name"] == second


def test_generate_name_gives_up_after_repeated_collisions(db_path: Path) -> None:
    class SameNames(random.Random):
        def choices(self, population: Any, *args: Any, **kwargs: Any) -> list[Any]:
            return ["b"] * 5

    with Store.open(db_path, rng=SameNames()) as store:
        store.create(WIDGET, widget("job-bbbbb").build())
        with pytest.raises(AlreadyExists, match="no free name from generateName 'job-'"):
            store.create(WIDGET, widget().generate("job-").build())


# -- list ----------------------------------------------------------------------------------


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in items]


@pytest.fixture
def populated(store: Store) -> Store:
    for ns, name, tier in [("b", "x", "gold"), ("a", "z", "gold"), ("a", "y", "silver"), ("c", "w", "")]:
        builder = widget(name).ns(ns)
        if tier:
            builder.labels(tier=tier)
        store.create(WIDGET, builder.build())
    store.create(OTHER_WIDGET, widget("other").ns("a").build())
    return store


@pytest.mark.parametrize(
    ("namespace", "selector", "expected"),
    [
        (None, None, ["a/y", "a/z", "b/x", "c/w"]),
        ("a", None, ["a/y", "a/z"]),
        ("missing", None, []),
        (None, lambda labels: labels.get("tier") == "gold", ["a/z", "b/x"]),
        ("a", lambda labels: labels.get("tier") == "gold", ["a/z"]),
        (None, lambda labels: labels == {}, ["c/w"]),
    ],
)
def test_list_filters_and_sorts_by_namespace_then_name(
    populated: Store, namespace: str | None, selector: Any, expected: list[str]
) -> None:
    items, rv = populated.list(WIDGET, namespace, label_selector=selector)
    assert _names(items) == expected
    assert rv == populated.revision() == "5"


def test_list_cluster_scoped(store: Store) -> None:
    for name in ("n2", "n1"):
        store.create(NODE, node(name).build())
    items, _ = store.list(NODE)
    assert _names(items) == ["/n1", "/n2"]
    with pytest.raises(Invalid, match="cluster-scoped"):
        store.list(NODE, "default")


# -- update: optimistic concurrency, server fields, status, generation -----------------------


@pytest.mark.parametrize(
    ("resource_version", "outcome"),
    [("1", "ok"), (None, "ok"), ("", "ok"), ("0", Conflict), ("2", Conflict)],
)
def test_update_checks_resource_version(store: Store, resource_version: str | None, outcome: Any) -> None:
    store.create(WIDGET, widget("a").spec(x=1).build())
    body = widget("a").spec(x=2).meta(resourceVersion=resource_version).build()
    if outcome == "ok":
        assert store.update(WIDGET, body)["metadata"]["resourceVersion"] == "2"
    else:
        with pytest.raises(Conflict, match=r"resourceVersion '.*' is stale \(the stored object is at '1'\)"):
            store.update(WIDGET, body)
        assert store.get(WIDGET, "a", "default")["spec"] == {"x": 1}


def test_update_keeps_immutable_and_server_fields(store: Store, clock: FakeClock) -> None:
    created = store.create(WIDGET, widget("a").build())
    clock.advance(60)
    forged = widget("a").meta(uid="forged", creationTimestamp="1999-01-01T00:00:00Z", generation=40)
    updated = store.update(WIDGET, forged.spec(x=1).build())
    for field in ("uid", "creationTimestamp"):
        assert updated["metadata"][field] == created["metadata"][field]
    assert updated["metadata"]["generation"] == 2
    assert "deletionTimestamp" not in updated["metadata"]


@pytest.mark.parametrize(
    ("rt", "change", "generation", "written"),
    [
        pytest.param(WIDGET, {"spec": {"x": 2}}, 2, True, id="spec-bumps-generation"),
        pytest.param(WIDGET, {"data": [1]}, 2, True, id="other-top-level-field-bumps"),
        pytest.param(WIDGET, {"labels": {"a": "b"}}, 1, True, id="metadata-does-not-bump"),
        pytest.param(WIDGET, {"status": {"ready": False}}, 1, False, id="status-ignored-no-write"),
        pytest.param(WIDGET, {}, 1, False, id="identical-no-write"),
        pytest.param(SETTING, {"status": {"ready": False}}, 2, True, id="no-status-subresource-bumps"),
        pytest.param(SETTING, {"labels": {"a": "b"}}, 1, True, id="no-status-subresource-metadata"),
    ],
)
def test_update_generation_and_no_op_writes(
    store: Store, rt: ResourceType, change: dict[str, Any], generation: int, written: bool
) -> None:
    base = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": {"name": "a", "namespace": "d"}}
    created = store.create(rt, {**base, "spec": {"x": 1}, "status": {"ready": True}})
    body: dict[str, Any] = {**base, "spec": {"x": 1}, "status": {"ready": True}}
    for key, value in change.items():
        if key == "labels":
            body["metadata"] = {**body["metadata"], "labels": value}
        else:
            body[key] = value
    updated = store.update(rt, body)
    assert updated["metadata"]["generation"] == generation
    assert (updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]) is written
    assert store.revision() == ("2" if written else "1")
    expected_status = change["status"] if rt is SETTING and "status" in change else {"ready": True}
    assert store.get(rt, "a", "d")["status"] == expected_status


def test_update_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.update(WIDGET, widget("ghost").build())


def test_update_status_replaces_only_status(store: Store) -> None:
    store.create(WIDGET, widget("a").labels(app="x").spec(x=1).status(phase="Pending").build())
    body = widget("a").spec(x=999).labels(app="changed").status(phase="Running").rv("1").build()
    updated = store.update_status(WIDGET, body)
    assert updated["status"] == {"phase": "Running"}
    assert updated["spec"] == {"x": 1}
    assert updated["metadata"]["labels"] == {"app": "x"}
    assert updated["metadata"]["generation"] == 1
    assert updated["metadata"]["resourceVersion"] == "2"
    with pytest.raises(Conflict):
        store.update_status(WIDGET, widget("a").status(phase="Failed").rv("1").build())


def test_update_status_needs_a_status_subresource(store: Store) -> None:
    store.create(SETTING, setting("a").build())
    with pytest.raises(Invalid, match="no status subresource"):
        store.update_status(SETTING, setting("a").status(x=1).build())


def test_count_by_kind_names_resources_like_kubernetes(store: Store, db_path: Path) -> None:
    store.create_many([(WIDGET, widget(n).build()) for n in "abc"] + [(NODE, node("n").build())])
    store.create(OTHER_WIDGET, widget("a").build())
    assert store.count_by_kind() == {"widgets.example.com": 3, "nodes": 1, "widgets.other.example.com": 1}
    with Store.open(db_path) as fresh:  # has not seen the ResourceTypes: no plurals yet
        assert fresh.count_by_kind() == {"Widget.example.com": 3, "Node": 1, "Widget.other.example.com": 1}


# -- revisions, files, lifecycle -----------------------------------------------------------


def test_every_write_bumps_one_global_revision(store: Store) -> None:
    revisions = [
        store.create(WIDGET, widget("a").build()),
        store.create(NODE, node("n").build()),
        store.update(WIDGET, widget("a").spec(x=1).build()),
        store.update_status(WIDGET, widget("a").status(ok=True).build()),
        store.patch(NODE, "n", None, {"spec": {"x": 1}}),
        store.delete(WIDGET, "a", "default"),
    ]
    assert [o["metadata"]["resourceVersion"] for o in revisions] == ["1", "2", "3", "4", "5", "6"]


def test_open_creates_folders_uses_wal_and_persists(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.create(WIDGET, widget("a").build())
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    with Store.open(db_path) as store:
        assert store.get(WIDGET, "a", "default")["metadata"]["resourceVersion"] == "1"
        assert store.create(WIDGET, widget("b").build())["metadata"]["resourceVersion"] == "2"


def test_open_refuses_a_newer_schema(db_path: Path) -> None:
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99, newer"):
        Store.open(db_path)


@pytest.mark.parametrize("readers", [0, 4])
def test_closed_store_refuses_work(db_path: Path, readers: int) -> None:
    store = Store.open(db_path, readers=readers)
    store.create(WIDGET, widget("a").build())
    assert store.get(WIDGET, "a", "default")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.get(WIDGET, "a", "default")
    with pytest.raises(StoreError, match="is closed"):
        store.create(WIDGET, widget("b").build())
