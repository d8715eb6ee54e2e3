"""Benchmark the embedded state store (flotilla.store) on this machine.

    .venv/bin/python benchmarks/store_bench.py [--objects 10000] [--data-dir DIR]

Measures, through the public API: single-object creates/s and updates/s (each its own
transaction), gets/s (one thread, and four threads with pooled vs shared read connections), list
time, and watch-delivery latency (from a write's call returning to an in-process watcher thread
receiving its event; writes are paced so they do not queue). Prints a table with the goals and
writes benchmarks/results/store_bench.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flotilla.store import ResourceType, Store

WIDGETS = ResourceType("bench.flotilla.dev", "v1", "Widget", "widgets", namespaced=True)
NAMESPACES = [f"team-{i}" for i in range(10)]
_TOUCH = itertools.count()
RESULTS = Path(__file__).resolve().parent / "results" / "store_bench.json"


def widget(i: int) -> dict[str, Any]:
    """A Kubernetes-shaped object of a realistic size (~700 bytes of JSON)."""
    return {
        "apiVersion": "bench.flotilla.dev/v1",
        "kind": "Widget",
        "metadata": {
            "name": f"widget-{i:06d}",
            "namespace": NAMESPACES[i % len(NAMESPACES)],
            "labels": {"app": "bench", "shard": str(i % 16), "tier": "gold" if i % 3 else "silver"},
            "annotations": {"flotilla.dev/owner": "benchmark", "flotilla.dev/note": "x" * 64},
        },
        "spec": {
            "replicas": 1 + i % 4,
            "template": {"image": "registry.local/model-server:1.4.2", "args": ["--port", "8000"]},
            "resources": {"requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/mig-1g.10gb": "1"}},
            "queueName": "user-queue",
            "priority": i % 10,
        },
        "status": {"phase": "Pending", "conditions": []},
    }


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def concurrent_gets(store: Store, names: list[tuple[str, str]], threads: int) -> float:
    """gets/s with `threads` threads sharing the work."""
    chunks = [names[i::threads] for i in range(threads)]

    def work(chunk: list[tuple[str, str]]) -> None:
        for ns, name in chunk:
            store.get(WIDGETS, name, ns)

    workers = [threading.Thread(target=work, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return rate(len(names), time.perf_counter() - start)


def mixed_load(db: Path, readers: int, objects: list[dict[str, Any]], writes: int) -> dict[str, float]:
    """One thread updating flat out while three threads each get() every 0.5 ms, on one Store.

    Compares pooled read connections with reads sharing the write connection (`readers=0`).
    """
    store = Store.open(db, readers=readers)
    stop = threading.Event()
    latencies: list[float] = []

    def read(offset: int) -> None:
        n = 0
        while not stop.is_set():
            meta = objects[(offset + 7 * n) % len(objects)]["metadata"]
            start = time.perf_counter()
            store.get(WIDGETS, meta["name"], meta["namespace"])
            latencies.append(time.perf_counter() - start)
            n += 1
            time.sleep(0.0005)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    for i in range(writes):
        obj = objects[i % len(objects)]
        obj["spec"]["touch"] = next(_TOUCH)
        objects[i % len(objects)] = store.update(WIDGETS, obj)
    seconds = time.perf_counter() - start
    stop.set()
    for t in threads:
        t.join()
    store.close()
    return {
        "updates_per_s": rate(writes, seconds),
        "gets_per_s": rate(len(latencies), seconds),
        "get_p99_ms": 1000 * percentile(latencies, 99),
    }


def watch_latency(
    writer: Store, watcher_store: Store, objects: list[dict[str, Any]], writes: int, pace: float
) -> list[float]:
    """Latencies (s) from each update() returning to the watcher thread receiving its event."""
    received: dict[str, float] = {}
    done = threading.Event()
    watch = watcher_store.watch(WIDGETS)

    def consume() -> None:
        while len(received) < writes:
            event = watch.next_event(timeout=5.0)
            if event is None:
                break
            received[event.resource_version] = time.perf_counter()
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    returned: dict[str, float] = {}
    for i in range(writes):
        obj = objects[i % len(objects)]
        obj["spec"]["touch"] = next(_TOUCH)  # always a real change: a no-op update writes nothing
        obj = writer.update(WIDGETS, obj)
        returned[obj["metadata"]["resourceVersion"]] = time.perf_counter()
        objects[i % len(objects)] = obj
        time.sleep(pace)
    done.wait(30)
    watch.close()
    thread.join()
    # The watcher may wake before update() returns to the writer: that delivery took ~0.
    return [max(0.0, received[rv] - t) for rv, t in returned.items() if rv in received]


def run(objects: int, data_dir: Path, watch_writes: int) -> dict[str, Any]:
    db = data_dir / "store-bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    store = Store.open(db)
    results: dict[str, Any] = {}

    created: list[dict[str, Any]] = []
    seconds = timed(lambda: created.extend(store.create(WIDGETS, widget(i)) for i in range(objects)))
    results["creates_per_s"] = rate(objects, seconds)

    keys = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in created]
    random.Random(1).shuffle(keys)
    results["gets_per_s"] = rate(objects, timed(lambda: [store.get(WIDGETS, n, ns) for ns, n in keys]))
    results["gets_per_s_4_threads_pooled"] = concurrent_gets(store, keys, 4)
    shared = Store.open(db, readers=0)
    results["gets_per_s_4_threads_shared_conn"] = concurrent_gets(shared, keys, 4)
    shared.close()

    for mode, readers in (("pooled", 4), ("shared_conn", 0)):
        for key, value in mixed_load(db, readers, created, min(objects, 3000)).items():
            results[f"mixed_{key}_{mode}"] = value

    results["list_all_ms"] = 1000 * timed(lambda: store.list(WIDGETS))
    results["list_namespace_ms"] = 1000 * timed(lambda: store.list(WIDGETS, NAMESPACES[0]))
    results["list_label_selector_ms"] = 1000 * timed(
        lambda: store.list(WIDGETS, label_selector=lambda labels: labels.get("shard") == "3")
    )

    def update_all() -> None:
        for i, obj in enumerate(created):
            obj["spec"]["replicas"] += 1
            created[i] = store.update(WIDGETS, obj)

    results["updates_per_s"] = rate(objects, timed(update_all))

    lat = watch_latency(store, store, created, watch_writes, pace=0.001)
    results["watch_p50_ms"] = 1000 * statistics.median(lat)
    results["watch_p99_ms"] = 1000 * percentile(lat, 99)
    results["watch_max_ms"] = 1000 * max(lat)
    results["watch_delivered"] = f"{len(lat)}/{watch_writes}"

    # Another Store on the same file sees writes only by polling, as another process would.
    other = Store.open(db)
    lat = watch_latency(store, other, created, min(200, watch_writes), pace=0.005)
    other.close()
    results["watch_other_process_p50_ms"] = 1000 * statistics.median(lat)
    results["watch_other_process_p99_ms"] = 1000 * percentile(lat, 99)
    results["db_size_mib"] = sum(p.stat().st_size for p in data_dir.glob("store-bench.db*")) / 2**20
    store.close()
    return results


ROWS: list[tuple[str, str, str, Callable[[float], bool] | None]] = [
    # (key, label, goal text, check)
    ("creates_per_s", "creates/s (1 object per txn)", ">= 5,000", lambda v: v >= 5000),
    ("updates_per_s", "updates/s (1 object per txn)", "", None),
    ("gets_per_s", "gets/s (1 thread)", "", None),
    ("gets_per_s_4_threads_pooled", "gets/s (4 threads, pooled readers)", "", None),
    ("gets_per_s_4_threads_shared_conn", "gets/s (4 threads, one shared conn)", "", None),
    ("mixed_updates_per_s_pooled", "writer + paced readers: updates/s, pooled", "", None),
    ("mixed_get_p99_ms_pooled", "writer + paced readers: get p99 (ms), pooled", "", None),
    ("mixed_updates_per_s_shared_conn", "writer + paced readers: updates/s, one conn", "", None),
    ("mixed_get_p99_ms_shared_conn", "writer + paced readers: get p99 (ms), one conn", "", None),
    ("list_all_ms", "list all objects (ms)", "", None),
    ("list_namespace_ms", "list one namespace (ms)", "", None),
    ("list_label_selector_ms", "list with label selector (ms)", "", None),
    ("watch_p50_ms", "watch latency p50 (ms)", "", None),
    ("watch_p99_ms", "watch latency p99 (ms)", "< 10", lambda v: v < 10),
    ("watch_max_ms", "watch latency max (ms)", "", None),
    ("watch_other_process_p50_ms", "watch latency, other process, p50 (ms)", "", None),
    ("watch_other_process_p99_ms", "watch latency, other process, p99 (ms)", "", None),
    ("db_size_mib", "database size (MiB)", "", None),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000, help="objects to create/get/update")
    parser.add_argument("--watch-writes", type=int, default=2_000, help="paced writes for watch latency")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the database goes (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)

    if args.data_dir is None:
        with tempfile.TemporaryDirectory(prefix="flotilla-store-bench-") as tmp:
            results = run(args.objects, Path(tmp), args.watch_writes)
    else:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        results = run(args.objects, args.data_dir, args.watch_writes)

    table = Table(title=f"flotilla.store, {args.objects} objects")
    for column in ("metric", "measured", "goal", "result"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    verdicts: dict[str, str] = {}
    for key, label, goal, check in ROWS:
        value = results[key]
        verdict = "" if check is None else ("PASS" if check(value) else "MISS")
        if verdict:
            verdicts[key] = verdict
        style = {"PASS": "green", "MISS": "red"}.get(verdict, "")
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
        table.add_row(label, shown, goal, f"[{style}]{verdict}[/{style}]" if verdict else "")
    table.add_row("watch events delivered", results["watch_delivered"], "", "")
    Console().print(table)

    report = {
        "benchmark": "store_bench",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
        },
        "params": {"objects": args.objects, "watch_writes": args.watch_writes},
        "goals": {"creates_per_s": ">= 5000", "watch_p99_ms": "< 10"},
        "verdicts": verdicts,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0 if all(v == "PASS" for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
