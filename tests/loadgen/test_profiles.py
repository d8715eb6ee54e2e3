"""Profiles: which benchmarks a run has and when an open-loop benchmark sends (pure, seeded)."""

from __future__ import annotations

import itertools
import random

import pytest

from flotilla.loadgen.profiles import (
    PROFILES,
    ProfileError,
    ProfileParams,
    Step,
    arrivals,
    next_step,
    parse_rates,
    sweep_rates,
)


def steps(profile: str, params: ProfileParams, achieved: list[float] | None = None) -> list[Step]:
    """Every step of `profile`, feeding back `achieved` rates (default 1.0 each)."""
    out: list[Step] = []
    rates = list(achieved or [])
    while (
        step := next_step(profile, params, [rates[i] if i < len(rates) else 1.0 for i in range(len(out))])
    ) is not None:
        out.append(step)
        assert len(out) < 100
    return out


def test_registry_has_every_profile() -> None:
    assert PROFILES.names() == ["synchronous", "concurrent", "throughput", "constant", "poisson", "sweep"]


@pytest.mark.parametrize(
    ("profile", "params", "expected"),
    [
        ("synchronous", ProfileParams(), [("synchronous", None, 1, 1)]),
        ("concurrent", ProfileParams(rates=(4,)), [("concurrent@4", None, 4, 4)]),
        ("concurrent", ProfileParams(rates=(1, 8)), [("concurrent@1", None, 1, 1), ("concurrent@8", None, 8, 8)]),
        ("throughput", ProfileParams(max_concurrency=16), [("throughput", None, 16, 16)]),
        ("constant", ProfileParams(rates=(4,)), [("constant@4.00", 4.0, None, 256)]),
        ("poisson", ProfileParams(rates=(2.5,), max_concurrency=8), [("poisson@2.50", 2.5, None, 8)]),
    ],
)
def test_fixed_profiles(
    profile: str, params: ProfileParams, expected: list[tuple[str, float | None, int | None, int]]
) -> None:
    got = [(s.name, s.rate, s.streams, s.max_concurrency) for s in steps(profile, params)]
    assert got == expected


def test_closed_and_open_loops() -> None:
    assert Step(strategy="synchronous", streams=1).closed_loop
    assert not Step(strategy="constant", rate=2).closed_loop


def test_sweep_rates_are_guidellm_linspace() -> None:
    # np.linspace(2, 10, 9)[1:] = 3, 4, ..., 10: K-2 = 8 rates, the last one the throughput rate
    assert sweep_rates(2.0, 10.0, 10) == pytest.approx([3, 4, 5, 6, 7, 8, 9, 10])
    assert sweep_rates(1.0, 4.0, 4) == pytest.approx([2.5, 4.0])  # linspace(1, 4, 3)[1:]
    assert sweep_rates(1.0, 4.0, 3) == pytest.approx([4.0])
    assert sweep_rates(1.0, 4.0, 2) == []


def test_sweep_runs_synchronous_then_throughput_then_constant_rates_from_the_measured_ones() -> None:
    params = ProfileParams(rates=(5,), max_concurrency=32)
    assert next_step("sweep", params, []) == Step(strategy="synchronous", streams=1, max_concurrency=1)
    assert next_step("sweep", params, [2.0]) == Step(strategy="throughput", streams=32, max_concurrency=32)
    names = [s.name for s in steps("sweep", params, achieved=[2.0, 8.0])]
    # linspace(2, 8, 4)[1:] = 4, 6, 8
    assert names == ["synchronous", "throughput", "constant@4.00", "constant@6.00", "constant@8.00"]
    assert len(steps("sweep", ProfileParams(), achieved=[1.0, 10.0])) == 10  # default K = 10


@pytest.mark.parametrize(
    ("profile", "rates", "message"),
    [
        ("synchronous", (2.0,), "--rate does not apply to the synchronous profile"),
        ("throughput", (2.0,), "--rate does not apply to the throughput profile"),
        ("concurrent", (), "the concurrent profile needs --rate N"),
        ("concurrent", (1.5,), "whole numbers of streams"),
        ("constant", (), "the constant profile needs --rate R"),
        ("poisson", (0.0,), "requests per second > 0"),
        ("sweep", (1.0,), "a whole number >= 2"),
        ("sweep", (3.0, 4.0), "the number of benchmarks"),
    ],
)
def test_bad_flags_name_the_fix(profile: str, rates: tuple[float, ...], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        next_step(profile, ProfileParams(rates=rates), [])


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="--profile burst: unknown profile; use one of synchronous, concurrent"):
        next_step("burst", ProfileParams(), [])


def test_parse_rates() -> None:
    assert parse_rates(None) == ()
    assert parse_rates("4") == (4.0,)
    assert parse_rates("1, 2.5,4") == (1.0, 2.5, 4.0)
    with pytest.raises(ProfileError, match="'x' is not a number"):
        parse_rates("1,x")


def test_constant_arrivals_are_evenly_spaced_from_zero() -> None:
    times = list(itertools.islice(arrivals(Step(strategy="constant", rate=4)), 5))
    assert times == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_poisson_arrivals_are_seeded_exponential_gaps() -> None:
    step = Step(strategy="poisson", rate=2.0, seed=7)
    times = list(itertools.islice(arrivals(step), 2000))
    rng = random.Random(7)
    first = rng.expovariate(2.0)
    assert times[0] == pytest.approx(first)  # the first request waits one gap
    assert times[1] == pytest.approx(first + rng.expovariate(2.0))
    assert times == list(itertools.islice(arrivals(step), 2000))  # same seed, same schedule
    assert times != list(itertools.islice(arrivals(step.model_copy(update={"seed": 8})), 2000))
    assert all(b > a for a, b in itertools.pairwise(times))
    assert 1.8 < len(times) / times[-1] < 2.2  # mean rate ~ 2/s over 2000 draws


def test_closed_loops_have_no_arrivals() -> None:
    with pytest.raises(ValueError, match="closed loop"):
        arrivals(Step(strategy="synchronous", streams=1))
