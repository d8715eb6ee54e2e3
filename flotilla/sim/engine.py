"""A deterministic discrete-event core: a simulated clock and an ordered event queue.

Events run in order of (time, priority, sequence): the sequence number is per engine, so equal
events run in the order they were scheduled and a run is reproducible. Randomness comes from the
engine's seeded generator. No globals: every simulation owns its engine.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class _Event:
    time: float
    priority: int
    seq: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class EventHandle:
    """Returned by `Engine.at`; `cancel()` drops the event if it has not run."""

    def __init__(self, event: _Event) -> None:
        self._event = event

    def cancel(self) -> None:
        self._event.cancelled = True


class Engine:
    def __init__(self, seed: int = 0, start: float = 0.0) -> None:
        self.now = start
        self.rng = random.Random(seed)
        self._queue: list[_Event] = []
        self._seq = 0
        self.events_run = 0

    def at(self, time: float, action: Callable[[], None], priority: int = 0) -> EventHandle:
        """Run `action` at simulated `time` (never before now); lower priority runs first."""
        if time < self.now:
            raise ValueError(f"cannot schedule an event in the past ({time} < {self.now})")
        self._seq += 1
        event = _Event(time, priority, self._seq, action)
        heapq.heappush(self._queue, event)
        return EventHandle(event)

    def after(self, delay: float, action: Callable[[], None], priority: int = 0) -> EventHandle:
        return self.at(self.now + delay, action, priority)

    def peek(self) -> float | None:
        """The time of the next pending event, or None."""
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0].time if self._queue else None

    def step(self) -> bool:
        """Run the next event; False when there is none."""
        if self.peek() is None:
            return False
        event = heapq.heappop(self._queue)
        self.now = event.time
        self.events_run += 1
        event.action()
        return True

    def run(self, until: float | None = None, on_quiescent: Callable[[], None] | None = None) -> None:
        """Run events in order. After every batch of events at one instant, `on_quiescent` runs
        (the place for a scheduling cycle); it may schedule more events."""
        while True:
            nxt = self.peek()
            if nxt is None or (until is not None and nxt > until):
                break
            while self.peek() == nxt:
                self.step()
            if on_quiescent is not None:
                on_quiescent()
        if until is not None:
            self.now = max(self.now, until)
