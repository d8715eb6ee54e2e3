"""The queue controller's indexes over its cached Workloads, kept current one change at a time.

What a pass needs, without looking at every Workload (Kueue's queue manager and cache):

- per LocalQueue, its pending workloads in queue order (higher priority, earlier queue-order
  timestamp, then key), and parking, in `pending.PendingQueues`: the first that is neither parked
  nor backing off is the only one of that queue the policy needs to see (it offers one head per
  ClusterQueue, the first by the same order, after LocalQueue usage, which is the same within a
  LocalQueue);
- the workloads holding quota per ClusterQueue (the policy's admitted usage) and a log of quota
  released since it was last read (capacity events);
- per-queue counts and usage for queue status and metrics (what `status.queue_view` computes
  from every Workload);
- WorkloadInfos, built once per resourceVersion.

`rebuild` derives everything from the objects; `update` applies one Workload's change. The owner of
the ApiObjects calls `rebuild` whenever a queue, flavor, cohort, namespace or priority class changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.queue import workloads as wls
from flotilla.queue.build import ApiObjects, queue_order_timestamp, workload_info, workload_priority
from flotilla.queue.driver import Park
from flotilla.queue.pending import OrderKey, PendingQueues
from flotilla.queue.status import QueueCounts, QueueView, Usage
from flotilla.queue.types import QueueConfig, WorkloadInfo

JSON = dict[str, Any]


@dataclass(frozen=True)
class Holder:
    cluster_queue: str
    uid: str


@dataclass(frozen=True)
class Entry:
    """What the index took from one version of a Workload (so that it can be taken back)."""

    queue: str  # "namespace/queueName"
    uid: str
    generation: int
    pending: bool
    order: OrderKey
    equivalence: int  # workloads with the same number are scheduling-equivalent
    requeue_at: float
    holder: Holder | None
    admitted: bool
    usage: tuple[tuple[tuple[str, str], int], ...]


def _usage(wl: Mapping[str, Any]) -> tuple[tuple[tuple[str, str], int], ...]:
    out: Usage = {}
    for psa in ((wl.get("status") or {}).get("admission") or {}).get("podSetAssignments") or []:
        flavors = psa.get("flavors") or {}
        for resource, q in (psa.get("resourceUsage") or {}).items():
            fr = (flavors.get(resource, ""), resource)
            out[fr] = out.get(fr, 0) + wls.milli(q)
    return tuple(out.items())


def equivalence(wl: Mapping[str, Any], queue: str, priority: int) -> int:
    """Workloads of one LocalQueue with the same priority and pod sets (the templates less their
    metadata) are admitted or not alike: the same number (a 128-bit digest) for all of them."""
    pod_sets = [
        {**ps, "template": {k: v for k, v in (ps.get("template") or {}).items() if k != "metadata"}}
        for ps in (wl.get("spec") or {}).get("podSets") or []
    ]
    text = json.dumps([queue, priority, pod_sets], sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest())


@dataclass
class WorkloadIndex:
    objs: ApiObjects
    config: QueueConfig
    entries: dict[str, Entry] = field(default_factory=dict)
    holders: dict[str, dict[str, Holder]] = field(default_factory=dict)  # ClusterQueue -> key -> holder
    cq_counts: dict[str, QueueCounts] = field(default_factory=dict)  # holders' share only
    lq_counts: dict[str, QueueCounts] = field(default_factory=dict)
    pending: PendingQueues = field(init=False)
    _released: set[str] = field(default_factory=set)  # ClusterQueues where quota was released
    _infos: dict[str, tuple[str, WorkloadInfo]] = field(default_factory=dict)
    _holding: dict[str, WorkloadInfo] = field(default_factory=dict)  # holders whose info is built
    _holding_changed: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pending = PendingQueues(self.config.inadmissibleRetrySeconds)

    # -- keeping current ---------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Derive everything again from `objs` (parking and the log of releases survive)."""
        parked = {k: self._park_of(k) for k in self.pending.parked_keys()}
        self.entries.clear()
        self.pending.clear()
        self.holders.clear()
        self.cq_counts.clear()
        self.lq_counts.clear()
        self._infos.clear()
        self._holding.clear()
        self._holding_changed.clear()
        for key, wl in self.objs.workloads.items():
            self._add(key, self._entry(key, wl, None), parked.get(key))

    def _park_of(self, key: str) -> Park | None:
        e = self.entries[key]
        return self.pending.park_of(e.equivalence, e.order)

    def update(self, key: str, wl: JSON | None) -> None:
        """One Workload changed (None: it is gone). A parked workload stays parked while its
        spec stays the same."""
        old = self.entries.pop(key, None)
        park = None if old is None else self._take_back(key, old)
        new = None if wl is None else self._entry(key, wl, old)
        if new is not None:
            same_spec = old is not None and (old.uid, old.generation) == (new.uid, new.generation)
            self._add(key, new, park if same_spec else None)
        if old is not None and old.holder is not None and (new is None or new.holder != old.holder):
            self._released.add(old.holder.cluster_queue)
        self._infos.pop(key, None)  # built from an older version
        if self._holding.pop(key, None) is not None or (new is not None and new.holder is not None):
            self._holding_changed.add(key)

    def _entry(self, key: str, wl: Mapping[str, Any], old: Entry | None) -> Entry:
        meta, spec = wl["metadata"], wl.get("spec") or {}
        queue = f"{meta.get('namespace')}/{spec.get('queueName')}"
        uid, generation = str(meta.get("uid", "")), int(meta.get("generation", 0))
        priority = workload_priority(wl, self.objs.priority_classes)
        if old is not None and (old.uid, old.generation, -old.order[0]) == (uid, generation, priority):
            same = old.equivalence
        else:
            same = equivalence(wl, queue, priority)
        holds = wls.holds_quota(wl)
        return Entry(
            queue=queue,
            uid=uid,
            generation=generation,
            pending=wls.is_pending(wl),
            order=(-priority, queue_order_timestamp(wl, self.config), key),
            equivalence=same,
            requeue_at=wls.requeue_at(wl),
            holder=Holder(wl["status"]["admission"]["clusterQueue"], uid) if holds else None,
            admitted=holds and wls.is_admitted(wl),
            usage=_usage(wl) if holds else (),
        )

    def _add(self, key: str, e: Entry, park: Park | None) -> None:
        self.entries[key] = e
        if e.pending:
            self.pending.add(e.queue, e.equivalence, e.order, e.requeue_at, park)
        if e.holder is not None:
            self.holders.setdefault(e.holder.cluster_queue, {})[key] = e.holder
            self._holding_changed.add(key)
        self._count(e, +1)

    def _take_back(self, key: str, e: Entry) -> Park | None:
        park = self.pending.remove(e.equivalence, e.order) if e.pending else None
        if e.holder is not None:
            self.holders[e.holder.cluster_queue].pop(key, None)
        self._count(e, -1)
        return park

    def _count(self, e: Entry, sign: int) -> None:
        """A holder's share of its queues' counts (as `status.queue_view` counts it)."""
        if e.holder is None:
            return
        targets = [_counts(self.cq_counts, e.holder.cluster_queue)]
        if e.queue in self.objs.local_queues:
            targets.append(_counts(self.lq_counts, e.queue))
        for counts in targets:
            counts.reserving += sign
            _add_usage(counts.reserved, e.usage, sign)
            if e.admitted:
                counts.admitted += sign
                _add_usage(counts.used, e.usage, sign)

    # -- parking -----------------------------------------------------------------------------------
    def park(self, key: str, park: Park, with_equivalents: bool) -> None:
        """Set a pending workload aside until a capacity event, its spec changing, or, for a timed
        park, the retry time; `with_equivalents`: and the workloads equivalent to it."""
        e = self.entries.get(key)
        if e is not None and e.pending:
            self.pending.park(e.equivalence, e.order, park, with_equivalents)

    def unpark(self, key: str) -> None:
        e = self.entries.get(key)
        if e is not None and e.pending:
            self.pending.unpark(e.equivalence, e.order)

    def is_parked(self, key: str) -> bool:
        e = self.entries.get(key)
        return e is not None and e.pending and self.pending.is_parked(e.equivalence, e.order)

    def take_released(self) -> set[str]:
        """ClusterQueues in which some workload stopped holding quota since the last call."""
        out, self._released = self._released, set()
        return out

    # -- reading -----------------------------------------------------------------------------------
    def heads(self, now: float, queues: Iterable[str]) -> list[str]:
        """Per LocalQueue given, its first pending workload that is neither parked nor backing off."""
        return [key for q in queues if (key := self.pending.head(q, now)) is not None]

    def info(self, key: str) -> WorkloadInfo:
        """The policy's view of a (pending or holding) workload, built once per resourceVersion."""
        wl = self.objs.workloads[key]
        rv = str(wl["metadata"].get("resourceVersion"))
        cached = self._infos.get(key)
        if cached is not None and cached[0] == rv:
            return cached[1]
        info = workload_info(wl, self.objs, self.config, False)
        self._infos[key] = (rv, info)
        return info

    def holding(self) -> dict[str, WorkloadInfo]:
        """Every workload holding quota, as WorkloadInfos (the policy's admitted usage)."""
        for key in self._holding_changed:
            e = self.entries.get(key)
            if e is not None and e.holder is not None:
                self._holding[key] = self.info(key)
        self._holding_changed.clear()
        return dict(self._holding)

    def view(self, now: float, open_queues: Mapping[str, bool]) -> QueueView:
        """Per-queue counts, as `status.queue_view` computes them from every Workload.
        `open_queues`: existing LocalQueues -> whether their pending workloads are candidates."""
        cqs = {n: _copy(c) for n, c in self.cq_counts.items()}
        lqs = {n: _copy(c) for n, c in self.lq_counts.items()}
        for q, (total, waiting) in self.pending.counts(now).items():
            if q not in open_queues:
                continue
            inadmissible = waiting if open_queues[q] else total
            cq = str(self.objs.local_queues[q]["spec"]["clusterQueue"])
            for counts in (_counts(lqs, q), _counts(cqs, cq)):
                counts.pending_active += total - inadmissible
                counts.pending_inadmissible += inadmissible
        return QueueView(cqs, lqs)


def _counts(table: dict[str, QueueCounts], name: str) -> QueueCounts:
    counts = table.get(name)
    if counts is None:
        counts = table[name] = QueueCounts()
    return counts


def _add_usage(usage: Usage, amounts: tuple[tuple[tuple[str, str], int], ...], sign: int) -> None:
    for fr, v in amounts:
        usage[fr] = usage.get(fr, 0) + sign * v


def _copy(c: QueueCounts) -> QueueCounts:
    return QueueCounts(
        c.pending_active, c.pending_inadmissible, c.reserving, c.admitted, dict(c.reserved), dict(c.used)
    )
