"""Fixtures for the Envoy tests: the binary (or a skip saying why it cannot run here), the fake
model servers and a recording picker, shared by a module; every process is stopped at the end."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.gateway.envoy import EnvoyNotFound, find_envoy

from .harness import Gates, PickerThread, RecordingPicker, Upstream


@pytest.fixture(scope="session")
def envoy_binary() -> Path:
    """The Envoy binary, after checking that it runs on this machine; else the test is skipped."""
    try:
        path = find_envoy()
    except EnvoyNotFound as exc:
        pytest.skip(f"no Envoy binary: {exc}")
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, timeout=30, check=False)
    except OSError as exc:
        pytest.skip(f"the Envoy binary {path} cannot run on this machine: {exc}")
    if done.returncode != 0:
        pytest.skip(f"the Envoy binary {path} cannot run on this machine: {done.stderr.decode()[-300:]}")
    return path


@pytest.fixture(scope="module")
def gates() -> Iterator[Gates]:
    gates = Gates()
    yield gates
    gates.open_all()  # nothing waits past the module


@pytest.fixture(scope="module")
def upstreams(gates: Gates) -> Iterator[dict[str, Upstream]]:
    started = {name: Upstream(name, gates).start() for name in ("a", "b")}
    yield started
    for upstream in started.values():
        upstream.stop()


@pytest.fixture(scope="module")
def picker(upstreams: dict[str, Upstream]) -> RecordingPicker:
    return RecordingPicker({name: u.address for name, u in upstreams.items()})


@pytest.fixture(scope="module")
def picker_thread(picker: RecordingPicker) -> Iterator[PickerThread]:
    thread = PickerThread(picker).start()
    yield thread
    thread.stop()
