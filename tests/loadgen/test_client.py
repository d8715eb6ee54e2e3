"""The streaming client against a fake server with known latencies (TTFT 100 ms, ITL 20 ms)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from flotilla.loadgen.client import (
    ClientConfig,
    StreamState,
    TargetError,
    default_model,
    request_body,
    send,
)
from flotilla.loadgen.datasets import Prompt
from flotilla.runs.records import RequestRecord
from flotilla.server.runner import free_port

from .fake_openai import PROMPT_TOKENS, SERVED, FakeOpenAI

PROMPT = Prompt("p0", "Hello there", output_tokens=5, prompt_tokens=2)


def run_one(config: ClientConfig, prompt: Prompt = PROMPT) -> RequestRecord:
    async def go() -> RequestRecord:
        async with httpx.AsyncClient(timeout=10) as http:
            return await send(http, config, prompt, request_id="r1", item="synchronous", origin=time.perf_counter())

    return asyncio.run(go())


@pytest.mark.parametrize("endpoint_type", ["chat", "completions"])
def test_latencies_and_tokens_are_measured(fake_openai: FakeOpenAI, endpoint_type: str) -> None:
    r = run_one(ClientConfig(fake_openai.url, "fake-model", endpoint_type))  # type: ignore[arg-type]
    assert (r.status, r.error) == (200, "")
    assert r.ttft is not None and 0.09 <= r.ttft <= 0.3
    assert r.latency is not None and 0.17 <= r.latency <= 0.5  # 100 ms + 4 x 20 ms
    assert r.itl_mean is not None and 0.018 <= r.itl_mean <= 0.06  # 4 gaps of 20 ms
    assert r.itl_mean == pytest.approx((r.latency - r.ttft) / 4)  # GuideLLM's: (e2e - TTFT) / (tokens - 1)
    assert (r.prompt_tokens, r.output_tokens) == (PROMPT_TOKENS, 5)  # from the usage chunk
    assert r.endpoint == SERVED
    assert (r.id, r.item) == ("r1", "synchronous")


def test_the_request_is_openai_shaped(fake_openai: FakeOpenAI) -> None:
    prompt = Prompt("p1", "Summarize this", 5, 3, session="meeting-1", system="You summarize.")
    run_one(ClientConfig(fake_openai.url, "fake-model", "chat", ignore_eos=True, api_key="sk-1"), prompt)
    run_one(ClientConfig(fake_openai.url, "fake-model", "completions"), prompt)
    (chat_path, chat, headers), (path, completion, plain) = fake_openai.requests
    assert chat_path == "/v1/chat/completions" and path == "/v1/completions"
    assert chat == {
        "model": "fake-model",
        "messages": [{"role": "system", "content": "You summarize."}, {"role": "user", "content": "Summarize this"}],
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    assert headers["authorization"] == "Bearer sk-1" and headers["x-session-token"] == "meeting-1"
    assert completion["prompt"] == "You summarize.\n\nSummarize this" and "ignore_eos" not in completion
    assert "authorization" not in plain


def test_an_http_error_is_recorded(fake_openai: FakeOpenAI) -> None:
    r = run_one(ClientConfig(fake_openai.url, "fail-500"))
    assert r.status == 500
    assert r.error == "HTTP 500: the engine fell over"
    assert r.first_token_at is None and r.itl_mean is None


def test_a_dropped_connection_is_recorded(fake_openai: FakeOpenAI) -> None:
    r = run_one(ClientConfig(fake_openai.url, "drop"))
    assert r.status == 200  # the headers came, then the stream broke
    assert r.error.startswith("RemoteProtocolError")
    assert r.first_token_at is not None and r.itl_mean is None


def test_nobody_listening_is_recorded() -> None:
    r = run_one(ClientConfig(f"http://127.0.0.1:{free_port()}", "m"))
    assert r.status == 0 and r.error.startswith("ConnectError")
    assert r.finished_at is not None and r.output_tokens == 0


def test_default_model_is_the_first_listed(fake_openai: FakeOpenAI) -> None:
    assert default_model(fake_openai.url) == "fake-model"
    with pytest.raises(TargetError, match="cannot reach"):
        default_model(f"http://127.0.0.1:{free_port()}", timeout=2)


def test_stream_state_parses_sse_lines() -> None:
    s = StreamState()
    for t, line in enumerate(
        [
            ": keep-alive",
            'data: {"choices":[{"delta":{"role":"assistant"}}]}',  # no content: not the first token
            'data: {"choices":[{"delta":{"content":"Hi"}}]}',
            "",
            'data: {"choices":[{"delta":{"reasoning_content":"hm"}}]}',
            'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9}}',
            "data: [DONE]",
        ]
    ):
        s.feed(line, float(t))
    assert (s.first_token_at, s.content_chunks, s.prompt_tokens, s.output_tokens, s.done) == (2.0, 2, 3, 9, True)
    bad = StreamState()
    bad.feed('data: {"error": {"message": "overloaded"}}', 0.0)
    bad.feed("data: {nope", 0.0)
    assert bad.errors == ["overloaded", "bad SSE data: {nope"]


def test_without_usage_content_chunks_count_as_tokens() -> None:
    s = StreamState()
    for line in ['data: {"choices":[{"text":"a"}]}', 'data: {"choices":[{"text":"b"}]}']:
        s.feed(line, 1.0)
    assert s.output_tokens is None and s.content_chunks == 2


def test_request_body_without_system_prompt() -> None:
    body = request_body(ClientConfig("http://x", "m"), PROMPT)
    assert body["messages"] == [{"role": "user", "content": "Hello there"}] and "ignore_eos" not in body
