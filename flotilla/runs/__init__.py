"""Run directories: the on-disk record of a pipeline or benchmark run (see records.py)."""

from flotilla.runs.records import (
    FORMAT,
    JobRecord,
    QueueSample,
    ReplicaSample,
    RequestRecord,
    RunDir,
    RunFormatError,
    RunInfo,
    utc_now,
)

__all__ = [
    "FORMAT",
    "JobRecord",
    "QueueSample",
    "ReplicaSample",
    "RequestRecord",
    "RunDir",
    "RunFormatError",
    "RunInfo",
    "utc_now",
]
