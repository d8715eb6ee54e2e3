"""Writes to a store in an endless loop until killed: the subject of test_crash_consistency.

    python tests/store/crash_writer.py DB SEED PROGRESS

Prints "ready" once the store is open, then runs a seeded mix of creates, updates, status
updates, deletes, finalizer flows, applies and create_many batches. After every acknowledged
write it appends the revision to PROGRESS, so the test can check that nothing acknowledged was
lost. Imports only the store (stdlib-only) so that it starts fast.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from flotilla.store import AlreadyExists, Conflict, NotFound, ResourceType, Store

ITEM = ResourceType("crash.test", "v1", "Item", "items", namespaced=True)
# Batch members are only ever written by create_many and never changed: a batch must be whole.
MEMBER = ResourceType("crash.test", "v1", "Member", "members", namespaced=False)
NAMESPACES = ("a", "b", "c")
RETENTION = 500  # small, so that kills also land during event-log trimming


class Writer:
    def __init__(self, store: Store, rng: random.Random, seed: int) -> None:
        self.store = store
        self.rng = rng
        self.seed = seed
        self.batches = 0
        items, _ = store.list(ITEM)
        self.keys = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]

    def pick(self) -> tuple[str, str]:
        if not self.keys:
            raise NotFound("nothing to pick")
        return self.rng.choice(self.keys)

    def create(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"generateName": "item-", "namespace": self.rng.choice(NAMESPACES)}
        if self.rng.random() < 0.4:
            meta["finalizers"] = ["crash.test/hold"]
        obj = self.store.create(ITEM, {"metadata": meta, "spec": {"n": 0}, "status": {"phase": "New"}})
        self.keys.append((meta["namespace"], obj["metadata"]["name"]))
        return obj

    def update(self) -> dict[str, Any]:
        ns, name = self.pick()
        obj = self.store.get(ITEM, name, ns)
        obj["spec"]["n"] += 1
        obj["metadata"].setdefault("labels", {})["touched"] = str(self.rng.randrange(5))
        return self.store.update(ITEM, obj)

    def status(self) -> dict[str, Any]:
        ns, name = self.pick()
        phase = self.rng.choice(["Pending", "Running", "Done"])
        return self.store.patch(ITEM, name, ns, {"status": {"phase": phase}}, subresource="status")

    def delete(self) -> dict[str, Any]:
        ns, name = self.pick()
        obj = self.store.delete(ITEM, name, ns)
        if not obj["metadata"].get("finalizers"):
            self.keys.remove((ns, name))
        return obj

    def release(self) -> dict[str, Any]:
        ns, name = self.pick()
        obj = self.store.patch(ITEM, name, ns, {"metadata": {"finalizers": None}})
        if obj["metadata"].get("deletionTimestamp"):
            self.keys.remove((ns, name))
        return obj

    def apply_many(self) -> dict[str, Any]:
        ns = self.rng.choice(NAMESPACES)
        items = [
            (ITEM, {"metadata": {"name": f"applied-{i}", "namespace": ns}, "spec": {"n": self.rng.randrange(3)}})
            for i in range(self.rng.randint(1, 4))
        ]
        results = self.store.apply_many(items)
        self.keys.extend((ns, o["metadata"]["name"]) for o, created in results if created)
        return results[-1][0]

    def batch(self) -> dict[str, Any]:
        self.batches += 1
        batch = f"{self.seed}-{self.batches}"
        size = self.rng.randint(2, 6)
        members = [
            (MEMBER, {"metadata": {"name": f"m-{batch}-{j}", "labels": {"batch": batch, "size": str(size)}}})
            for j in range(size)
        ]
        return self.store.create_many(members)[-1]

    def step(self) -> str:
        op = self.rng.choices(
            [self.create, self.update, self.status, self.delete, self.release, self.apply_many, self.batch],
            weights=[25, 20, 15, 12, 10, 8, 10],
        )[0]
        obj = op()
        return str(obj["metadata"]["resourceVersion"])


def main(db: str, seed: int, progress_path: str) -> None:
    rng = random.Random(seed)
    with Store.open(db, event_retention=RETENTION, rng=rng) as store, open(progress_path, "a") as progress:
        writer = Writer(store, rng, seed)
        print("ready", flush=True)
        while True:
            try:
                revision = writer.step()
            except (NotFound, AlreadyExists, Conflict):
                continue
            progress.write(revision + "\n")
            progress.flush()  # to the kernel: survives SIGKILL of this process


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
