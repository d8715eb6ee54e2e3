"""Synthetic run directories, written with RunDir as a pipeline or a benchmark would."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.runs import QueueSample, ReplicaSample, RunDir, RunInfo

from .builders import FINISHED, HOSTILE, PIPELINE_JOBS, STARTED, job, request


@pytest.fixture
def pipeline_run(tmp_path: Path) -> Path:
    run = RunDir(tmp_path / "pipeline")
    run.start(
        RunInfo(
            kind="pipeline",
            name=f"speech {HOSTILE}",
            started_at=STARTED,
            stages=["transcribe", "summarize", f"stage-{HOSTILE}"],
            config={"model": "whisper-base", "profile": HOSTILE, "gpus": ["0", "1"]},
            machine={"cpus": 2, "python": "3.11"},
        )
    )
    run.append(PIPELINE_JOBS)
    run.append(
        [
            QueueSample(t=t, queue="gpu-cq", pending=p, admitted=a)
            for t, p, a in [(0.0, 1, 0), (1.0, 2, 1), (3.0, 0, 3), (12.0, 0, 2), (30.0, 0, 0)]
        ]
    )
    run.append(
        [
            request(
                i,
                20.0 + i,
                0.1 * (i + 1),
                1.0 + i,
                endpoint=("10.0.0.1:8000" if i % 2 else "10.0.0.2:8000"),
                item=f"rec-{i}",
            )
            for i in range(4)
        ]
    )
    run.append(request(9, 25.0, None, None, endpoint="10.0.0.2:8000", status=503))
    run.append(
        [
            ReplicaSample(t=t, endpoint=e, waiting=w, running=1.0, kv_cache_usage=0.25 * w)
            for t in (20.0, 25.0)
            for e, w in (("10.0.0.1:8000", 1.0), ("10.0.0.2:8000", 2.0))
        ]
    )
    run.write_summary(
        {
            "items": [
                {
                    "name": "rec-a",
                    "queue_wait": 1.0,
                    "transcription_s": 18.5,
                    "wer": 0.05234,
                    "ttft": 0.1,
                    "summary_len": 120,
                },
                {
                    "name": HOSTILE,
                    "queue_wait": 1.0,
                    "transcription_s": 17.5,
                    "wer": None,
                    "ttft": 0.2,
                    "summary_len": 95,
                },
            ],
            "recordings": 2,
            "verdict": "ok",
            "wer_mean": 0.123456,
            "gates": {"wer_max": 0.3, "passed": True},
            "benchmarks": {"poisson-1": {"p50": 0.1, "p90": 0.2}, "poisson-4": {"p50": 0.3, "p90": 0.9}},
        }
    )
    run.finish("succeeded", "2 of 2 recordings")
    info = run.info()
    run.write_info(info.model_copy(update={"finished_at": FINISHED}))
    return run.path


@pytest.fixture
def serve_run(tmp_path: Path) -> Path:
    run = RunDir(tmp_path / "serve")
    run.start(RunInfo(kind="bench-serve", name="poisson-4.0", started_at=STARTED))
    run.append(
        [request(i, i * 0.5, 0.05 * (i + 1), 0.5 + 0.1 * i, endpoint="", item=f"bench-{i % 2}") for i in range(12)]
    )
    return run.path


@pytest.fixture
def batch_run(tmp_path: Path) -> Path:
    run = RunDir(tmp_path / "batch")
    run.start(RunInfo(kind="bench-batch", name="batch-3-iterations", started_at=STARTED, stages=["batch"]))
    run.append([job(f"b/{i}", 0.0, float(i), float(i), i + 2.0, queue="q", status="succeeded") for i in range(3)])
    run.finish("succeeded")
    return run.path


@pytest.fixture
def empty_run(tmp_path: Path) -> Path:
    run = RunDir(tmp_path / "empty")
    run.start(RunInfo(kind="pipeline", name="nothing-yet", started_at=STARTED, stages=["transcribe"]))
    return run.path
