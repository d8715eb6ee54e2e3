"""Pending workloads per LocalQueue, as Kueue's queue manager keeps them, with parking by group.

Within a LocalQueue, workloads that are scheduling-equivalent (same priority and pod sets: the
index numbers each such group) are kept together: a list of the ready ones sorted by queue order
(higher priority, earlier queue-order timestamp, then key), and the parked ones (set aside until a
capacity event), in batches, each sorted and held by one `Park`. A head that does not fit parks
its whole group (Kueue's SchedulingEquivalenceHashing: what is equivalent cannot fit either) and
a capacity event unparks whole LocalQueues: moving a list, or merging sorted lists, rather than
work per workload, which with thousands waiting is most of a pass.

A group parked again while it holds a batch parked the same way (timed or not) joins that batch,
and the batch's retry clock restarts: the class was just tried again.

The head of a LocalQueue is its first ready workload, over all its groups, that is not backing off.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain

from flotilla.queue.driver import Park

OrderKey = tuple[int, float, str]  # (-priority, queue-order timestamp, key)


def _find(orders: list[OrderKey], order: OrderKey) -> int | None:
    i = bisect.bisect_left(orders, order)
    return i if i < len(orders) and orders[i] == order else None


@dataclass
class Group:
    queue: str
    ready: list[OrderKey] = field(default_factory=list)
    parked: list[tuple[Park, list[OrderKey]]] = field(default_factory=list)

    def batch_of(self, order: OrderKey) -> tuple[int, int] | None:
        """(batch, position) of a parked workload."""
        for b, (_, orders) in enumerate(self.parked):
            if (i := _find(orders, order)) is not None:
                return b, i
        return None

    @property
    def parked_count(self) -> int:
        return sum(len(orders) for _, orders in self.parked)


class PendingQueues:
    """See the module docstring. `retry_after`: seconds until a timed park is retried."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.groups: dict[int, Group] = {}
        self._in_queue: dict[str, set[int]] = {}  # LocalQueue -> its groups with members
        self._ready_in_queue: dict[str, set[int]] = {}  # LocalQueue -> its groups with ready members
        self.backoff: dict[str, tuple[float, int, OrderKey]] = {}  # key -> (requeueAt, group, order)
        self._timed: deque[tuple[float, int, Park]] = deque()  # (due, group, park), in order of parking

    def clear(self) -> None:
        self.groups.clear()
        self._in_queue.clear()
        self._ready_in_queue.clear()
        self.backoff.clear()
        self._timed.clear()

    # -- membership -------------------------------------------------------------------------------
    def add(self, queue: str, group: int, order: OrderKey, requeue_at: float, park: Park | None = None) -> None:
        """A pending workload; parked with `park` when given (a new version of a parked one)."""
        g = self.groups.get(group)
        if g is None:
            g = self.groups[group] = Group(queue)
            self._in_queue.setdefault(queue, set()).add(group)
        if park is None:
            bisect.insort(g.ready, order)
            self._ready_in_queue.setdefault(queue, set()).add(group)
        else:
            batch = next((orders for p, orders in g.parked if p is park), None)
            if batch is None:
                g.parked.append((park, [order]))
            else:
                bisect.insort(batch, order)
        if requeue_at > 0:
            self.backoff[order[2]] = (requeue_at, group, order)

    def remove(self, group: int, order: OrderKey) -> Park | None:
        """A workload is no longer pending (or changes); the Park it was parked with, if any."""
        g = self.groups[group]
        self.backoff.pop(order[2], None)
        park = None
        if (found := g.batch_of(order)) is not None:
            park, orders = g.parked[found[0]]
            orders.pop(found[1])
            if not orders:
                g.parked.pop(found[0])
        elif (i := _find(g.ready, order)) is not None:
            g.ready.pop(i)
        self._settle(group, g)
        return park

    def _settle(self, group: int, g: Group) -> None:
        if not g.ready:
            self._ready_in_queue.get(g.queue, set()).discard(group)
            if not g.parked:
                del self.groups[group]
                self._in_queue[g.queue].discard(group)

    def is_parked(self, group: int, order: OrderKey) -> bool:
        g = self.groups.get(group)
        return g is not None and g.batch_of(order) is not None

    def park_of(self, group: int, order: OrderKey) -> Park | None:
        g = self.groups.get(group)
        found = None if g is None else g.batch_of(order)
        return None if g is None or found is None else g.parked[found[0]][0]

    # -- heads ------------------------------------------------------------------------------------
    def head(self, queue: str, now: float) -> str | None:
        """The first ready workload of `queue` in queue order that is not backing off."""
        best: OrderKey | None = None
        for group in self._ready_in_queue.get(queue, ()):
            for order in self.groups[group].ready:
                if order[2] not in self.backoff or self.backoff[order[2]][0] <= now:
                    if best is None or order < best:
                        best = order
                    break
        return None if best is None else best[2]

    # -- parking ----------------------------------------------------------------------------------
    def park(self, group: int, order: OrderKey, park: Park, whole_group: bool) -> None:
        """Park one ready workload, or every ready workload of its group."""
        g = self.groups[group]
        if whole_group:
            leaving, g.ready = g.ready, []
        elif (i := _find(g.ready, order)) is not None:
            leaving = [g.ready.pop(i)]
        else:
            return
        last = g.parked[-1] if g.parked else None
        if last is not None and last[0].timed == park.timed:
            g.parked[-1] = (park, sorted(last[1] + leaving))
        else:
            g.parked.append((park, leaving))
        self._settle(group, g)
        if park.timed:
            self._timed.append((park.since + self.retry_after, group, park))

    def unpark(self, group: int, order: OrderKey) -> None:
        g = self.groups.get(group)
        found = None if g is None else g.batch_of(order)
        if g is None or found is None:
            return
        orders = g.parked[found[0]][1]
        orders.pop(found[1])
        if not orders:
            g.parked.pop(found[0])
        bisect.insort(g.ready, order)
        self._ready_in_queue.setdefault(g.queue, set()).add(group)

    def _unpark_group(self, group: int, g: Group, only: Park | None = None) -> None:
        leaving = [orders for p, orders in g.parked if only is None or p is only]
        if not leaving:
            return
        g.parked = [] if only is None else [(p, orders) for p, orders in g.parked if p is not only]
        g.ready = sorted(chain(g.ready, *leaving))  # sorted runs: a merge
        self._ready_in_queue.setdefault(g.queue, set()).add(group)

    def unpark_queues(self, queues: Iterable[str] | None) -> None:
        """Unpark every workload parked in these LocalQueues (None: in all)."""
        chosen = list(self._in_queue) if queues is None else queues
        for queue in chosen:
            for group in self._in_queue.get(queue, ()):
                self._unpark_group(group, self.groups[group])

    @property
    def parked_queues(self) -> set[str]:
        return {g.queue for g in self.groups.values() if g.parked}

    def parked_keys(self) -> frozenset[str]:
        return frozenset(o[2] for g in self.groups.values() for _, orders in g.parked for o in orders)

    def retry_due(self, now: float) -> None:
        """Unpark what timed parks have held for `retry_after` seconds."""
        while self._timed and self._timed[0][0] <= now:
            _, group, park = self._timed.popleft()
            g = self.groups.get(group)
            if g is not None:
                self._unpark_group(group, g, park)

    def next_retry(self) -> float | None:
        """When `retry_due` next has something to do."""
        while self._timed:
            due, group, park = self._timed[0]
            g = self.groups.get(group)
            if g is not None and any(p is park for p, _ in g.parked):
                return due
            self._timed.popleft()
        return None

    # -- counting ---------------------------------------------------------------------------------
    def counts(self, now: float) -> dict[str, tuple[int, int]]:
        """LocalQueue -> (pending, of which parked or backing off)."""
        backing: dict[str, int] = {}
        for at, group, order in self.backoff.values():
            if at > now and not self.is_parked(group, order):
                queue = self.groups[group].queue
                backing[queue] = backing.get(queue, 0) + 1
        out: dict[str, tuple[int, int]] = {}
        for queue, groups in self._in_queue.items():
            total, waiting = 0, backing.get(queue, 0)
            for group in groups:
                g = self.groups[group]
                parked = g.parked_count
                total += len(g.ready) + parked
                waiting += parked
            if total:
                out[queue] = (total, waiting)
        return out
