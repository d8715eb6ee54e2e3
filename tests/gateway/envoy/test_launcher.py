"""Finding and running the Envoy binary: clear errors, argv without a shell, clean stops."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flotilla.gateway.envoy import EnvoyConfig, EnvoyNotFound, EnvoyStartError, find_envoy, start_envoy
from flotilla.gateway.envoy.launcher import ENVOY_ENV, envoy_argv


def test_a_missing_explicit_binary_is_named(tmp_path: Path) -> None:
    with pytest.raises(EnvoyNotFound, match="not an executable file"):
        find_envoy(tmp_path / "no-envoy")


def test_the_environment_variable_names_the_binary(
    envoy_binary: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENVOY_ENV, str(envoy_binary))
    assert find_envoy() == envoy_binary
    monkeypatch.setenv(ENVOY_ENV, str(tmp_path))
    with pytest.raises(EnvoyNotFound, match=ENVOY_ENV):
        find_envoy()


def test_envoy_runs_as_an_argv_list_without_hot_restart(tmp_path: Path) -> None:
    argv = envoy_argv(Path("/opt/envoy"), tmp_path / "c.yaml", tmp_path / "admin", 2, "warning")
    assert argv[0] == "/opt/envoy"
    assert argv[argv.index("--config-path") + 1] == str(tmp_path / "c.yaml")
    assert argv[argv.index("--concurrency") + 1] == "2"
    assert "--disable-hot-restart" in argv


def test_a_binary_that_exits_at_once_is_reported_with_its_code(tmp_path: Path) -> None:
    with pytest.raises(EnvoyStartError, match="exited with code 1"):
        start_envoy(EnvoyConfig(picker_address="127.0.0.1:9"), binary="/bin/false", workdir=tmp_path)


def test_envoy_starts_on_free_ports_and_stops_cleanly(envoy_binary: Path) -> None:
    envoy = start_envoy(EnvoyConfig(picker_address="127.0.0.1:9"), binary=envoy_binary)
    workdir = envoy.workdir
    assert envoy.port > 0
    assert envoy.url.startswith("http://127.0.0.1:")
    assert "envoy.filters.http.ext_proc" in envoy.config_path.read_text()
    assert envoy.stop() == 0
    assert envoy.process.poll() is not None
    assert not workdir.exists()
    assert envoy.stop() == 0  # idempotent
    assert not os.path.exists(workdir)
