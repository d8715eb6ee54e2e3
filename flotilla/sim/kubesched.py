"""kube-scheduler's scheduling queue on a simulated clock: what a Job's pod goes through without Kueue.

The model of kube-scheduler's PriorityQueue (pkg/scheduler/internal/queue, v1.31), with the timings of
`KubeSchedulerParams` (flotilla/sim/data/whisper.yaml, [sched]):

- activeQ: pods ready to be tried, popped by priority (higher first), then queue timestamp (older first):
  the PrioritySort plugin. A new pod enters activeQ with timestamp = now.
- a pop counts an attempt. A failed attempt (no node fits) refreshes the pod's timestamp to now and
  parks it among the unschedulable pods.
- a cluster event that can make room (an assigned pod deleted or finished) moves every unschedulable pod:
  to backoffQ while its backoff lasts (timestamp + initial x 2^(attempts-1), at most max), else to activeQ.
- backoffQ is flushed every `backoff_flush_period_s` (ticks at multiples of it): pods whose backoff has
  ended move to activeQ.
- every `unschedulable_flush_period_s`, pods unschedulable for longer than `max_in_unschedulable_s` move
  as on a cluster event.

Scheduling takes no simulated time. The driver pops and tries pods after each instant's events, moves
pods on its events, and wakes the queue at `next_wakeup()` to `flush()`. Not modelled: queueing hints that
skip a move (every pod is moved on every event), SchedulerPopFromBackoffQ (v1.33), nominated pods,
scheduling gates.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Literal

from flotilla.sim.perfdata import KubeSchedulerParams

State = Literal["active", "backoff", "unschedulable", "gone"]
_EPS = 1e-9


@dataclass
class QueuedPod:
    """One pod in the queue. `timestamp` orders activeQ; `attempts` sets the backoff."""

    key: str
    priority: int
    timestamp: float
    seq: int
    attempts: int = 0
    state: State = "active"
    token: int = 0  # bumped on every move: heap entries with an older token are stale

    def backoff_expiry(self, params: KubeSchedulerParams) -> float:
        return self.timestamp + (params.backoff(self.attempts) if self.attempts else 0.0)


class SchedulingQueue:
    """activeQ, backoffQ and the unschedulable pods (see the module docstring)."""

    def __init__(self, params: KubeSchedulerParams | None = None) -> None:
        self.params = params or KubeSchedulerParams()
        self.pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, int, str]] = []  # (-priority, timestamp, seq, token, key)
        self._backoff: list[tuple[float, int, int, str]] = []  # (expiry, seq, token, key)
        self._unschedulable: dict[str, QueuedPod] = {}
        self._leftover: list[tuple[float, int, int, str]] = []  # (timestamp, seq, token, key)
        self._seq = 0
        self.moves = 0  # pods moved by events and flushes

    # -- inputs ---------------------------------------------------------------------------------------
    def add(self, key: str, priority: int, now: float) -> None:
        """A new pod: into activeQ, timestamp now."""
        if key in self.pods:
            raise ValueError(f"pod {key} is already queued")
        self._seq += 1
        pod = QueuedPod(key, priority, now, self._seq)
        self.pods[key] = pod
        self._to_active(pod)

    def delete(self, key: str) -> None:
        """The pod is gone (deleted, or bound: `pop` already removed it)."""
        pod = self.pods.pop(key, None)
        if pod is not None:
            pod.state = "gone"
            pod.token += 1
            self._unschedulable.pop(key, None)

    def pop(self) -> QueuedPod | None:
        """The next pod to try (highest priority, then oldest timestamp), or None; counts an attempt.
        The pod stays known to the queue until `delete` (bound) or `failed` (back among the unschedulable)."""
        while self._active:
            _, _, _, token, key = heapq.heappop(self._active)
            pod = self.pods.get(key)
            if pod is None or pod.token != token or pod.state != "active":
                continue
            pod.attempts += 1
            pod.state = "gone"  # in flight
            pod.token += 1
            return pod
        return None

    def failed(self, pod: QueuedPod, now: float) -> None:
        """No node fit: timestamp refreshed, parked among the unschedulable pods."""
        pod.timestamp = now
        pod.state = "unschedulable"
        pod.token += 1
        self._unschedulable[pod.key] = pod
        heapq.heappush(self._leftover, (now, pod.seq, pod.token, pod.key))

    def move_all(self, now: float) -> int:
        """A cluster event that may make room: every unschedulable pod to backoffQ or activeQ."""
        pods = list(self._unschedulable.values())
        self._unschedulable.clear()
        for pod in pods:
            self._move(pod, now)
        return len(pods)

    def flush(self, now: float) -> None:
        """The periodic flushes due by `now`: backoffQ pods whose backoff ended -> activeQ, and pods
        unschedulable for longer than max_in_unschedulable_s -> moved as on an event."""
        while self._backoff and self._backoff[0][0] <= now + _EPS:
            _, _, token, key = heapq.heappop(self._backoff)
            pod = self.pods.get(key)
            if pod is not None and pod.token == token and pod.state == "backoff":
                self._to_active(pod)
        limit = self.params.max_in_unschedulable_s
        while self._leftover and now - self._leftover[0][0] > limit - _EPS:
            _, _, token, key = heapq.heappop(self._leftover)
            pod = self._unschedulable.get(key)
            if pod is not None and pod.token == token:
                del self._unschedulable[key]
                self._move(pod, now)

    def next_wakeup(self) -> float | None:
        """When `flush` next has something to do: the backoff flush tick at or after the earliest backoff
        expiry, the unschedulable flush tick after the earliest pod's limit; None when neither is pending."""
        self._drop_stale()
        times = []
        if self._backoff:
            period = self.params.backoff_flush_period_s
            times.append(math.ceil(self._backoff[0][0] / period - _EPS) * period)
        if self._leftover:
            period = self.params.unschedulable_flush_period_s
            due = self._leftover[0][0] + self.params.max_in_unschedulable_s
            times.append((math.floor(due / period + _EPS) + 1) * period)
        return min(times) if times else None

    # -- state --------------------------------------------------------------------------------------
    @property
    def has_active(self) -> bool:
        self._drop_stale()
        return bool(self._active)

    def count(self, state: State) -> int:
        return sum(1 for p in self.pods.values() if p.state == state)

    # -- moves ---------------------------------------------------------------------------------------
    def _move(self, pod: QueuedPod, now: float) -> None:
        self.moves += 1
        expiry = pod.backoff_expiry(self.params)
        if expiry > now + _EPS:
            pod.state = "backoff"
            pod.token += 1
            heapq.heappush(self._backoff, (expiry, pod.seq, pod.token, pod.key))
        else:
            self._to_active(pod)

    def _to_active(self, pod: QueuedPod) -> None:
        pod.state = "active"
        pod.token += 1
        heapq.heappush(self._active, (-pod.priority, pod.timestamp, pod.seq, pod.token, pod.key))

    def _drop_stale(self) -> None:
        for heap, state in ((self._backoff, "backoff"), (self._leftover, "unschedulable")):
            while heap:
                key, token = heap[0][3], heap[0][2]
                pod = self.pods.get(key)
                if pod is not None and pod.token == token and pod.state == state:
                    break
                heapq.heappop(heap)
        while self._active:
            pod = self.pods.get(self._active[0][4])
            if pod is not None and pod.token == self._active[0][3] and pod.state == "active":
                break
            heapq.heappop(self._active)
