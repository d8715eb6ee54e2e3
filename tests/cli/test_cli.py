"""The `flotilla` command against a live control plane on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from flotilla.cli import app
from flotilla.demo import demo_manifests, run_demo
from flotilla.server.runner import ControlPlane, free_port

runner = CliRunner()


def cli(plane: ControlPlane, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--server", plane.url], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_apply_demo_manifests_then_get(control_plane: ControlPlane) -> None:
    code, out, _ = cli(control_plane, "apply", "-f", str(demo_manifests()))
    assert code == 0, out
    assert "namespace/whisper created" in out
    assert "clusterqueue.kueue.x-k8s.io/cluster-queue created" in out
    assert "job.batch/whisper-transcription-large-1 created" in out
    code, out, _ = cli(control_plane, "apply", "-f", str(demo_manifests()))
    assert code == 0 and "created" not in out and "clusterqueue.kueue.x-k8s.io/cluster-queue unchanged" in out

    code, out, _ = cli(control_plane, "get", "cq")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "COHORT", "PENDING", "WORKLOADS"]
    assert lines[1].split()[:2] == ["cluster-queue", "<none>"]
    code, out, _ = cli(control_plane, "get", "clusterqueues", "-o", "wide")
    assert "STRATEGY" in out and "BestEffortFIFO" in out
    code, out, _ = cli(control_plane, "get", "lq", "-n", "whisper")
    assert "local-queue-medium" in out and "cluster-queue" in out
    code, out, _ = cli(control_plane, "get", "rf")
    assert "gpu-flavor" in out


def test_output_formats(control_plane: ControlPlane) -> None:
    cli(control_plane, "apply", "-f", str(demo_manifests()))
    code, out, _ = cli(control_plane, "get", "jobs", "-n", "whisper", "-o", "json")
    doc = json.loads(out)
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1" and len(doc["items"]) == 4
    assert doc["items"][0]["kind"] == "Job"
    code, out, _ = cli(control_plane, "get", "cq", "cluster-queue", "-o", "yaml")
    obj = yaml.safe_load(out)
    assert obj["kind"] == "ClusterQueue" and obj["spec"]["resourceGroups"][0]["flavors"][0]["name"] == "gpu-flavor"
    code, out, _ = cli(control_plane, "get", "lq/local-queue-large", "-n", "whisper", "-o", "name")
    assert out.strip() == "localqueue.kueue.x-k8s.io/local-queue-large"
    code, out, _ = cli(control_plane, "get", "lq", "-A")
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"] and "whisper" in out
    code, out, _ = cli(
        control_plane, "get", "jobs", "-n", "whisper", "-l", "kueue.x-k8s.io/queue-name=local-queue-large"
    )
    assert "large-0" in out and "medium" not in out
    code, out, err = cli(control_plane, "get", "wl")
    assert code == 0 and "No resources found in default namespace." in err


def test_describe(control_plane: ControlPlane) -> None:
    cli(control_plane, "apply", "-f", str(demo_manifests()))
    code, out, _ = cli(control_plane, "describe", "cq", "cluster-queue")
    assert code == 0
    assert "Name:         cluster-queue" in out and "Kind:         ClusterQueue" in out
    assert "nvidia.com/mig-3g.20gb" in out and ("nominalQuota: '4'" in out or "nominalQuota: 4" in out)


def test_secret_values_are_never_printed(control_plane: ControlPlane, tmp_path: Path) -> None:
    f = tmp_path / "secret.yaml"
    f.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: tok}\nstringData: {token: hunter2-very-secret}\n")
    assert cli(control_plane, "apply", "-f", str(f))[0] == 0
    for args in (
        ("get", "secret", "tok", "-o", "yaml"),
        ("get", "secrets", "-o", "json"),
        ("describe", "secret", "tok"),
    ):
        code, out, _ = cli(control_plane, *args)
        assert code == 0 and "redacted" in out
        assert "hunter2" not in out and "aHVudGVyMi" not in out  # neither plain nor base64


def test_apply_bad_file_stores_nothing(control_plane: ControlPlane, tmp_path: Path) -> None:
    (tmp_path / "a-good.yaml").write_text(
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: ok}\n"
    )
    (tmp_path / "b-bad.yml").write_text(
        "apiVersion: kueue.x-k8s.io/v1beta1\nkind: ClusterQueue\nmetadata: {name: cluster-queue}\n"
        "spec:\n  resourceGroups:\n  - coveredResources: [cpu, memory]\n    flavors:\n    - name: f\n"
        "      resources:\n      - {name: cpu, nominalQuota: 1}\n      - {name: memory, nominalQuota: 8Gx}\n"
    )
    code, _, err = cli(control_plane, "apply", "-f", str(tmp_path))
    assert code == 1
    assert (
        f"{tmp_path / 'b-bad.yml'} doc 1 ClusterQueue/cluster-queue: "
        'spec.resourceGroups[0].flavors[0].resources[1].nominalQuota: "8Gx" is not a quantity'
    ) in err
    assert "nothing was applied" in err
    code, _, err = cli(control_plane, "get", "rf")
    assert "No resources found" in err


def test_apply_from_stdin_and_delete(control_plane: ControlPlane) -> None:
    doc = "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: from-stdin}\n"
    code, out, _ = cli(control_plane, "apply", "-f", "-", stdin=doc)
    assert code == 0 and "resourceflavor.kueue.x-k8s.io/from-stdin created" in out
    code, out, _ = cli(control_plane, "delete", "rf", "from-stdin")
    assert code == 0 and "deleted" in out
    code, _, err = cli(control_plane, "delete", "rf", "from-stdin")
    assert code == 1 and "not found" in err
    assert cli(control_plane, "delete", "rf", "from-stdin", "--ignore-not-found")[0] == 0


def test_delete_by_file(control_plane: ControlPlane) -> None:
    cli(control_plane, "apply", "-f", str(demo_manifests()))
    code, out, _ = cli(control_plane, "delete", "-f", str(demo_manifests() / "10-queues.yaml"))
    assert code == 0 and "clusterqueue.kueue.x-k8s.io/cluster-queue deleted" in out
    assert "No resources found" in cli(control_plane, "get", "cq")[2]


def test_unknown_kind_and_no_server() -> None:
    result = runner.invoke(app, ["get", "widgets", "--server", "http://127.0.0.1:1"])
    assert result.exit_code == 1 and 'unknown resource type "widgets"' in result.stderr
    result = runner.invoke(app, ["get", "cq", "--server", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1
    assert "no Flotilla control plane answers at" in result.stderr and "flotilla up" in result.stderr


def test_up_serves_on_loopback_and_keeps_state_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    gateway = free_port()
    argv = [sys.executable, "-m", "flotilla", "up", "--port", str(port), "--data-dir", str(tmp_path)]
    argv += ["--gateway-port", str(gateway)]
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=0.5).status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.05)
        proc.kill()
        pytest.fail("flotilla up did not become ready")

    proc = start()
    try:
        body = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "kept"}}
        assert httpx.post(f"{url}/apis/kueue.x-k8s.io/v1beta2/resourceflavors", json=body).status_code == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit by signal, as servers do).
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Shutting down" in out.decode()
    assert f"API on {url}" in out.decode() and str(tmp_path / "state.db") in out.decode()
    assert f"inference gateway on http://127.0.0.1:{gateway}/v1" in out.decode()
    proc = start()
    try:
        assert httpx.get(f"{url}/apis/kueue.x-k8s.io/v1beta2/resourceflavors/kept").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`make demo`: the shipped recordings through both stages, the table, the report, a clean stop."""
    assert run_demo(data_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "control plane ready" in out and "control plane stopped" in out
    assert "Succeeded (4 of 4 recordings summarized)" in out
    for column in ("QUEUE WAIT", "TRANSCRIBE", "WER", "TTFT", "SUMMARY"):
        assert column in out
    run = tmp_path / "speech-to-summary" / "run"
    assert (run / "report.html").is_file() and (run / "summary.json").is_file()
    assert len(list((tmp_path / "speech-to-summary" / "summaries").glob("*.md"))) == 4
