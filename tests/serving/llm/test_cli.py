"""The `serve llm` and `serve vllm` commands: errors and exit codes, and a real `serve llm` process that
becomes ready and exits 0 on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from flotilla.server.runner import free_port
from flotilla.serving.llm.cli import standalone
from flotilla.serving.llm.vllm import vllm_available

runner = CliRunner()


def test_unknown_model_exits_2() -> None:
    result = runner.invoke(standalone(), ["llm", "--model", "gpt-4o"])
    assert result.exit_code == 2
    assert "unknown model 'gpt-4o'" in result.output


def test_bad_log_level_exits_2() -> None:
    assert runner.invoke(standalone(), ["llm", "--log-level", "loud"]).exit_code == 2


def test_a_model_llamacpp_cannot_load_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00 not a model")
    result = runner.invoke(
        standalone(), ["llm", "--model", str(bad), "--port", str(free_port()), "--log-level", "error"]
    )
    assert result.exit_code == 1


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed here")
def test_serve_vllm_without_vllm_exits_1() -> None:
    result = runner.invoke(standalone(), ["vllm", "--model", "Qwen/Qwen3-8B", "--", "--max-model-len", "4096"])
    assert result.exit_code == 1
    assert "vLLM is not installed; it needs a GPU machine: pip install vllm" in result.output


def test_serve_llm_process_is_ready_then_stops_on_sigterm() -> None:
    port = free_port()
    argv = [sys.executable, "-m", "flotilla.serving.llm.cli", "llm", "--port", str(port), "--parallel", "1"]
    process = subprocess.Popen([*argv, "--ctx-size", "512", "--log-level", "warning"])
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the server exited before it was ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
