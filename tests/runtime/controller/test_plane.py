"""The runtime inside `flotilla up`: logs and pods through the API and the CLI, faults injected
from the CLI, and a `kill -9` of the control plane in the middle of a sliced job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from flotilla.cli import app
from flotilla.runtime.config import RuntimeConfig
from flotilla.server.runner import ControlPlane, free_port

from .harness import job, py

runner = CliRunner()


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    config = RuntimeConfig(jobBackoffSeconds=0, restartBackoffSeconds=0, pollSeconds=0.05)
    p = ControlPlane(tmp_path / "data", port=free_port(), runtime_config=config).start_in_thread()
    try:
        yield p
    finally:
        p.stop()


def cli(plane: ControlPlane, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--server", plane.url])
    return result.exit_code, result.stdout + result.stderr


def wait(what, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def condition(url: str, name: str) -> str | None:
    j = httpx.get(f"{url}/apis/batch/v1/namespaces/default/jobs/{name}").json()
    for c in (j.get("status") or {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return None


def test_logs_pods_and_nodes_through_the_cli(plane: ControlPlane) -> None:
    code = "import os; print('slice', os.environ['CUDA_VISIBLE_DEVICES'], 'index', os.environ['JOB_COMPLETION_INDEX'])"
    body = job("hello", py(code), limits={"nvidia.com/mig-1g.5gb": 1}, completions=2, completionMode="Indexed")
    assert httpx.post(f"{plane.url}/apis/batch/v1/namespaces/default/jobs", json=body).status_code == 201
    assert wait(lambda: condition(plane.url, "hello")) == "Complete"

    code_, out = cli(plane, "logs", "job/hello")
    assert code_ == 0, out
    lines = [line for line in out.splitlines() if line.startswith("slice")]
    assert sorted(line.split()[-1] for line in lines) == ["0", "1"] and all("MIG-" in line for line in lines)
    assert out.count("==> hello-") == 2

    code_, out = cli(plane, "get", "pods")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "DEVICES"]
    assert len(rows) == 2 and all("Completed" in r and "gpu-node-0" in r and ":1g.5gb" in r for r in rows)

    code_, out = cli(plane, "get", "nodes")
    assert "gpu-node-0" in out and "2x NVIDIA-A100-SXM4-40GB (emulated)" in out
    code_, out = cli(plane, "logs", "job/nope")
    assert code_ == 1 and "not found" in out


def test_fault_injected_from_the_cli_evicts_the_running_pod(plane: ControlPlane) -> None:
    body = job("long", py("import time; time.sleep(60)"), limits={"nvidia.com/mig-1g.5gb": 1}, grace=0)
    httpx.post(f"{plane.url}/apis/batch/v1/namespaces/default/jobs", json=body)

    def claim() -> dict | None:  # type: ignore[type-arg]
        items = httpx.get(f"{plane.url}/apis/inference.redhat.com/v1alpha1/allocationclaims").json()["items"]
        return next((c for c in items if (c.get("status") or {}).get("state") == "inUse"), None)

    gpu = wait(claim)["spec"]["gpuUUID"]
    code_, out = cli(plane, "fault", "inject", f"gpu-node-0/{gpu}", "remapped-rows")
    assert code_ == 0, out

    def evicted() -> bool:
        pods = httpx.get(f"{plane.url}/api/v1/namespaces/default/pods").json()["items"]
        return any((p.get("status") or {}).get("reason") == "Evicted" for p in pods)

    wait(evicted)
    node = httpx.get(f"{plane.url}/api/v1/nodes/gpu-node-0").json()
    assert node["metadata"]["labels"]["autopilot.ibm.com/gpuhealth"] == "EVICT"
    metrics = httpx.get(f"{plane.url}/metrics").text
    assert "autopilot_health_checks{" in metrics and "DCGM_FI_DEV_ROW_REMAP_FAILURE" in metrics
    # The Job's replacement pod runs on the healthy GPU.
    wait(lambda: (c := claim()) is not None and c["spec"]["gpuUUID"] != gpu)


def test_kill_9_of_the_control_plane_leaks_no_slice(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "flotilla",
        "up",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
        "--gateway-port",
        "0",
        "--gpus",
        "1x1xA100-40GB",
    ]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: _ready(url))
        return proc

    def claims() -> list[dict]:  # type: ignore[type-arg]
        return list(httpx.get(f"{url}/apis/inference.redhat.com/v1alpha1/allocationclaims").json()["items"])

    proc = start()
    try:
        for name in ("a", "b"):
            body = job(name, py("import time; time.sleep(2)"), limits={"nvidia.com/mig-3g.20gb": 1})
            assert httpx.post(f"{url}/apis/batch/v1/namespaces/default/jobs", json=body).status_code == 201
        wait(lambda: sum((c.get("status") or {}).get("state") == "inUse" for c in claims()) == 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # A third job asks for a slice while the plane is down; one GPU holds two 3g.20gb.
        proc = start()
        body = job("c", py("print('c')"), limits={"nvidia.com/mig-3g.20gb": 1})
        httpx.post(f"{url}/apis/batch/v1/namespaces/default/jobs", json=body)
        time.sleep(0.5)
        starts = sorted(c["spec"]["migPlacement"]["start"] for c in claims())
        assert starts == [0, 4]  # c waits: no slot is booked twice
        for name in ("a", "b", "c"):
            assert wait(lambda name=name: condition(url, name)) == "Complete"
        wait(lambda: not claims())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert os.path.exists(tmp_path / "state.db")


def test_sigterm_to_flotilla_up_stops_the_pods_it_runs(tmp_path: Path) -> None:
    """uvicorn re-raises SIGTERM after its own shutdown; the pods must be stopped before the process ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "flotilla", "up", "--port", str(port), "--data-dir", str(tmp_path)]
    proc = subprocess.Popen([*argv, "--gateway-port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "started"
    try:
        wait(lambda: _ready(url))
        code = f"import pathlib, time; pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(120)"
        body = job("sleeper", py(code))
        assert httpx.post(f"{url}/apis/batch/v1/namespaces/default/jobs", json=body).status_code == 201
        wait(marker.exists)
        pids = subprocess.run(["pgrep", "-f", str(marker)], capture_output=True, text=True).stdout.split()
        assert pids  # the shim and the container
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        left = subprocess.run(["pgrep", "-f", str(marker)], capture_output=True, text=True).stdout.split()
        assert not left, f"pod processes outlived the control plane: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def test_up_names_bad_gpu_and_placement_settings(tmp_path: Path) -> None:
    result = runner.invoke(app, ["up", "--gpus", "2xA100", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "invalid GPU config" in result.stderr
    assert "1x2xA100-40GB" in result.stderr  # the example of the right form
    result = runner.invoke(app, ["up", "--gpus", "1x2xA100", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "A100-40GB" in result.stderr  # the known models
    port = str(free_port())
    result = runner.invoke(app, ["up", "--placement", "worst-fit", "--data-dir", str(tmp_path), "--port", port])
    assert result.exit_code == 1 and "worst-fit" in result.stderr
    result = runner.invoke(app, ["up", "--gpu-backend", "nvml", "--data-dir", str(tmp_path), "--port", port])
    assert result.exit_code == 1 and "GPU" in result.stderr, result.stderr


def test_scale_and_get_deploy_pods_through_the_cli(plane: ControlPlane) -> None:
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleepy", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "sleepy"}},
            "template": {
                "metadata": {"labels": {"app": "sleepy"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "x", "command": py("import time; time.sleep(60)")}],
                },
            },
        },
    }
    assert httpx.post(f"{plane.url}/apis/apps/v1/namespaces/default/deployments", json=dep).status_code == 201

    def ready() -> int:
        d = httpx.get(f"{plane.url}/apis/apps/v1/namespaces/default/deployments/sleepy").json()
        return int((d.get("status") or {}).get("readyReplicas") or 0)

    wait(lambda: ready() == 1)
    code_, out = cli(plane, "scale", "deployment/sleepy", "--replicas", "2")
    assert code_ == 0 and "deployment.apps/sleepy scaled" in out
    wait(lambda: ready() == 2)
    code_, out = cli(plane, "get", "deploy,pods")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:4] == ["sleepy", "2/2", "2", "2"]
    assert sum(1 for line in lines if line.startswith("sleepy-") and "Running" in line) == 2
    code_, out = cli(plane, "scale", "job/x", "--replicas", "2")
    assert code_ == 1 and "only Deployments" in out
