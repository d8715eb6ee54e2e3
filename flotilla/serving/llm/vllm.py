"""`flotilla serve vllm`: run a real vLLM OpenAI server where vLLM is installed (a GPU machine).

The server is vLLM's own (`python -m vllm.entrypoints.openai.api_server`, the module behind `vllm
serve`), started as an argv list with this interpreter, so it is the vLLM of this environment. It
follows `flotilla serve llm`'s conventions: loopback by default, port 8000, the served model name
clients send as `model`, and readiness when `/health` answers 200. Its `/metrics` already speak
the contract's names (flotilla/serving/vllm_metrics.py).
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import httpx

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
VLLM_MISSING = "vLLM is not installed; it needs a GPU machine: pip install vllm"
# Options this launcher sets itself; passing them again after `--` would be ambiguous.
OWN_OPTIONS = ("--model", "--host", "--port", "--served-model-name")
STOP_GRACE_S = 30.0
log = logging.getLogger("flotilla.serving.vllm")


class VllmError(RuntimeError):
    """vLLM is missing, its options conflict, or its server exited or never became ready."""


def vllm_available() -> bool:
    """Whether `import vllm` would find a package (without importing it: that loads CUDA)."""
    return importlib.util.find_spec("vllm") is not None


def vllm_argv(
    model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The command line of vLLM's OpenAI server (`extra`: vLLM's own options, passed as given)."""
    for arg in extra:
        name = arg.split("=", 1)[0]
        if name in OWN_OPTIONS:
            raise VllmError(
                f"{name} is set by `flotilla serve vllm` itself; use its option instead of passing it after --"
            )
    return [
        python,
        "-m",
        VLLM_MODULE,
        "--model",
        model,
        "--host",
        host,
        "--port",
        str(port),
        "--served-model-name",
        served_model_name or model,
        *extra,
    ]


class VllmServer:
    """vLLM's server as a child process: start, wait until `/health` is 200, stop (SIGTERM, then SIGKILL)."""

    def __init__(self, argv: Sequence[str], url: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self.argv = list(argv)
        self.url = url
        self.sleep = sleep
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> VllmServer:
        log.info("starting vLLM: %s", " ".join(self.argv))
        self.process = subprocess.Popen(self.argv)
        return self

    def wait_ready(self, timeout: float, poll: float = 1.0) -> None:
        """Poll `/health` until 200; `VllmError` if the process exits first or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self.process is None or self.process.poll() is not None:
                    code = None if self.process is None else self.process.returncode
                    raise VllmError(f"vLLM exited with code {code} before it was ready")
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= deadline:
                    raise VllmError(f"vLLM was not ready at {self.url}/health within {timeout:.0f} s")
                self.sleep(poll)

    def wait(self) -> int:
        """Block until the process exits; its exit code."""
        return 0 if self.process is None else self.process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_vllm(
    model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    extra: Sequence[str] = (),
    ready_timeout: float = 1800.0,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Run vLLM in the foreground until it exits or Ctrl-C; its exit code. `VllmError` when vLLM is
    missing (checked first), its options conflict, or it never becomes ready."""
    if not vllm_available():
        raise VllmError(VLLM_MISSING)
    argv = vllm_argv(model, host=host, port=port, served_model_name=served_model_name, extra=extra)
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url_host = f"[{url_host}]" if ":" in url_host else url_host
    server = VllmServer(argv, f"http://{url_host}:{port}").start()
    try:
        server.wait_ready(ready_timeout)
        if on_ready is not None:
            on_ready(server.url)
        return server.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()
