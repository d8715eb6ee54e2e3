"""Fixtures for the telemetry tests: a store harness per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .builders import Env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "state.db")
    try:
        yield e
    finally:
        e.close()
