"""Fixtures for the store tests: a fresh store per test, with a fake clock and a seeded rng."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.store import Store

from .builders import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "flotilla.db"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store.open(db_path, clock=clock, rng=random.Random(7)) as s:
        yield s
