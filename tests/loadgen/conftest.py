from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """TTFT 100 ms, ITL 20 ms."""
    server = FakeOpenAI(ttft=0.1, itl=0.02).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_openai() -> Iterator[FakeOpenAI]:
    """TTFT 10 ms, ITL 2 ms: for runs of many requests."""
    server = FakeOpenAI(ttft=0.01, itl=0.002).start()
    try:
        yield server
    finally:
        server.stop()
