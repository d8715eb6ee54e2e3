"""SIGKILL a writer at random moments, again and again, and check the store after every kill.

After each kill: SQLite's integrity check passes; the objects table equals what the retained event
log says (the log is contiguous, the latest event of every key matches the stored object, and no
live object is newer than the log); the revision never goes backwards and covers every write the
writer acknowledged; every create_many batch is wholly present or wholly absent.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from flotilla.store import Store

from .crash_writer import ITEM, MEMBER

KILLS = 50
SEED = 20250101
WRITER = Path(__file__).with_name("crash_writer.py")
REPO = Path(__file__).resolve().parents[2]


def start_writer(db: Path, seed: int, progress: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(db), str(seed), str(progress)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def last_acknowledged(progress: Path) -> int:
    """The newest revision the writer reported committed (ignoring a line cut short by the kill)."""
    if not progress.exists():
        return 0
    lines = progress.read_text().split("\n")[:-1]  # the piece after the last newline may be partial
    return max((int(line) for line in lines), default=0)


def check_store(db: Path) -> tuple[int, int]:
    """Every invariant a crash must not break; returns (revision, live members)."""
    with Store.open(db) as store:  # opening recovers the WAL, as the next real user would
        revision = int(store.revision())
        members, _ = store.list(MEMBER)
        store.list(ITEM)

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        events = conn.execute("SELECT rv, type, grp, kind, namespace, name, body FROM events ORDER BY rv").fetchall()
        objects = {
            (grp, kind, ns, name): body
            for grp, kind, ns, name, body in conn.execute("SELECT grp, kind, namespace, name, body FROM objects")
        }
    finally:
        conn.close()

    revisions = [row[0] for row in events]
    assert revisions == list(range(revisions[0], revisions[0] + len(revisions))), "the log has a gap"
    assert revisions[-1] == revision
    latest: dict[tuple[str, str, str, str], tuple[str, str, int]] = {}
    for rv, type_, grp, kind, ns, name, body in events:
        latest[(grp, kind, ns, name)] = (type_, body, rv)
    for key, (type_, body, _) in latest.items():
        if type_ == "DELETED":
            assert key not in objects, f"{key} is stored but its last event is DELETED"
        else:
            assert objects.get(key) == body, f"{key}: stored object differs from its last event"
    for key, body in objects.items():
        object_rv = int(json.loads(body)["metadata"]["resourceVersion"])
        assert object_rv <= revision
        if object_rv >= revisions[0]:
            assert latest[key][2] == object_rv, f"{key}: its revision's event is not its latest"
        else:
            assert key not in latest, f"{key}: the log has a newer event than the object"

    sizes: Counter[str] = Counter()
    expected: dict[str, int] = {}
    for member in members:
        labels = member["metadata"]["labels"]
        sizes[labels["batch"]] += 1
        expected[labels["batch"]] = int(labels["size"])
    torn = {batch: f"{sizes[batch]}/{expected[batch]}" for batch in sizes if sizes[batch] != expected[batch]}
    assert not torn, f"create_many batches partly stored: {torn}"
    return revision, len(members)


@pytest.mark.slow
def test_state_is_consistent_after_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "crash" / "state.db"
    previous = 0
    for run in range(KILLS):
        progress = tmp_path / f"progress-{run}.txt"
        writer = start_writer(db, seed=SEED + run, progress=progress)
        try:
            if rng.random() < 0.1:
                time.sleep(rng.uniform(0.0, 0.08))  # kill while starting up / opening the store
            else:
                assert writer.stdout is not None
                assert writer.stdout.readline() == "ready\n", "the writer failed to start"
                time.sleep(rng.uniform(0.01, 0.3))  # kill mid-write at a seeded random moment
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
            if writer.stdout is not None:
                writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL, f"run {run}: the writer exited on its own"
        if not db.exists():
            continue  # killed before the file was created

        revision, _ = check_store(db)
        assert revision >= previous, f"run {run}: revision went backwards ({previous} -> {revision})"
        assert revision >= last_acknowledged(progress), f"run {run}: an acknowledged write was lost"
        previous = revision
    assert previous > 1000, "the writer made too little progress for the test to mean much"
