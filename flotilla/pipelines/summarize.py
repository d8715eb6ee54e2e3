"""Stage 2 of speech-to-summary: one streaming chat completion per transcript, through the gateway.

Every request carries the same system prompt (so the replicas' prefix caches and the gateway's
prefix-affinity scorer share it) and `x-session-token: <recording>` (GAIE/llm-d session affinity).
The client measures what a user would: time to the first token and to the last, and which replica
served it (`x-gateway-destination-endpoint-served`). While the replicas are starting the gateway
answers 503 (no ready endpoint) or 429 (shed): those are waited out, up to the stage's timeout;
other errors fail the recording's summary with the gateway's message.

    SUMMARIES/<stem>.md     the summary, for people
    SUMMARIES/<stem>.json   {recording, model, summary, prompt_tokens, output_tokens, ttft_s,
                             latency_s, endpoint, finish_reason, created}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from flotilla.api.pipelines import SummarizeStage
from flotilla.loadgen.client import StreamState, error_text
from flotilla.runs.records import atomic_write

SESSION_HEADER = "x-session-token"
SERVED_HEADER = "x-gateway-destination-endpoint-served"
RETRYABLE = (429, 502, 503, 504)


@dataclass(frozen=True)
class SummaryResult:
    recording: str  # the recording's file name
    ok: bool
    sent_at: float  # clock seconds (the caller's clock)
    first_token_at: float | None = None
    finished_at: float | None = None
    text: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    endpoint: str = ""
    status: int = 0
    attempts: int = 1
    error: str = ""
    finish_reason: str = ""


def messages(stage: SummarizeStage, recording: str, transcript_text: str) -> list[dict[str, str]]:
    user = f'Transcript of the meeting "{recording}":\n\n{transcript_text.strip()}\n\nSummarize this meeting.'
    return [{"role": "system", "content": stage.systemPrompt}, {"role": "user", "content": user}]


def summarize(
    gateway: str,
    stage: SummarizeStage,
    recording: str,
    session: str,
    transcript_text: str,
    clock: Callable[[], float] = time.monotonic,
    cancelled: Callable[[], bool] = lambda: False,
) -> SummaryResult:
    """Ask the gateway for a summary (streaming), retrying while no replica is ready."""
    body = {
        "model": stage.model,
        "messages": messages(stage, recording, transcript_text),
        "max_tokens": stage.maxTokens,
        "temperature": 0.2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    deadline = clock() + stage.timeoutSeconds
    attempts, last_error, status = 0, "", 0
    with httpx.Client(base_url=gateway, timeout=httpx.Timeout(stage.timeoutSeconds, connect=5.0)) as client:
        while clock() < deadline and not cancelled():
            attempts += 1
            sent = clock()
            try:
                result = _stream(client, body, {SESSION_HEADER: session}, recording, sent, clock)
            except httpx.HTTPError as exc:  # gateway not up yet, or the connection dropped
                last_error, status = f"{type(exc).__name__}: {exc}", 0
                time.sleep(1.0)
                continue
            if result.ok or result.status not in RETRYABLE:
                return replace(result, attempts=attempts)
            last_error, status = result.error, result.status
            time.sleep(1.0)
    why = "cancelled" if cancelled() else f"no answer within {stage.timeoutSeconds:g} s"
    return SummaryResult(recording, False, clock(), status=status, attempts=attempts, error=f"{why}: {last_error}")


def _stream(
    client: httpx.Client,
    body: dict[str, Any],
    headers: dict[str, str],
    recording: str,
    sent: float,
    clock: Callable[[], float],
) -> SummaryResult:
    with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        endpoint = response.headers.get(SERVED_HEADER, "")
        if response.status_code != 200:
            message = error_text(response.read().decode("utf-8", "replace"))
            return SummaryResult(recording, False, sent, status=response.status_code, error=message, endpoint=endpoint)
        state = StreamState()  # `flotilla bench serve`'s reader of the event stream
        for line in response.iter_lines():
            state.feed(line, clock())
            if state.done:
                break
        text = "".join(state.text_parts).strip()
        return SummaryResult(
            recording,
            bool(text),
            sent,
            first_token_at=state.first_token_at,
            finished_at=clock(),
            text=text,
            prompt_tokens=state.prompt_tokens or 0,
            output_tokens=state.output_tokens if state.output_tokens is not None else state.content_chunks,
            endpoint=endpoint,
            status=200,
            error="" if text else (state.errors[0] if state.errors else "the model returned an empty summary"),
            finish_reason=state.finish_reason,
        )


def write_summary(directory: Path, stem: str, model: str, result: SummaryResult) -> None:
    """`<stem>.md` then `<stem>.json` (the marker that the stage is done), each replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    ttft = None if result.first_token_at is None else result.first_token_at - result.sent_at
    latency = None if result.finished_at is None else result.finished_at - result.sent_at
    record = {
        "recording": result.recording,
        "model": model,
        "summary": result.text,
        "prompt_tokens": result.prompt_tokens,
        "output_tokens": result.output_tokens,
        "ttft_s": ttft,
        "latency_s": latency,
        "endpoint": result.endpoint,
        "finish_reason": result.finish_reason,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    markdown = f"# {result.recording}\n\n{result.text}\n\n---\n*{model}, {result.output_tokens} tokens"
    markdown += f", served by {result.endpoint}*\n" if result.endpoint else "*\n"
    atomic_write(directory / f"{stem}.md", markdown)
    atomic_write(directory / f"{stem}.json", json.dumps(record, indent=2) + "\n")
