"""What a run leaves on disk: the one format the pipeline, the load generator and `flotilla report` share.

    RUN_DIR/
      run.json            RunInfo: what ran (kind, name, config), when, and how it ended
      jobs.jsonl          JobRecord per line: a batch job's queue wait, run time, node, GPU and slice
      queue.jsonl         QueueSample per line: a ClusterQueue's pending/admitted/running over time
      requests.jsonl      RequestRecord per line: one inference request's latencies, tokens, endpoint
      replicas.jsonl      ReplicaSample per line: one endpoint's scraped load over time
      summary.json        what the producer computed (free-form JSON object; percentiles, verdicts)
      report.html, report.md, plots/*.png      written by `flotilla report RUN_DIR`

Every file but run.json is optional: a load-generator run has no jobs, a batch benchmark no requests.
Times are seconds: `t`, `*_at` fields are seconds since the run's start (RunInfo.started_at is the
wall-clock origin, ISO 8601 UTC). Lines are appended as things happen (a crash loses at most the
line being written; a torn last line is skipped on read), so a report can be rendered while the run
is still going. Unknown fields are rejected on read: the format is versioned by RunInfo.format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT = 1
RunKind = Literal["pipeline", "bench-serve", "bench-batch", "simulation"]  # simulation: times are simulated seconds
RUN_FILE, SUMMARY_FILE = "run.json", "summary.json"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunInfo(Record):
    """run.json: one run of a pipeline or a benchmark."""

    format: int = FORMAT
    kind: RunKind
    name: str  # e.g. "speech-to-summary", "poisson-4.0", "batch-3-iterations"
    started_at: str  # ISO 8601 UTC wall clock: the origin of every `t` and `*_at` in the run
    finished_at: str | None = None  # None while running (or after a crash)
    status: Literal["running", "succeeded", "failed", "interrupted"] = "running"
    message: str = ""  # why it failed, or a one-line outcome
    stages: list[str] = Field(default_factory=list)  # e.g. ["transcribe", "summarize"]
    config: dict[str, Any] = Field(default_factory=dict)  # what was asked: flags, models, profile
    machine: dict[str, Any] = Field(default_factory=dict)  # cpu count, python, platform, GPUs


class JobRecord(Record):
    """One batch job (a Kueue workload): from creation to its end."""

    name: str  # namespace/name of the Job
    queue: str = ""  # LocalQueue name (ClusterQueue in `cluster_queue`)
    cluster_queue: str = ""
    item: str = ""  # what it worked on: the recording's name for the pipeline
    created_at: float
    admitted_at: float | None = None  # quota reserved (Kueue's QuotaReserved)
    started_at: float | None = None  # first container started
    finished_at: float | None = None
    status: Literal["pending", "admitted", "running", "succeeded", "failed"] = "pending"
    attempts: int = 1  # pods created (retries per backoffLimit)
    node: str = ""
    gpu: str = ""  # GPU UUID (or index) the slice is on
    slice: str = ""  # "mig-1g.5gb", "gpu" (whole), or "" (CPU only)
    placement: str = ""  # MIG slots, "start-end"
    message: str = ""  # the failure, when failed

    @property
    def queue_wait(self) -> float | None:
        return None if self.admitted_at is None else self.admitted_at - self.created_at

    @property
    def run_time(self) -> float | None:
        start = self.started_at if self.started_at is not None else self.admitted_at
        return None if start is None or self.finished_at is None else self.finished_at - start

    @property
    def completion_time(self) -> float | None:
        """Job completion time (JCT): creation to the end, as the study measures it."""
        return None if self.finished_at is None else self.finished_at - self.created_at


class QueueSample(Record):
    """A ClusterQueue's workloads at time t."""

    t: float
    queue: str
    pending: int
    admitted: int  # quota reserved, not finished
    running: int = 0


class RequestRecord(Record):
    """One inference request as the client saw it."""

    id: str
    sent_at: float
    status: int  # HTTP status; 0 when no response came (connection error, timeout)
    first_token_at: float | None = None
    finished_at: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    itl_mean: float | None = None  # mean inter-token latency (s) over the output's chunks
    endpoint: str = ""  # x-gateway-destination-endpoint-served, when the gateway said
    item: str = ""  # what it was about: the recording for the pipeline, a dataset row id otherwise
    session: str = ""
    error: str = ""

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.sent_at

    @property
    def latency(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.sent_at


class ReplicaSample(Record):
    """One endpoint's scraped vLLM gauges at time t."""

    t: float
    endpoint: str
    waiting: float = 0.0
    running: float = 0.0
    kv_cache_usage: float = 0.0


R = TypeVar("R", bound=Record)
FILES: dict[type[Record], str] = {
    JobRecord: "jobs.jsonl",
    QueueSample: "queue.jsonl",
    RequestRecord: "requests.jsonl",
    ReplicaSample: "replicas.jsonl",
}


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RunFormatError(ValueError):
    """A run directory that cannot be read; the message names the file and line."""


class RunDir:
    """A run directory: write RunInfo and append records as they happen; read them back."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # -- writing -----------------------------------------------------------------------------------
    def start(self, info: RunInfo) -> RunInfo:
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_info(info)
        return info

    def write_info(self, info: RunInfo) -> None:
        atomic_write(self.path / RUN_FILE, info.model_dump_json(indent=2) + "\n")

    def finish(self, status: Literal["succeeded", "failed", "interrupted"], message: str = "") -> RunInfo:
        info = self.info().model_copy(update={"status": status, "message": message, "finished_at": utc_now()})
        self.write_info(info)
        return info

    def append(self, records: R | Iterable[R]) -> None:
        """Append one record (or several of one type) to its file, one JSON object per line."""
        batch = [records] if isinstance(records, Record) else list(records)
        if not batch:
            return
        name = FILES[type(batch[0])]
        lines = "".join(r.model_dump_json(exclude_defaults=False) + "\n" for r in batch)
        with (self.path / name).open("a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()

    def write_records(self, records: Iterable[R], kind: type[R]) -> None:
        """Replace the file of `kind` with `records` (the final state, e.g. every job as it ended)."""
        lines = "".join(r.model_dump_json() + "\n" for r in records)
        atomic_write(self.path / FILES[kind], lines)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write(self.path / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")

    # -- reading -----------------------------------------------------------------------------------
    def info(self) -> RunInfo:
        file = self.path / RUN_FILE
        try:
            return RunInfo.model_validate_json(file.read_bytes())
        except FileNotFoundError:
            raise RunFormatError(f"{file}: no run.json here; give the directory a run wrote") from None
        except ValidationError as exc:
            raise RunFormatError(f"{file}: not a Flotilla run description: {_first_error(exc)}") from None

    def records(self, kind: type[R]) -> list[R]:
        """Every record of `kind` (empty when the file is absent). A torn last line (a crash mid-write)
        is skipped; any other bad line is an error naming the file and line."""
        return list(self._iter(kind))

    def _iter(self, kind: type[R]) -> Iterator[R]:
        file = self.path / FILES[kind]
        if not file.exists():
            return
        lines = file.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield kind.model_validate_json(line)
            except ValidationError as exc:
                if number == len(lines) and not line.endswith("}"):  # the last line, cut short
                    return
                raise RunFormatError(f"{file}:{number}: {_first_error(exc)}") from None

    def summary(self) -> dict[str, Any]:
        file = self.path / SUMMARY_FILE
        if not file.exists():
            return {}
        try:
            value = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunFormatError(f"{file}: not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise RunFormatError(f"{file}: expected a JSON object")
        return value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(the line)"
    return f"{where}: {err.get('msg', 'invalid')}"


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file (one per process) and rename, so a crash leaves the old file or the new
    one and a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
