"""`flotilla bench batch` against an embedded control plane (emulated 1 x 2 A100-40GB), with a fast
command in place of the transcriber."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from flotilla.cli import app
from flotilla.runs.records import JobRecord, QueueSample, RunDir
from flotilla.runtime.config import RuntimeConfig
from flotilla.server.runner import ControlPlane, free_port
from flotilla.slicer.inventory import parse_gpu_spec

runner = CliRunner()
SLEEP = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(0.5)'"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    config = RuntimeConfig(jobBackoffSeconds=0, restartBackoffSeconds=0, pollSeconds=0.05)
    p = ControlPlane(
        tmp_path / "data",
        port=free_port(),
        gpus=parse_gpu_spec("1x2xA100-40GB"),
        gpu_backend="emulated",
        runtime_config=config,
    ).start_in_thread()
    try:
        yield p
    finally:
        p.stop()


def bench(plane: ControlPlane, out: Path, *args: str) -> tuple[int, str]:
    argv = ["bench", "batch", "--server", plane.url, "--output-dir", str(out), "--no-progress", "--qps", "0"]
    result = runner.invoke(app, [*argv, "--poll-interval", "0.1", "--timeout", "60", "--command", SLEEP, *args])
    return result.exit_code, result.stdout + result.stderr


def test_the_batch_scenario_runs_through_the_queues_onto_mig_slices(plane: ControlPlane, tmp_path: Path) -> None:
    code, text = bench(plane, tmp_path / "run", "--iterations", "2")
    assert code == 0, text
    run = RunDir(tmp_path / "run")
    info = run.info()
    assert (info.kind, info.status, info.name) == ("bench-batch", "succeeded", "batch-2-iterations")
    jobs = run.records(JobRecord)
    assert len(jobs) == 4
    assert [j.queue for j in jobs] == ["local-queue-medium", "local-queue-large"] * 2
    for j in jobs:
        assert j.status == "succeeded" and j.cluster_queue == "cluster-queue", j
        assert j.admitted_at is not None and j.started_at is not None and j.finished_at is not None
        assert j.created_at <= j.admitted_at <= j.started_at <= j.finished_at
        assert j.node == "gpu-node-0" and j.gpu.startswith("GPU-") and j.attempts == 1
        assert j.item and j.placement
    assert [j.slice for j in jobs] == ["mig-1g.5gb", "mig-3g.20gb"] * 2
    samples = run.records(QueueSample)
    assert samples and {s.queue for s in samples} == {"cluster-queue"}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["succeeded"], summary["failed"], summary["timed_out"]) == (4, 0, False)
    assert summary["makespan"] == pytest.approx(max(j.finished_at or 0 for j in jobs) - jobs[0].created_at)
    assert summary["jct"]["median"] > 0 and summary["queue_wait"]["mean"] is not None
    assert "makespan" in text and "JCT" in text
    # the queues were created as the demo's; the Jobs ask for what the study's DAS variant asks
    cq = httpx.get(f"{plane.url}/apis/kueue.x-k8s.io/v1beta2/clusterqueues/cluster-queue").json()
    assert cq["spec"]["resourceGroups"][0]["coveredResources"][2:] == [
        "nvidia.com/mig-1g.5gb",
        "nvidia.com/mig-3g.20gb",
    ]
    api_jobs = httpx.get(f"{plane.url}/apis/batch/v1/namespaces/whisper/jobs").json()["items"]
    assert len(api_jobs) == 4


def test_a_second_run_does_not_collide_and_failures_are_recorded(plane: ControlPlane, tmp_path: Path) -> None:
    assert bench(plane, tmp_path / "one", "--iterations", "1")[0] == 0
    failing = f"{shlex.quote(sys.executable)} -c 'raise SystemExit(3)'"
    code, text = bench(plane, tmp_path / "two", "--iterations", "1", "--command", failing)
    assert code == 1, text
    jobs = RunDir(tmp_path / "two").records(JobRecord)
    assert [j.status for j in jobs] == ["failed", "failed"]
    assert all(j.attempts == 3 and j.message for j in jobs)  # backoffLimit 2: three pods
    assert RunDir(tmp_path / "two").info().status == "failed"
    names = {j.name for j in RunDir(tmp_path / "one").records(JobRecord)}
    assert not names & {j.name for j in jobs}


def test_no_control_plane_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["bench", "batch", "--server", f"http://127.0.0.1:{free_port()}", "--output-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 1
    assert "no Flotilla control plane answers" in result.stdout + result.stderr
    assert not (tmp_path / "r").exists()
