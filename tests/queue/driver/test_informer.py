"""The queue controller's cache of the store: list once, apply watch events, list again on Gone."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from flotilla.store import ResourceType, Store
from flotilla.store.informer import Informer
from tests.store.builders import NODE, WIDGET, node, widget

JSON = dict[str, Any]
TYPES = {"Widget": WIDGET, "Node": NODE}


class Changes:
    """Records on_change calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, str | None]] = []

    def __call__(self, kind: str, key: str, old: JSON | None, new: JSON | None) -> None:
        def rv(obj: JSON | None) -> str | None:
            return None if obj is None else obj["metadata"]["resourceVersion"]

        self.calls.append((kind, key, rv(old), rv(new)))


def stored(store: Store) -> dict[str, dict[str, JSON]]:
    """What a fresh list of the store says, keyed as the informer keys."""
    out: dict[str, dict[str, JSON]] = {}
    for kind, rt in TYPES.items():
        items = store.list(rt)[0]
        out[kind] = {
            (f"{o['metadata']['namespace']}/" if rt.namespaced else "") + o["metadata"]["name"]: o for o in items
        }
    return out


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store.open(tmp_path / "s.db") as s:
        yield s


def test_first_sync_lists_then_events_arrive_as_changes(store: Store) -> None:
    store.create(WIDGET, widget("a").build())
    store.create(NODE, node("n1").build())
    changes = Changes()
    informer = Informer(store, TYPES, changes)
    assert informer.sync() is True  # listed: the caller derives everything itself
    assert changes.calls == []
    assert informer.objects == stored(store)

    a = store.update(WIDGET, widget("a").spec(x=1).build())
    store.delete(NODE, "n1")
    store.create(WIDGET, widget("b").build())
    assert informer.sync() is False
    assert changes.calls == [
        ("Widget", "default/a", "1", a["metadata"]["resourceVersion"]),
        ("Node", "n1", "2", None),
        ("Widget", "default/b", None, "5"),
    ]
    assert informer.objects == stored(store)


def test_own_writes_are_applied_at_once_and_their_events_skipped(store: Store) -> None:
    store.create(WIDGET, widget("a").build())
    changes = Changes()
    informer = Informer(store, TYPES, changes)
    informer.sync()
    saved = store.update(WIDGET, widget("a").spec(x=2).build())
    informer.put("Widget", saved)
    assert changes.calls == [("Widget", "default/a", "1", "2")]
    informer.put("Widget", saved)  # the same version again: nothing happens
    gone = store.delete(WIDGET, "a", "default")
    informer.remove("Widget", gone)
    assert changes.calls[-1] == ("Widget", "default/a", "2", None)
    assert informer.sync() is False
    assert len(changes.calls) == 2  # the watch's events for both writes were skipped
    assert informer.objects == stored(store)


def test_an_older_event_never_overwrites_a_newer_object(store: Store) -> None:
    store.create(WIDGET, widget("a").build())
    informer = Informer(store, TYPES, Changes())
    informer.sync()
    store.update(WIDGET, widget("a").spec(x=1).build())  # rv 2, not yet synced
    newer = store.update(WIDGET, widget("a").spec(x=2).build())  # rv 3
    informer.put("Widget", newer)
    informer.sync()  # delivers rv 2 (older than the cache) and skips rv 3 (written by us)
    assert informer.objects["Widget"]["default/a"]["spec"] == {"x": 2}


def test_gone_lists_again(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", event_retention=5) as store:
        informer = Informer(store, TYPES, Changes())
        informer.sync()
        for i in range(40):  # the log is compacted past the informer's place
            store.create(WIDGET, widget(f"w{i}").build())
        store.delete(WIDGET, "w3", "default")
        assert informer.sync() is True
        assert informer.relists == 2
        assert informer.objects == stored(store)
        assert "default/w3" not in informer.objects["Widget"]


def test_wait_applies_one_event(store: Store) -> None:
    changes = Changes()
    informer = Informer(store, TYPES, changes)
    assert informer.wait(0) is True  # not listed yet: the next sync must
    informer.sync()
    assert informer.wait(0) is False
    store.create(NODE, node("n").build())
    assert informer.wait(0) is True
    assert changes.calls == [("Node", "n", None, "1")]


@pytest.mark.parametrize("seed", range(5))
def test_cache_matches_the_store_after_random_changes(store: Store, seed: int) -> None:
    """Creates, updates, deletes by others and by the informer's owner, in any order."""
    rng = random.Random(seed)
    informer = Informer(store, TYPES, Changes())
    informer.sync()
    names = [f"w{i}" for i in range(8)]
    for step in range(300):
        name = rng.choice(names)
        rt: ResourceType = rng.choice([WIDGET, NODE])
        build = widget if rt is WIDGET else node
        current = store.list(rt)[0]
        exists = any(o["metadata"]["name"] == name for o in current)
        own = rng.random() < 0.5  # the owner writes and tells the informer
        kind = "Widget" if rt is WIDGET else "Node"
        if not exists:
            saved = store.create(rt, build(name).spec(step=step).build())
            if own:
                informer.put(kind, saved)
        elif rng.random() < 0.3:
            gone = store.delete(rt, name, "default" if rt.namespaced else None)
            if own:
                informer.remove(kind, gone)
        else:
            saved = store.update(rt, build(name).spec(step=step).build())
            if own:
                informer.put(kind, saved)
        if rng.random() < 0.3:
            informer.sync()
            assert informer.objects == stored(store), f"step {step}"
    informer.sync()
    assert informer.objects == stored(store)
