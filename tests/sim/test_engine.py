"""The discrete-event core: ordering, determinism, cancellation, quiescent hooks."""

from __future__ import annotations

import pytest

from flotilla.sim.engine import Engine


def test_events_run_in_time_priority_then_schedule_order() -> None:
    engine = Engine()
    seen: list[str] = []
    engine.at(2.0, lambda: seen.append("t2"))
    engine.at(1.0, lambda: seen.append("t1-second"), priority=1)
    engine.at(1.0, lambda: seen.append("t1-first"), priority=0)
    engine.at(1.0, lambda: seen.append("t1-third"), priority=1)
    engine.run()
    assert seen == ["t1-first", "t1-second", "t1-third", "t2"]
    assert engine.now == 2.0 and engine.events_run == 4


def test_cancel_and_past_events() -> None:
    engine = Engine()
    seen: list[int] = []
    handle = engine.at(1.0, lambda: seen.append(1))
    engine.at(2.0, lambda: seen.append(2))
    handle.cancel()
    engine.run()
    assert seen == [2]
    with pytest.raises(ValueError, match="past"):
        engine.at(1.0, lambda: None)


def test_quiescent_hook_runs_once_per_instant_and_may_schedule() -> None:
    engine = Engine()
    instants: list[float] = []
    engine.at(1.0, lambda: None)
    engine.at(1.0, lambda: None)
    engine.at(3.0, lambda: None)

    def hook() -> None:
        instants.append(engine.now)
        if engine.now == 1.0:
            engine.after(0.5, lambda: None)

    engine.run(on_quiescent=hook)
    assert instants == [1.0, 1.5, 3.0]


def test_run_until_and_seeded_rng_is_reproducible() -> None:
    a, b = Engine(seed=7), Engine(seed=7)
    assert [a.rng.random() for _ in range(3)] == [b.rng.random() for _ in range(3)]
    seen: list[float] = []
    a.at(1.0, lambda: seen.append(1.0))
    a.at(5.0, lambda: seen.append(5.0))
    a.run(until=2.0)
    assert seen == [1.0] and a.now == 2.0
