"""Run directories: write, append, read back; a torn last line is skipped, anything else is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.runs import JobRecord, QueueSample, RequestRecord, RunDir, RunFormatError, RunInfo, utc_now


def test_a_run_round_trips(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.start(RunInfo(kind="pipeline", name="speech-to-summary", started_at=utc_now(), stages=["transcribe"]))
    run.append(JobRecord(name="ns/a", created_at=0.0, admitted_at=1.5, started_at=2.0, finished_at=5.0))
    run.append([RequestRecord(id="r1", sent_at=1.0, status=200, first_token_at=1.25, finished_at=2.0)])
    run.append([])  # nothing to write, no file made
    assert run.info().status == "running" and run.info().stages == ["transcribe"]
    (job,) = run.records(JobRecord)
    assert (job.queue_wait, job.run_time, job.completion_time) == (1.5, 3.0, 5.0)
    (req,) = run.records(RequestRecord)
    assert (req.ttft, req.latency) == (0.25, 1.0)
    assert run.records(QueueSample) == []
    finished = run.finish("succeeded", "2 of 2")
    assert finished.status == "succeeded" and finished.finished_at and run.info() == finished
    run.write_summary({"jobs": 1})
    assert run.summary() == {"jobs": 1}


def test_a_torn_last_line_is_skipped_and_a_bad_line_named(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.start(RunInfo(kind="bench-serve", name="x", started_at=utc_now()))
    run.append(QueueSample(t=0.0, queue="cq", pending=2, admitted=1))
    with (tmp_path / "queue.jsonl").open("a") as f:
        f.write('{"t": 1.0, "queue": "cq", "pend')  # the crash
    assert [s.pending for s in run.records(QueueSample)] == [2]
    (tmp_path / "queue.jsonl").write_text('{"t": 0, "queue": "cq", "pending": 1, "admitted": 0, "extra": 1}\n{}\n')
    with pytest.raises(RunFormatError, match=r"queue.jsonl:1: extra: Extra inputs"):
        run.records(QueueSample)


def test_a_directory_without_run_json_says_so(tmp_path: Path) -> None:
    with pytest.raises(RunFormatError, match=r"no run\.json"):
        RunDir(tmp_path).info()
    (tmp_path / "run.json").write_text('{"kind": "nope"}')
    with pytest.raises(RunFormatError, match="not a Flotilla run description"):
        RunDir(tmp_path).info()
