"""The speech-to-summary pipeline end to end on a real control plane: real Whisper (tiny.en) in queued
Jobs on emulated MIG slices, real SmolLM2 replicas behind `flotilla up`'s gateway, the run report."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.api.catalog import build_registry
from flotilla.client import FlotillaClient
from flotilla.pipelines import recordings
from flotilla.pipelines.cli import build_pipeline, submit_and_follow
from flotilla.runs import JobRecord, ReplicaSample, RequestRecord, RunDir
from flotilla.runtime.config import RuntimeConfig
from flotilla.server.runner import ControlPlane, free_port
from flotilla.slicer.inventory import parse_gpu_spec

WER_THRESHOLD = 0.25  # whisper tiny.en on espeak-ng voices: 5-11% on the shipped recordings


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    config = RuntimeConfig(jobBackoffSeconds=0, restartBackoffSeconds=0, pollSeconds=0.05)
    p = ControlPlane(
        tmp_path_factory.mktemp("plane"),
        port=free_port(),
        gpus=parse_gpu_spec("1x2xA100-40GB"),
        gpu_backend="emulated",
        runtime_config=config,
        gateway_port=free_port(),
    )
    p.start_in_thread()
    try:
        yield p
    finally:
        p.stop()


def shortest(n: int) -> list[Path]:
    found = recordings.discover(recordings.demo_recordings())
    return sorted((r.path for r in found), key=lambda p: p.stat().st_size)[:n]


def run(plane: ControlPlane, audio: Path, out: Path, name: str, **flags: Any) -> dict[str, Any]:
    options = {"asr_model": "whisper-tiny.en", "llm_model": "smollm2-135m", "slices": "mig-1g.5gb", "queue": None}
    options |= {"replicas": 2, "backoff_limit": 2} | flags
    obj = build_pipeline(name, "speech", audio, out, **options)
    return submit_and_follow(FlotillaClient(plane.url), obj, timeout=300)


def test_recordings_become_transcripts_and_summaries_and_a_rerun_skips_them(
    plane: ControlPlane, tmp_path: Path
) -> None:
    audio, out = tmp_path / "audio", tmp_path / "out"
    audio.mkdir()
    for path in shortest(2):
        shutil.copy(path, audio / path.name)
        shutil.copy(path.with_suffix(".txt"), audio / f"{path.stem}.txt")
    final = run(plane, audio, out, "meetings")
    status = final["status"]
    assert status["phase"] == "Succeeded", status
    assert (status["recordingsTotal"], status["transcribed"], status["summarized"], status["failed"]) == (2, 2, 2, 0)
    run_dir = RunDir(out / "run")
    items = run_dir.summary()["items"]
    for item in items:
        stem = Path(item["recording"]).stem
        for suffix in ("txt", "json", "srt"):
            assert (out / "transcripts" / f"{stem}.{suffix}").is_file()
        assert item["wer"] is not None and item["wer"] <= WER_THRESHOLD, item
        summary = json.loads((out / "summaries" / f"{stem}.json").read_text())
        assert len(summary["summary"].split()) >= 5 and summary["model"] == "smollm2-135m"
        assert summary["endpoint"].startswith("127.1.") and item["ttft_s"] > 0
        assert (out / "summaries" / f"{stem}.md").read_text().startswith(f"# {item['recording']}")
    jobs = run_dir.records(JobRecord)
    assert sorted(j.item for j in jobs) == sorted(i["recording"] for i in items)
    assert all(j.status == "succeeded" and j.slice == "mig-1g.5gb" and j.gpu for j in jobs)
    assert all(j.admitted_at is not None and j.finished_at is not None for j in jobs)
    samples = run_dir.records(ReplicaSample)  # the replicas' load while they summarized
    assert samples and all(s.endpoint.startswith("127.1.") and s.endpoint.endswith(":8000") for s in samples)
    requests = run_dir.records(RequestRecord)
    assert sorted(r.session for r in requests) == sorted(Path(i["recording"]).stem for i in items)
    assert {r.status for r in requests} == {200}
    info = run_dir.info()
    assert info.status == "succeeded" and info.stages == ["transcribe", "summarize"]
    report = (out / "run" / "report.html").read_text()
    assert all(stage in report for stage in info.stages) and "report.md" in {p.name for p in (out / "run").iterdir()}

    # the same pipeline again: nothing left to do, every recording skipped, no Job and no request
    again = run(plane, audio, out, "meetings")
    assert again["status"]["phase"] == "Succeeded" and again["status"]["skipped"] == 2
    assert again["metadata"]["uid"] != final["metadata"]["uid"]
    assert RunDir(out / "run").records(JobRecord) == [] and RunDir(out / "run").records(RequestRecord) == []
    assert {i["state"] for i in RunDir(out / "run").summary()["items"]} == {"Skipped"}


def test_a_recording_that_cannot_be_transcribed_is_retried_then_reported(plane: ControlPlane, tmp_path: Path) -> None:
    audio, out = tmp_path / "audio", tmp_path / "out"
    audio.mkdir()
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    final = run(plane, audio, out, "broken", backoff_limit=1)
    status = final["status"]
    assert status["phase"] == "Failed" and status["failed"] == 1, status
    (rec,) = status["recordings"]
    assert rec["state"] == "Failed" and rec["attempts"] == 2  # the first try and one retry (backoffLimit 1)
    assert "BackoffLimitExceeded" in rec["message"] or "backoff" in rec["message"].lower(), rec
    assert "exit code 1" in rec["message"]
    run_dir = RunDir(out / "run")
    assert run_dir.info().status == "failed" and "broken.wav" in run_dir.info().message
    (job,) = run_dir.records(JobRecord)
    assert job.status == "failed" and job.attempts == 2 and job.message
    assert not (out / "summaries" / "broken.json").exists()


def test_kill_9_of_the_control_plane_mid_run_loses_nothing(tmp_path: Path) -> None:
    """`flotilla up` killed with SIGKILL while Jobs run; restarted on the same state, the pipeline
    finishes every recording once, with the run's records intact."""
    port, gateway = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "flotilla", "up", "--port", str(port), "--data-dir", str(tmp_path / "state")]
    argv += ["--gateway-port", str(gateway), "--gpus", "1x2xA100-40GB", "--gpu-backend", "emulated"]
    argv += ["--log-level", "warning"]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=0.5).status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("flotilla up did not become ready")

    def status() -> dict[str, Any]:
        obj = httpx.get(f"{url}/apis/flotilla.dev/v1alpha1/namespaces/speech/pipelines/crash").json()
        return dict(obj.get("status") or {})

    audio, out = tmp_path / "audio", tmp_path / "out"
    audio.mkdir()
    for path in shortest(3):
        shutil.copy(path, audio / path.name)
    obj = build_pipeline("crash", "speech", audio, out, "whisper-tiny.en", "smollm2-135m", "mig-1g.5gb", None, 2, 2)
    proc = start()
    try:
        client = FlotillaClient(url)
        client.create(
            client_kind("namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "speech"}}
        )
        client.create(client_kind("pipelines"), obj, "speech")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            r.get("state") in ("Running", "Summarizing") for r in status().get("recordings") or []
        ):
            time.sleep(0.1)
        before = status()
        assert before.get("phase") == "Running", before
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start()
        final = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            final = status()
            if final.get("phase") in ("Succeeded", "Failed"):
                break
            time.sleep(0.25)
        assert final is not None and final.get("phase") == "Succeeded", final
        assert final["runId"] == before["runId"]  # the same run, resumed
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    run_dir = RunDir(out / "run")
    assert run_dir.info().status == "succeeded"
    items = run_dir.summary()["items"]
    assert [i["state"] for i in items] == ["Done"] * 3
    for item in items:
        stem = Path(item["recording"]).stem
        assert recordings.transcript(out, stem) and recordings.summary(out, stem)
    assert {r.item for r in run_dir.records(RequestRecord) if r.status == 200} == {i["recording"] for i in items}
    assert not list(out.rglob(".*.tmp"))  # no half-written output left behind


def client_kind(plural: str) -> Any:
    return build_registry().resolve(plural)
