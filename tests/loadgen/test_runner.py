"""The benchmark driver: stop conditions, closed-loop streams, and the open loop's concurrency bound
(a fake sender, no network)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from flotilla.loadgen.datasets import Prompt
from flotilla.loadgen.profiles import ProfileParams, Step
from flotilla.loadgen.runner import Sender, StopCondition, run_profile, run_step
from flotilla.runs.records import RequestRecord

PROMPTS = [Prompt(f"p{i}", f"prompt {i}", 4, 2) for i in range(3)]


class Gate:
    """A sender whose requests wait until released; counts the most in flight at once."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.in_flight = self.peak = 0
        self.sent: list[tuple[str, str]] = []

    async def __call__(self, prompt: Prompt, request_id: str, item: str) -> RequestRecord:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.sent.append((request_id, item))
        await asyncio.sleep(self.hold)
        self.in_flight -= 1
        return RequestRecord(id=request_id, sent_at=0.0, status=200, first_token_at=0.0, finished_at=0.0, item=item)


def run(step: Step, stop: StopCondition, gate: Gate) -> list[RequestRecord]:
    outcome = asyncio.run(run_step(step, 0, PROMPTS, stop, gate, origin=0.0))
    return outcome.records


def test_max_requests_counts_exactly_and_prompts_cycle() -> None:
    gate = Gate()
    records = run(Step(strategy="synchronous", streams=1), StopCondition(max_requests=7), gate)
    assert len(records) == 7
    assert [rid for rid, _ in gate.sent] == [f"b0-{i}-p{i % 3}" for i in range(7)]
    assert {item for _, item in gate.sent} == {"synchronous"}
    assert gate.peak == 1


def test_concurrent_streams_keep_n_in_flight() -> None:
    gate = Gate(hold=0.01)
    records = run(Step(strategy="concurrent", streams=3, max_concurrency=3), StopCondition(max_requests=12), gate)
    assert len(records) == 12 and gate.peak == 3


def test_open_loop_is_bounded_by_max_concurrency() -> None:
    gate = Gate(hold=0.05)
    step = Step(strategy="constant", rate=1000.0, max_concurrency=2)
    records = run(step, StopCondition(max_requests=6), gate)
    assert len(records) == 6 and gate.peak == 2


def test_max_seconds_stops_an_open_loop() -> None:
    gate = Gate()
    records = run(Step(strategy="constant", rate=20.0), StopCondition(max_seconds=0.2), gate)
    assert 1 <= len(records) <= 4  # offsets 0, 0.05, 0.10, 0.15 are before 0.2 s


def test_a_stop_condition_is_required() -> None:
    with pytest.raises(ValueError, match="--max-requests or --max-seconds"):
        StopCondition()
    with pytest.raises(ValueError, match="must be > 0"):
        StopCondition(max_requests=0)


def test_a_sweep_feeds_achieved_rates_forward() -> None:
    gate = Gate(hold=0.005)
    opened: list[str] = []

    @contextlib.asynccontextmanager
    async def make_sender(step: Step) -> AsyncIterator[Sender]:
        opened.append(step.name)
        yield gate

    outcomes = asyncio.run(
        run_profile(
            "sweep",
            ProfileParams(rates=(4,), max_concurrency=4),
            PROMPTS,
            StopCondition(max_requests=4),
            make_sender,
            origin=0.0,
        )
    )
    assert [o.step.strategy for o in outcomes] == ["synchronous", "throughput", "constant", "constant"]
    assert opened == [o.step.name for o in outcomes]
    assert all(len(o.records) == 4 for o in outcomes)
    rates = [o.step.rate for o in outcomes[2:]]
    assert rates[0] is not None and rates[1] is not None and rates[0] < rates[1]
