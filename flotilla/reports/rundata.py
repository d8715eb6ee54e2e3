"""A run directory read in full, once, before anything is written (see flotilla/runs/records.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flotilla.runs import JobRecord, QueueSample, ReplicaSample, RequestRecord, RunDir, RunFormatError, RunInfo
from flotilla.runs.records import FILES, SUMMARY_FILE, Record

R = TypeVar("R", bound=Record)
T = TypeVar("T")


@dataclass(frozen=True)
class RunData:
    path: Path
    info: RunInfo
    jobs: list[JobRecord]
    queue: list[QueueSample]
    requests: list[RequestRecord]
    replicas: list[ReplicaSample]
    summary: dict[str, Any]


def load_run(path: Path) -> RunData:
    """Every record of the run at `path`. Raises RunFormatError naming the file (and line) that cannot be
    read: no run.json, a bad line that is not the torn last one, a summary.json that is not an object."""
    run = RunDir(path)
    info = run.info()
    summary = _decoded(run, SUMMARY_FILE, run.summary)
    return RunData(
        path=path,
        info=info,
        jobs=_records(run, JobRecord),
        queue=_records(run, QueueSample),
        requests=_records(run, RequestRecord),
        replicas=_records(run, ReplicaSample),
        summary=summary,
    )


def _records(run: RunDir, kind: type[R]) -> list[R]:
    return _decoded(run, FILES[kind], lambda: run.records(kind))


def _decoded(run: RunDir, name: str, read: Callable[[], T]) -> T:
    """`read()`, with bytes that are not UTF-8 (or a file that cannot be opened) reported as a RunFormatError."""
    try:
        return read()
    except UnicodeDecodeError as exc:
        raise RunFormatError(f"{run.path / name}: not UTF-8 text (byte {exc.start})") from None
    except IsADirectoryError:
        raise RunFormatError(f"{run.path / name}: a directory, expected a file") from None
