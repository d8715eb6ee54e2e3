"""`flotilla serve vllm` without vLLM: the argv it would run, the error where vLLM is missing, and the
readiness/stop logic against a stand-in process that answers /health like vLLM."""

from __future__ import annotations

import sys

import pytest

from flotilla.server.runner import free_port
from flotilla.serving.llm.vllm import VLLM_MISSING, VllmError, VllmServer, run_vllm, vllm_argv, vllm_available

STAND_IN = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_argv_is_vllm_openai_server_with_our_conventions() -> None:
    argv = vllm_argv("Qwen/Qwen3-8B", port=8123, extra=["--max-model-len", "8192"], python="/venv/bin/python")
    assert argv == [
        "/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "Qwen/Qwen3-8B", "--host", "127.0.0.1", "--port", "8123",
        "--served-model-name", "Qwen/Qwen3-8B",
        "--max-model-len", "8192",
    ]  # fmt: skip


def test_served_model_name_and_host() -> None:
    argv = vllm_argv("/models/qwen", host="0.0.0.0", served_model_name="qwen3-8b")
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--served-model-name") + 1] == "qwen3-8b"
    assert argv[0] == sys.executable


@pytest.mark.parametrize("extra", [["--port", "9000"], ["--model=x"], ["--served-model-name", "y"]])
def test_options_we_set_cannot_be_passed_again(extra: list[str]) -> None:
    with pytest.raises(VllmError, match="set by `flotilla serve vllm` itself"):
        vllm_argv("m", extra=extra)


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed here")
def test_missing_vllm_is_a_clear_error() -> None:
    with pytest.raises(VllmError) as error:
        run_vllm("m", port=free_port())
    assert str(error.value) == VLLM_MISSING == "vLLM is not installed; it needs a GPU machine: pip install vllm"


def test_ready_when_health_answers_and_stop_ends_the_process() -> None:
    port = free_port()
    server = VllmServer([sys.executable, "-c", STAND_IN, str(port)], f"http://127.0.0.1:{port}").start()
    try:
        server.wait_ready(timeout=30, poll=0.05)
        assert server.process is not None and server.process.poll() is None
        process = server.process
    finally:
        server.stop()
    assert process.returncode is not None


def test_a_process_that_exits_before_ready_is_an_error() -> None:
    server = VllmServer([sys.executable, "-c", "raise SystemExit(3)"], f"http://127.0.0.1:{free_port()}").start()
    try:
        with pytest.raises(VllmError, match="exited with code 3 before it was ready"):
            server.wait_ready(timeout=30, poll=0.05)
    finally:
        server.stop()
