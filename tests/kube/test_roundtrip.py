"""The round trip: `kube render` -> `flotilla apply -f DIR/workloads` into the embedded platform ->
`kube export` -> `kube render` again gives the same files, though the embedded Kueue admitted the Jobs
meanwhile (unsuspended them and put its flavor's node selector on their pods)."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from flotilla.api.loader import load_paths
from flotilla.api.registry import Registry
from flotilla.cli import app
from flotilla.client import FlotillaClient
from flotilla.kube.render import render, write
from flotilla.server.runner import ControlPlane
from tests.kube.conftest import GOLDEN_OPTIONS, study_objects


def _wait_admitted(client: FlotillaClient, registry: Registry, jobs: int, timeout: float = 20.0) -> None:
    kind = registry.resolve("jobs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = client.list(kind, "whisper")["items"]
        admitted = [j for j in items if (j["spec"]["template"]["spec"].get("nodeSelector") or {})]
        if len(items) == jobs and len(admitted) == jobs:
            return
        time.sleep(0.05)
    raise AssertionError("the embedded Kueue did not admit the Jobs")


def test_render_import_export_render_is_identical(
    tmp_path: Path, control_plane: ControlPlane, kube_registry: Registry
) -> None:
    first = render(study_objects(kube_registry), GOLDEN_OPTIONS, kube_registry)
    write(first, tmp_path / "rendered")
    runner = CliRunner()
    applied = runner.invoke(app, ["apply", "-f", str(tmp_path / "rendered" / "workloads"), "-s", control_plane.url])
    assert applied.exit_code == 0, applied.output
    assert "clusterqueue.kueue.x-k8s.io/cluster-queue created" in applied.stdout
    assert "job.batch/whisper-transcription-large-0 created" in applied.stdout
    with FlotillaClient(control_plane.url) as client:
        _wait_admitted(client, kube_registry, jobs=4)
        queue = client.get(kube_registry.resolve("localqueues"), "local-queue-large", "whisper")
        assert queue["spec"]["clusterQueue"] == "cluster-queue"

    exported = tmp_path / "exported.yaml"
    result = runner.invoke(app, ["kube", "export", "-s", control_plane.url, "-o", str(exported)])
    assert result.exit_code == 0, result.output
    second = render(load_paths([exported], kube_registry), GOLDEN_OPTIONS, kube_registry)
    assert second.files() == first.files()
