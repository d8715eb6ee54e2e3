"""Records for synthetic run directories: jobs, requests, and a hostile string."""

from __future__ import annotations

from flotilla.runs import JobRecord, RequestRecord

HOSTILE = "<script>alert(1)</script>"
STARTED = "2025-01-02T03:04:05.000000Z"
FINISHED = "2025-01-02T03:05:47.500000Z"  # 102.5 s later


def job(
    name: str, created: float, admitted: float | None, started: float | None, finished: float | None, **fields: object
) -> JobRecord:
    return JobRecord.model_validate(
        {
            "name": name,
            "created_at": created,
            "admitted_at": admitted,
            "started_at": started,
            "finished_at": finished,
            **fields,
        }
    )


def request(
    i: int, sent: float, ttft: float | None, e2e: float | None, endpoint: str, status: int = 200, item: str = ""
) -> RequestRecord:
    return RequestRecord(
        id=f"r{i}",
        sent_at=sent,
        status=status,
        endpoint=endpoint,
        item=item,
        output_tokens=10 if status == 200 else 0,
        first_token_at=None if ttft is None else sent + ttft,
        finished_at=None if e2e is None else sent + e2e,
        itl_mean=0.02 if status == 200 else None,
    )


PIPELINE_JOBS = [
    # two jobs overlap on gpu 0's 1g.10gb slice, two run one after the other on gpu 1
    job(
        "asr/rec-a",
        0.0,
        1.0,
        1.5,
        20.0,
        queue="asr",
        cluster_queue="gpu-cq",
        item="rec-a",
        node="n0",
        gpu="0",
        slice="mig-1g.10gb",
        status="succeeded",
    ),
    job(
        "asr/rec-b",
        0.5,
        2.0,
        2.5,
        15.0,
        queue="asr",
        cluster_queue="gpu-cq",
        item="rec-b",
        node="n0",
        gpu="0",
        slice="mig-1g.10gb",
        status="succeeded",
    ),
    job(
        "asr/rec-c",
        1.0,
        3.0,
        3.0,
        10.0,
        queue="asr",
        cluster_queue="gpu-cq",
        item="rec-c",
        node="n0",
        gpu="1",
        slice="gpu",
        status="failed",
        attempts=3,
        message="OOMKilled",
    ),
    job(
        "asr/rec-d",
        11.0,
        12.0,
        12.5,
        30.0,
        queue="llm",
        cluster_queue="gpu-cq",
        item=HOSTILE,
        node="n0",
        gpu="1",
        slice="gpu",
        status="succeeded",
    ),
]
