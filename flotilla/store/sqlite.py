"""The embedded state store: Kubernetes-like objects in one SQLite file (WAL mode).

Two tables: `objects` (the current state, keyed by group, kind, namespace, name) and `events`
(the change log, keyed by revision). Every write is one `BEGIN IMMEDIATE` transaction that takes
the next global revision per changed object (like etcd's revision), so the file is consistent
after a crash at any moment and several processes may share it.

Threads and connections: see `db.py`.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from flotilla.store.db import Database
from flotilla.store.errors import Gone, Invalid
from flotilla.store.keys import ResourceType
from flotilla.store.objects import Obj, decode, not_found, scope_namespace
from flotilla.store.txn import WriteTxn
from flotilla.store.watch import EventRow, Watch

T = TypeVar("T")
LabelSelector = Callable[[dict[str, str]], bool]
ListResult = tuple[list[Obj], str]
Objs = list[Obj]
Applied = list[tuple[Obj, bool]]
EventRows = list[EventRow]  # `list` is a Store method name, so spell the type outside the class

_GET = "SELECT body FROM objects WHERE grp = ? AND kind = ? AND namespace = ? AND name = ?"
_JSON_LABELS = "json_extract(body, '$.metadata.labels')"
# With a label selector, SQLite extracts the labels so only selected bodies get parsed in Python.
_LIST = {
    (labels, by_namespace): (
        f"SELECT {labels}, body FROM objects WHERE grp = ? AND kind = ?"
        + (" AND namespace = ?" if by_namespace else "")
        + " ORDER BY namespace, name"
    )
    for labels in ("NULL", _JSON_LABELS)
    for by_namespace in (False, True)
}
_COUNT = "SELECT grp, kind, count(*) FROM objects GROUP BY grp, kind"
_REVISION = "SELECT max(rv) FROM events"
# Two subqueries: SQLite answers a lone min() or max() on the primary key from the B-tree's ends.
_LOG_BOUNDS = "SELECT (SELECT min(rv) FROM events), (SELECT max(rv) FROM events)"
# Bodies of events the watcher filters out stay in SQLite: only matching ones become Python str.
_READ_EVENTS = """SELECT rv, type,
    CASE WHEN (?1 IS NULL OR (grp = ?1 AND kind = ?2)) AND (?3 IS NULL OR namespace = ?3)
    THEN body END
    FROM events WHERE rv > ?4 ORDER BY rv LIMIT ?5"""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """Kubernetes-like object store on SQLite; thread-safe, shareable between processes.

    Objects are plain JSON dicts; the store sets metadata.uid, creationTimestamp, generation,
    resourceVersion and deletionTimestamp, and nothing else about their shape is its business.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        event_retention: int = 100_000,
        readers: int = 4,
        busy_timeout: float = 10.0,
        poll_interval: float = 0.05,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Open (creating if absent) the store at `path`; see `Store.open`."""
        if event_retention < 1:
            raise ValueError("event_retention must be at least 1: the log's newest event is the revision")
        self._retention = event_retention
        self._poll_interval = poll_interval
        self._clock = clock or _utcnow
        self._rng = rng or random.Random()
        self._changed = threading.Condition()
        self._commits = 0
        # Kinds this object has been called with: rows carry (group, kind), metrics want plurals.
        self._types: dict[tuple[str, str], ResourceType] = {}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Database(path, readers=readers, busy_timeout=busy_timeout)

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        event_retention: int = 100_000,
        readers: int = 4,
        busy_timeout: float = 10.0,
        poll_interval: float = 0.05,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> Store:
        """Open the store at `path`, creating parent folders, the file and the schema if absent.

        `event_retention`: how many newest events the watch log keeps. `readers`: pooled read
        connections (0 = reads share the write connection). `busy_timeout`: seconds to wait for
        another process's write lock. `poll_interval`: how often an idle watcher looks for writes
        made by other processes. `clock` and `rng` are injectable for tests.
        """
        return cls(
            path,
            event_retention=event_retention,
            readers=readers,
            busy_timeout=busy_timeout,
            poll_interval=poll_interval,
            clock=clock,
            rng=rng,
        )

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file."""
        return self._db.path

    @property
    def closed(self) -> bool:
        """True after `close()`."""
        return self._db.closed

    @property
    def poll_interval(self) -> float:
        """Seconds an idle watcher waits before looking for other processes' writes."""
        return self._poll_interval

    def close(self) -> None:
        """Close every connection; open watches end. Safe to call twice."""
        self._db.close()
        self._notify()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', closed' if self.closed else ''})"

    # -- reads ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj:
        """The object, as a fresh dict; NotFound if absent."""
        self._learn(rt)
        ns = scope_namespace(rt, namespace, name)
        with self._db.reading() as conn:
            row = conn.execute(_GET, (rt.group, rt.kind, ns or "", name)).fetchone()
        if row is None:
            raise not_found(rt, ns, name)
        return decode(row[0])

    def list(
        self, rt: ResourceType, namespace: str | None = None, label_selector: LabelSelector | None = None
    ) -> ListResult:
        """(items, resourceVersion) from one snapshot, sorted by namespace then name.

        `namespace` None lists every namespace. `label_selector` receives each object's labels
        ({} when it has none) and keeps the object when it returns True. Watch from the returned
        resourceVersion to follow changes without missing any (the informer pattern).
        """
        self._learn(rt)
        ns = None if namespace in (None, "") else scope_namespace(rt, namespace)
        params = (rt.group, rt.kind) if ns is None else (rt.group, rt.kind, ns)
        sql = _LIST[("NULL" if label_selector is None else _JSON_LABELS, ns is not None)]
        with self._db.reading() as conn:
            conn.execute("BEGIN")  # one read snapshot for the rows and the revision
            try:
                revision = conn.execute(_REVISION).fetchone()[0] or 0
                rows = conn.execute(sql, params).fetchall()
            finally:
                conn.execute("COMMIT")
        if label_selector is None:
            return [decode(text) for _, text in rows], str(revision)
        items = []
        for labels, text in rows:
            if label_selector(decode(labels) if labels else {}):
                items.append(decode(text))
        return items, str(revision)

    def revision(self) -> str:
        """The current global revision ("0" for an empty store)."""
        with self._db.reading() as conn:
            return str(conn.execute(_REVISION).fetchone()[0] or 0)

    def count_by_kind(self) -> dict[str, int]:
        """Stored objects per resource, keyed "plural.group" ("plural" for the core group), as
        Kubernetes labels apiserver_storage_objects. A kind this Store object has not yet been
        called with is keyed "Kind.group" instead: rows carry the kind, plurals come from the
        ResourceTypes callers pass."""
        with self._db.reading() as conn:
            rows = conn.execute(_COUNT).fetchall()
        counts: dict[str, int] = {}
        for group, kind, count in rows:
            rt = self._types.get((group, kind))
            name = (rt.plural if rt is not None else kind) + (f".{group}" if group else "")
            counts[name] = count
        return counts

    # -- writes --------------------------------------------------------------------------

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a new object and return it as stored (ADDED event).

        Sets uid, creationTimestamp, generation 1 and resourceVersion; a missing name is made from
        metadata.generateName plus 5 random characters. The namespace is required iff the kind is
        namespaced. Status in the body is kept. AlreadyExists on a taken name.
        """
        self._learn(rt)
        return self._run(lambda txn: txn.create(rt, obj))

    def update(self, rt: ResourceType, obj: Obj) -> Obj:
        """Replace an object whole (MODIFIED event, or none when nothing changed).

        A non-empty metadata.resourceVersion must match the stored one (else Conflict). uid,
        creationTimestamp, deletionTimestamp and generation are kept; for kinds with a status
        subresource the stored status is kept too. generation increments when anything outside
        metadata (and status) changed. Removing the last finalizer of an object being deleted
        deletes it (DELETED event).
        """
        self._learn(rt)
        return self._run(lambda txn: txn.update(rt, obj))

    def update_status(self, rt: ResourceType, obj: Obj) -> Obj:
        """Replace only the status (same resourceVersion check; generation unchanged)."""
        self._learn(rt)
        return self._run(lambda txn: txn.update_status(rt, obj))

    def patch(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None,
        patch: Obj,
        subresource: str | None = None,
    ) -> Obj:
        """Apply an RFC 7386 JSON merge patch atomically, then update (or update_status when
        `subresource` is "status"). A resourceVersion inside the patch is a precondition."""
        self._learn(rt)
        return self._run(lambda txn: txn.patch(rt, name, namespace, patch, subresource))

    def delete(
        self, rt: ResourceType, name: str, namespace: str | None = None, resource_version: str | None = None
    ) -> Obj:
        """Delete an object and return its last state.

        With finalizers, only marks it (deletionTimestamp, once; MODIFIED event) and it stays
        until an update removes the last finalizer. Otherwise removes it (DELETED event).
        `resource_version`, when given, must match (else Conflict).
        """
        self._learn(rt)
        return self._run(lambda txn: txn.delete(rt, name, namespace, resource_version))

    def apply(self, rt: ResourceType, obj: Obj) -> tuple[Obj, bool]:
        """Create or update by name: (object, created). Applying an identical object again
        writes nothing and keeps its resourceVersion."""
        self._learn(rt)
        return self._run(lambda txn: txn.apply(rt, obj))

    def create_many(self, items: Sequence[tuple[ResourceType, Obj]]) -> Objs:
        """`create` each item in ONE transaction: all are stored, or (on any error) none."""
        self._learn(*(rt for rt, _ in items))
        return self._run(lambda txn: txn.each(items, txn.create))

    def apply_many(self, items: Sequence[tuple[ResourceType, Obj]]) -> Applied:
        """`apply` each item in ONE transaction: all are applied, or (on any error) none."""
        self._learn(*(rt for rt, _ in items))
        return self._run(lambda txn: txn.each(items, txn.apply))

    # -- watch ---------------------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType | None = None,
        namespace: str | None = None,
        since: str | None = None,
        skip: Callable[[int], bool] | None = None,
    ) -> Watch:
        """Follow changes to one kind (None = all kinds), optionally in one namespace.

        `since` None starts at the current revision; otherwise the watch first replays retained
        events with a revision > `since`, then streams new ones, including those written by other
        processes. Gone if `since` is older than the retained log; Invalid if it is in the future.
        `skip(revision)` True drops that event before its body is parsed (a watcher that made the
        change itself and already knows the result).
        """
        ns = namespace or None
        if rt is not None:
            self._learn(rt)
        if ns is not None and rt is not None:
            ns = scope_namespace(rt, ns)
        with self._db.reading() as conn:
            oldest, newest = conn.execute(_LOG_BOUNDS).fetchone()
        newest = newest or 0
        if since in (None, ""):
            return Watch(self, rt, ns, newest, skip)
        try:
            after = int(str(since))
        except ValueError:
            raise Invalid(f"watch: resourceVersion {since!r} is not a revision; pass a decimal string") from None
        if after < 0 or after > newest:
            raise Invalid(
                f"watch: resourceVersion {since!r} is not in this store (its revision is {newest}); "
                "watch from a resourceVersion this store returned"
            )
        if oldest is not None and after < oldest - 1:
            raise Gone(
                f"watch: resourceVersion {since!r} is too old: the event log starts after {oldest - 1}; "
                "list again and watch from the list's resourceVersion"
            )
        return Watch(self, rt, ns, after, skip)

    # EventSource, for Watch.

    def read_events(
        self, after: int, group: str | None, kind: str | None, namespace: str | None, limit: int
    ) -> EventRows:
        """Up to `limit` log rows after revision `after`; bodies only for matching events."""
        with self._db.reading() as conn:
            rows: EventRows = conn.execute(_READ_EVENTS, (group, kind, namespace, after, limit)).fetchall()
        return rows

    def commit_count(self) -> int:
        """How many transactions this Store object has committed (changes on every write)."""
        return self._commits

    def wait_for_commit(self, seen: int, timeout: float) -> None:
        """Block until `commit_count()` moves past `seen`, the store closes, or `timeout` ends."""
        with self._changed:
            if self._commits == seen and not self._db.closed:
                self._changed.wait(timeout)

    # -- internals -----------------------------------------------------------------------

    def _run(self, op: Callable[[WriteTxn], T]) -> T:
        """Run one write operation as one transaction, then wake watchers in this process."""

        def body(conn: sqlite3.Connection) -> tuple[T, bool]:
            txn = WriteTxn(conn, self._clock, self._rng)
            result = op(txn)
            txn.trim(self._retention)
            return result, txn.revision != txn.start_revision

        result, wrote = self._db.write(body)
        if wrote:
            self._notify()
        return result

    def _learn(self, *types: ResourceType) -> None:
        for rt in types:
            self._types[(rt.group, rt.kind)] = rt

    def _notify(self) -> None:
        with self._changed:
            self._commits += 1
            self._changed.notify_all()
