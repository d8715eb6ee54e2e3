"""`flotilla gateway`: option checks, and the command in its own process over static URLs and over a
control plane's InferencePools."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import typer
from typer.testing import CliRunner

from flotilla.api.catalog import build_registry
from flotilla.client import FlotillaClient
from flotilla.gateway.cli import gateway

from .builders import FakeVllm, chat, free_port, serving
from .test_endpoints import inference_pool, pod

app = typer.Typer()
app.command()(gateway)
LAUNCH = "import typer; from flotilla.gateway.cli import gateway; typer.run(gateway)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-plane", "nginx"], "use python or envoy"),
        (["--endpoints", "http://127.0.0.1:1", "--server", "http://127.0.0.1:2"], "not both"),
        (["--endpoints", "http://127.0.0.1:1", "--failure-mode", "Open"], "FailOpen or FailClose"),
        (["--endpoints", "http://localhost"], "HOST:PORT"),
        (["--endpoints", "http://127.0.0.1:1", "--profile", "fastest"], "unknown scheduling profile"),
    ],
)
def test_bad_options_exit_2_saying_why(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


@contextlib.contextmanager
def gateway_process(*args: str) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-c", LAUNCH, "--port", str(port), "--scrape-interval", "0.05", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health").json()["fresh_endpoints"] >= 1:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not come up:\n{proc.communicate()[0] if proc.poll() else ''}")
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_the_command_routes_to_static_endpoints() -> None:
    with serving(FakeVllm("a")) as (a,), gateway_process("--endpoints", a.url) as url:
        r = httpx.post(f"{url}/v1/chat/completions", json=chat())
        assert r.status_code == 200 and r.json()["served_by"] == "a"


def test_the_command_routes_to_a_control_planes_pools(client: FlotillaClient) -> None:
    kinds = {k.kind: k for k in build_registry()}
    port = free_port("127.1.0.7")
    client.create(kinds["Namespace"], {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
    client.create(kinds["InferencePool"], inference_pool("chat", port))
    body = pod("llm-0", "127.1.0.7")
    saved = client.create(kinds["Pod"], {k: v for k, v in body.items() if k != "status"})
    client.update(kinds["Pod"], {**saved, "status": body["status"]}, status=True)
    with (
        serving(FakeVllm("pod", host="127.1.0.7", port=port)),
        gateway_process("--server", client.server, "--namespace", "ml") as url,
    ):
        r = httpx.post(f"{url}/v1/chat/completions", json=chat())
        assert r.status_code == 200 and r.json()["served_by"] == "pod"
        assert httpx.get(f"{url}/health").json()["pools"] == {"ml/chat": 1}
