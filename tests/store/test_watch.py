"""Watches: replay from a revision, live streaming, filters, compaction (Gone), other writers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from flotilla.store import Gone, Invalid, ResourceType, Store, Watch, WatchEvent

from .builders import NODE, OTHER_WIDGET, WIDGET, node, widget

WAIT = 10.0  # generous: next_event returns as soon as the event is there
REPO = Path(__file__).resolve().parents[2]


def take(watch: Watch, count: int) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    for _ in range(count):
        event = watch.next_event(timeout=WAIT)
        assert event is not None, f"only {len(events)} of {count} events arrived"
        events.append(event)
    return events


def brief(events: list[WatchEvent]) -> list[tuple[str, str, str]]:
    return [(e.type, e.object["metadata"]["name"], e.resource_version) for e in events]


def assert_quiet(watch: Watch) -> None:
    assert watch.next_event(timeout=0) is None


def test_replays_the_log_then_streams_new_events(store: Store) -> None:
    store.create(WIDGET, widget("a").build())
    store.update(WIDGET, widget("a").spec(x=1).build())
    with store.watch(WIDGET, since="0") as watch:
        assert brief(take(watch, 2)) == [("ADDED", "a", "1"), ("MODIFIED", "a", "2")]
        assert_quiet(watch)
        store.delete(WIDGET, "a", "default")
        (deleted,) = take(watch, 1)
        assert (deleted.type, deleted.object["spec"], deleted.resource_version) == ("DELETED", {"x": 1}, "3")
        assert watch.resource_version == "3"


def test_without_since_only_new_events_arrive(store: Store) -> None:
    store.create(WIDGET, widget("old").build())
    with store.watch(WIDGET) as watch:
        assert_quiet(watch)
        store.create(WIDGET, widget("new").build())
        assert brief(take(watch, 1)) == [("ADDED", "new", "2")]


def test_list_then_watch_misses_nothing(store: Store) -> None:
    store.create(WIDGET, widget("a").build())
    _, rv = store.list(WIDGET)
    store.create(WIDGET, widget("b").build())  # between the list and the watch
    with store.watch(WIDGET, since=rv) as watch:
        assert brief(take(watch, 1)) == [("ADDED", "b", "2")]
        assert_quiet(watch)


@pytest.mark.parametrize(
    ("rt", "namespace", "expected"),
    [
        (WIDGET, None, ["w-a", "w-b"]),
        (WIDGET, "a", ["w-a"]),
        (OTHER_WIDGET, None, ["other"]),
        (NODE, None, ["n"]),
        (None, None, ["w-a", "w-b", "other", "n"]),
        (None, "b", ["w-b"]),
    ],
)
def test_filters_by_kind_and_namespace(
    store: Store, rt: ResourceType | None, namespace: str | None, expected: list[str]
) -> None:
    store.create(WIDGET, widget("w-a").ns("a").build())
    store.create(WIDGET, widget("w-b").ns("b").build())
    store.create(OTHER_WIDGET, widget("other").ns("a").build())
    store.create(NODE, node("n").build())
    with store.watch(rt, namespace, since="0") as watch:
        assert [e.object["metadata"]["name"] for e in take(watch, len(expected))] == expected
        assert_quiet(watch)


def test_filtered_out_events_do_not_stall_the_watch(store: Store) -> None:
    with store.watch(NODE) as watch:
        store.create_many([(WIDGET, widget(f"w{i}").build()) for i in range(1200)])  # > one page
        store.create(NODE, node("n").build())
        assert brief(take(watch, 1)) == [("ADDED", "n", "1201")]


@pytest.mark.parametrize(
    ("since", "error", "message"),
    [
        ("14", Gone, "too old"),
        ("0", Gone, "too old"),
        ("21", Invalid, "not in this store"),
        ("-1", Invalid, "not in this store"),
        ("abc", Invalid, "not a revision"),
    ],
)
def test_watch_from_outside_the_retained_log(db_path: Path, since: str, error: type, message: str) -> None:
    with Store.open(db_path, event_retention=5) as store:
        for i in range(20):
            store.create(WIDGET, widget(f"w{i}").build())
        with pytest.raises(error, match=message):
            store.watch(WIDGET, since=since)
        with store.watch(WIDGET, since="15") as watch:  # oldest retained event is 16
            assert [e.resource_version for e in take(watch, 5)] == ["16", "17", "18", "19", "20"]


def test_a_watch_that_falls_behind_compaction_gets_gone(db_path: Path) -> None:
    with Store.open(db_path, event_retention=3) as store:
        store.create(WIDGET, widget("w0").build())
        watch = store.watch(WIDGET, since="0")
        for i in range(1, 10):
            store.create(WIDGET, widget(f"w{i}").build())
        with pytest.raises(Gone, match="list again"):
            watch.next_event(timeout=0)
        with pytest.raises(Gone):  # it stays expired
            watch.next_event(timeout=0)


def test_resume_from_the_watch_resource_version(store: Store) -> None:
    for name in "abc":
        store.create(WIDGET, widget(name).build())
    with store.watch(WIDGET, since="0") as first:
        take(first, 1)
        resume = first.resource_version
    with store.watch(WIDGET, since=resume) as second:
        assert brief(take(second, 2)) == [("ADDED", "b", "2"), ("ADDED", "c", "3")]


def test_sees_writes_from_another_connection(store: Store, db_path: Path) -> None:
    with Store.open(db_path) as other, store.watch(WIDGET) as watch:
        other.create(WIDGET, widget("from-other").build())  # no in-process signal reaches `store`
        assert brief(take(watch, 1)) == [("ADDED", "from-other", "1")]


def test_sees_writes_from_another_process(store: Store, db_path: Path) -> None:
    script = (
        "import sys\n"
        "from flotilla.store import ResourceType, Store\n"
        "rt = ResourceType('example.com', 'v1', 'Widget', 'widgets', namespaced=True)\n"
        "with Store.open(sys.argv[1]) as s:\n"
        "    for i in range(3):\n"
        "        s.create(rt, {'metadata': {'name': f'p{i}', 'namespace': 'default'}})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with store.watch(WIDGET) as watch:
        subprocess.run([sys.executable, "-c", script, str(db_path)], check=True, env=env, timeout=60)
        assert brief(take(watch, 3)) == [("ADDED", "p0", "1"), ("ADDED", "p1", "2"), ("ADDED", "p2", "3")]


def test_concurrent_writers_deliver_every_revision_in_order(store: Store) -> None:
    def write(prefix: str) -> None:
        for i in range(50):
            store.create(WIDGET, widget(f"{prefix}-{i}").build())

    with store.watch(WIDGET) as watch:
        threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        events = take(watch, 200)
        for t in threads:
            t.join()
    assert [e.resource_version for e in events] == [str(i) for i in range(1, 201)]
    assert len({e.object["metadata"]["name"] for e in events}) == 200


def test_writers_on_separate_connections_share_one_revision_sequence(store: Store, db_path: Path) -> None:
    with Store.open(db_path) as other, store.watch(None) as watch:
        writers = [
            threading.Thread(target=lambda s=s, p=p: [s.create(NODE, node(f"{p}{i}").build()) for i in range(60)])
            for s, p in ((store, "a"), (other, "b"))
        ]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        events = take(watch, 120)
    assert [e.resource_version for e in events] == [str(i) for i in range(1, 121)]
    assert store.revision() == "120"


@pytest.mark.parametrize("close", ["watch", "store"])
def test_closing_ends_a_blocked_iteration(store: Store, close: str) -> None:
    watch = store.watch(WIDGET)
    seen: list[WatchEvent] = []
    consumer = threading.Thread(target=lambda: seen.extend(watch))
    consumer.start()
    store.create(WIDGET, widget("a").build())
    (watch if close == "watch" else store).close()
    consumer.join(timeout=WAIT)
    assert not consumer.is_alive()
    assert watch.closed
    assert watch.next_event(timeout=0) is None


def test_async_consumption(store: Store) -> None:
    async def consume() -> list[tuple[str, str, str]]:
        with store.watch(WIDGET, since="0") as watch:
            first = await watch.anext(timeout=WAIT)
            assert await watch.anext(timeout=0.01) is None
            await asyncio.to_thread(store.create, WIDGET, widget("b").build())
            second = await anext(watch)
            assert first is not None
            return brief([first, second])

    store.create(WIDGET, widget("a").build())
    assert asyncio.run(consume()) == [("ADDED", "a", "1"), ("ADDED", "b", "2")]


def test_namespace_filter_on_a_cluster_scoped_kind_is_invalid(store: Store) -> None:
    with pytest.raises(Invalid, match="cluster-scoped"):
        store.watch(NODE, "default")


def test_skip_drops_the_events_it_names(store: Store) -> None:
    """A watcher that made a change itself can skip that revision's event (its body is not parsed)."""
    store.create(WIDGET, widget("a").build())
    store.create(WIDGET, widget("b").build())
    store.create(WIDGET, widget("c").build())
    skipped: list[int] = []

    def skip(revision: int) -> bool:
        if revision == 2:
            skipped.append(revision)
            return True
        return False

    with store.watch(WIDGET, since="0", skip=skip) as watch:
        assert brief(take(watch, 2)) == [("ADDED", "a", "1"), ("ADDED", "c", "3")]
        assert_quiet(watch)
        assert watch.resource_version == "3"  # a resumed watch does not see the skipped one either
    assert skipped == [2]


def test_next_events_takes_what_is_there_in_order(store: Store) -> None:
    for name in "abcde":
        store.create(WIDGET, widget(name).build())
    with store.watch(WIDGET, since="0") as watch:
        assert brief(watch.next_events(WAIT, most=3)) == [("ADDED", n, str(i)) for i, n in enumerate("abc", 1)]
        assert brief(watch.next_events(WAIT)) == [("ADDED", "d", "4"), ("ADDED", "e", "5")]
        assert watch.next_events(0) == []
