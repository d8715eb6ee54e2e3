"""The live driver: an asyncio task that steps an engine in (scaled) real time.

Engine time = (wall seconds since start) x speed. Each iteration calls `engine.step(now)`, sleeps
`(step end - now) / speed` wall seconds (the modelled step time, scaled), then publishes the step:
metrics, KV events, and each request's new token to whoever waits for it. With nothing to do it
waits for a request. Requests join the engine's waiting queue at their arrival time while a step
runs, and are scheduled by the next step, as in vLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flotilla.serving.emulator.engine import Engine, StepResult
from flotilla.serving.emulator.kvevents import KVEventLog
from flotilla.serving.emulator.metrics import EngineMetrics
from flotilla.serving.emulator.request import Request

log = logging.getLogger(__name__)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the engine loop stopped", exc_info=task.exception())


class QueueFullError(RuntimeError):
    """The engine's waiting queue is at its limit (answered 429)."""


@dataclass
class RequestHandle:
    """A submitted request and its new tokens as they come: (token id, the request finished)."""

    request: Request
    tokens: asyncio.Queue[tuple[int, bool]] = field(default_factory=asyncio.Queue)


class EngineDriver:
    """Steps `engine` on an asyncio loop; `speed` > 1 runs the emulated GPU faster than real time."""

    def __init__(
        self,
        engine: Engine,
        *,
        speed: float = 1.0,
        max_queue_len: int = 2048,
        clock: Callable[[], float] = time.monotonic,
        kv_event_capacity: int = 10_000,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.engine, self.speed, self.max_queue_len = engine, speed, max_queue_len
        self.metrics = EngineMetrics(engine)
        self.kv_events = KVEventLog(kv_event_capacity)
        self._clock, self._t0 = clock, clock()
        self._handles: dict[str, RequestHandle] = {}
        self._wake = asyncio.Event()
        self._kv_published = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        """Engine time: wall seconds since start, times speed."""
        return (self._clock() - self._t0) * self.speed

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="flotilla-engine")
            self._task.add_done_callback(_log_crash)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- requests ---------------------------------------------------------------------------------
    def submit(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        *,
        max_tokens: int | None,
        output_len: int | None = None,
        min_tokens: int = 0,
        lora: str | None = None,
    ) -> RequestHandle:
        """Queue a request now; QueueFullError past max_queue_len waiting; the engine's errors pass through."""
        if self.engine.num_waiting >= self.max_queue_len:
            raise QueueFullError(
                f"the waiting queue holds {self.engine.num_waiting} requests (limit {self.max_queue_len}); retry later"
            )
        request = self.engine.add_request(
            request_id,
            prompt_token_ids,
            arrival_time=self.now(),
            max_tokens=max_tokens,
            output_len=output_len,
            min_tokens=min_tokens,
            lora=lora,
        )
        handle = RequestHandle(request)
        self._handles[request_id] = handle
        self._wake.set()
        return handle

    def abort(self, request_id: str) -> None:
        """The client went away: stop generating (reported as finished "abort")."""
        if self._handles.pop(request_id, None) is not None:
            self.engine.abort_request(request_id, self.now())
            self._wake.set()

    def reset_prefix_cache(self) -> bool:
        reset = self.engine.reset_prefix_cache()
        if reset:
            self._publish_kv(self.now())
        return reset

    async def wait_kv_events(self, since: int, timeout: float) -> None:
        """Return when batches after `since` exist, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.kv_events.last_seq <= since:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._kv_published.wait(), left)
            except TimeoutError:
                return

    # -- the loop -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        engine = self.engine
        while True:
            if not engine.has_unfinished_requests():
                self._wake.clear()
                await self._wake.wait()
                continue
            result = engine.step(self.now())
            delay = (result.end - self.now()) / self.speed
            await asyncio.sleep(delay if delay > 0 else 0)
            try:
                self._publish(result)
            except Exception:  # a bug in publishing must not stop the engine
                log.exception("publishing engine step failed")

    def _publish(self, result: StepResult) -> None:
        self.metrics.record(result)
        if result.kv_events:
            self.kv_events.append(result.end, result.kv_events)
            self._signal_kv()
        handles = self._handles
        for request, token in result.outputs:
            handle = handles.get(request.request_id)
            if handle is None or handle.request is not request:
                continue
            done = request.is_finished
            handle.tokens.put_nowait((token, done))
            if done:
                del handles[request.request_id]

    def _publish_kv(self, ts: float) -> None:
        events = self.engine.kv.take_events()
        if events:
            self.kv_events.append(ts, events)
            self._signal_kv()

    def _signal_kv(self) -> None:
        event, self._kv_published = self._kv_published, asyncio.Event()
        event.set()
