"""Shared fixtures: a control plane on a free loopback port, stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.api.catalog import build_registry
from flotilla.api.registry import Registry
from flotilla.client import FlotillaClient
from flotilla.server.runner import ControlPlane, free_port

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture
def registry() -> Registry:
    return build_registry()


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """The API, the store and the queue controller; no runtime (pods are not run, no nodes appear).
    Tests of running work use `runtime_plane`."""
    plane = ControlPlane(tmp_path / "data", port=free_port(), runtime=False).start_in_thread()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def client(control_plane: ControlPlane) -> Iterator[FlotillaClient]:
    with FlotillaClient(control_plane.url) as c:
        yield c
