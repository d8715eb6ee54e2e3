"""Run a profile's benchmarks: send requests as each step says, record them as they end.

A benchmark stops issuing requests when it has issued `max_requests` or `max_seconds` have passed
since its start (either or both); requests in flight then run to their end and count. Prompts are
taken in order from the dataset, from its first, cycling. Each RequestRecord goes to the run
directory's requests.jsonl as soon as the request ends, with the benchmark's name in `item`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.loadgen.datasets import Prompt
from flotilla.loadgen.profiles import ProfileParams, Step, arrivals, next_step
from flotilla.loadgen.stats import benchmark_summary
from flotilla.runs.records import RequestRecord

# prompt, request id, item (the benchmark's name) -> the record of the request once it ended
Sender = Callable[[Prompt, str, str], Awaitable[RequestRecord]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class StopCondition:
    """When a benchmark stops issuing requests: after `max_requests`, or `max_seconds` after its start."""

    max_requests: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_requests is None and self.max_seconds is None:
            raise ValueError("give --max-requests or --max-seconds (or both)")
        if (self.max_requests is not None and self.max_requests < 1) or (
            self.max_seconds is not None and self.max_seconds <= 0
        ):
            raise ValueError("--max-requests and --max-seconds must be > 0")

    def reached(self, issued: int, elapsed: float) -> bool:
        return (self.max_requests is not None and issued >= self.max_requests) or (
            self.max_seconds is not None and elapsed >= self.max_seconds
        )


@dataclass
class BenchmarkOutcome:
    """One benchmark as it ran: its step, its records, and when it started and ended (run seconds)."""

    index: int
    step: Step
    started: float
    ended: float = 0.0
    records: list[RequestRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        s = self.step
        return benchmark_summary(s.name, s.strategy, s.rate, s.streams, self.records, self.started, self.ended)

    @property
    def achieved_rate(self) -> float:
        return float(self.summary()["request_throughput"])


async def run_step(
    step: Step,
    index: int,
    prompts: Sequence[Prompt],
    stop: StopCondition,
    sender: Sender,
    *,
    origin: float,
    clock: Clock = time.perf_counter,
    on_record: Callable[[RequestRecord], None] = lambda r: None,
) -> BenchmarkOutcome:
    """Run one benchmark to its end (every issued request finished)."""
    start = clock()
    outcome = BenchmarkOutcome(index, step, started=start - origin)
    counter = itertools.count()

    async def one(seq: int) -> None:
        prompt = prompts[seq % len(prompts)]
        record = await sender(prompt, f"b{index}-{seq}-{prompt.id}", step.name)
        outcome.records.append(record)
        on_record(record)

    if step.closed_loop:

        async def stream() -> None:
            while True:
                seq = next(counter)
                if stop.reached(seq, clock() - start):
                    return
                await one(seq)

        await asyncio.gather(*(stream() for _ in range(step.streams or 1)))
    else:
        slots = asyncio.Semaphore(step.max_concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def bounded(seq: int) -> None:
            try:
                await one(seq)
            finally:
                slots.release()

        for seq, offset in zip(counter, arrivals(step), strict=False):
            if stop.reached(seq, offset):
                break
            delay = start + offset - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            if stop.reached(seq, clock() - start):
                slots.release()
                break
            task = asyncio.create_task(bounded(seq))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    outcome.ended = clock() - origin
    return outcome


async def run_profile(
    profile: str,
    params: ProfileParams,
    prompts: Sequence[Prompt],
    stop: StopCondition,
    make_sender: Callable[[Step], contextlib.AbstractAsyncContextManager[Sender]],
    *,
    origin: float,
    clock: Clock = time.perf_counter,
    on_record: Callable[[RequestRecord], None] = lambda r: None,
    on_step: Callable[[int, Step], Callable[[RequestRecord], None]] | None = None,
) -> list[BenchmarkOutcome]:
    """Every benchmark of `profile`, in order; a sweep's later steps use the earlier achieved rates.
    `make_sender(step)` opens the sender for one benchmark (an HTTP client sized to its concurrency);
    `on_step(index, step)` (e.g. a progress bar) returns a per-record callback for that benchmark."""
    outcomes: list[BenchmarkOutcome] = []
    while (step := next_step(profile, params, [o.achieved_rate for o in outcomes])) is not None:
        index = len(outcomes)
        progress = on_step(index, step) if on_step else None

        def record(r: RequestRecord, progress: Callable[[RequestRecord], None] | None = progress) -> None:
            on_record(r)
            if progress:
                progress(r)

        async with make_sender(step) as sender:
            outcome = await run_step(step, index, prompts, stop, sender, origin=origin, clock=clock, on_record=record)
        outcomes.append(outcome)
    return outcomes
