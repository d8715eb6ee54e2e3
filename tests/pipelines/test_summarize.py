"""Stage 2's client: one streaming chat completion per transcript, waiting out 503s, failing on 400s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from flotilla.api.pipelines import SummarizeStage
from flotilla.pipelines import recordings
from flotilla.pipelines.summarize import SERVED_HEADER, SESSION_HEADER, summarize, write_summary
from tests.gateway.builders import ServerThread


def fake_gateway(seen: list[dict[str, Any]], unready: int = 1, status: int = 200) -> FastAPI:
    """503 for the first `unready` requests, then a stream after 0.2 s (or `status` with an error)."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        seen.append({"body": await request.json(), "session": request.headers.get(SESSION_HEADER)})
        if len(seen) <= unready:
            return JSONResponse({"error": {"message": "no ready endpoint"}}, status_code=503)
        if status != 200:
            return JSONResponse({"error": {"message": "prompt too long", "type": "BadRequestError"}}, status)

        async def stream() -> AsyncIterator[bytes]:
            await asyncio.sleep(0.2)
            for word in ("- Ship ", "on ", "Thursday."):
                chunk = {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            usage = {"prompt_tokens": 40, "completion_tokens": 3}
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={SERVED_HEADER: "127.1.0.2:8000"})

    return app


def test_a_summary_waits_out_unready_replicas_and_measures_the_first_token(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    stage = SummarizeStage(model="m", systemPrompt="Summarize.", maxTokens=32)
    with ServerThread(fake_gateway(seen)) as server:
        result = summarize(server.url, stage, "standup.flac", "standup", "We ship on Thursday.")
    assert result.ok and result.text == "- Ship on Thursday." and result.attempts == 2
    assert result.first_token_at is not None and result.finished_at is not None
    assert 0.15 <= result.first_token_at - result.sent_at < 5.0
    assert (result.prompt_tokens, result.output_tokens, result.endpoint) == (40, 3, "127.1.0.2:8000")
    body = seen[-1]["body"]
    assert seen[-1]["session"] == "standup" and body["stream"] is True and body["max_tokens"] == 32
    assert body["messages"][0] == {"role": "system", "content": "Summarize."}
    assert "We ship on Thursday." in body["messages"][1]["content"]
    write_summary(tmp_path / "summaries", "standup", "m", result)
    record = recordings.summary(tmp_path, "standup")
    assert record is not None and record["summary"] == result.text and record["endpoint"] == "127.1.0.2:8000"
    assert "- Ship on Thursday." in (tmp_path / "summaries" / "standup.md").read_text()


def test_a_refused_summary_fails_with_the_gateways_message() -> None:
    seen: list[dict[str, Any]] = []
    with ServerThread(fake_gateway(seen, unready=0, status=400)) as server:
        result = summarize(server.url, SummarizeStage(), "a.wav", "a", "text")
    assert not result.ok and result.status == 400 and result.error == "prompt too long" and len(seen) == 1


def test_no_gateway_at_all_fails_after_the_timeout() -> None:
    result = summarize("http://127.0.0.1:9", SummarizeStage(timeoutSeconds=1.5), "a.wav", "a", "text")
    assert not result.ok and "no answer within 1.5 s" in result.error and result.attempts >= 1
