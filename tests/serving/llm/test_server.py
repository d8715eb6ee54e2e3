"""`flotilla serve llm` for real: SmolLM2-135M on llama.cpp, driven through the OpenAI Python client.

One server for the module (4 slots, a 2048-token KV cache); metric checks compare a scrape before
and after the requests they send, so the order of the tests does not matter.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.server.runner import free_port
from flotilla.serving.llm.server import LlmServer, LlmServerConfig

MODEL = "smollm2-135m"
MESSAGES = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def server() -> Iterator[LlmServer]:
    srv = LlmServer(LlmServerConfig(port=free_port(), parallel=4, ctx_size=2048)).start_in_thread()
    try:
        srv.wait_ready(60)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server: LlmServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c


def scrape(server: LlmServer) -> dict[str, float]:
    """vLLM sample name (with `[finished_reason]` where it has one) -> value."""
    out: dict[str, float] = {}
    text = httpx.get(f"{server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert s.labels.get("model_name", MODEL) == MODEL
            key = s.name + (f"[{s.labels['finished_reason']}]" if "finished_reason" in s.labels else "")
            out[key] = float(s.value)
    return out


def delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def successes(before: dict[str, float], after: dict[str, float]) -> float:
    return sum(delta(before, after, f"vllm:request_success_total[{r}]") for r in ("stop", "length"))


def test_health_and_models(server: LlmServer, client: openai.OpenAI) -> None:
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert [m.id for m in client.models.list()] == [MODEL]


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8)  # type: ignore[arg-type]
    assert reply.model == MODEL
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 8


def test_chat_stream_arrives_chunk_by_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=8,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) == 8
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stream_is_not_buffered(server: LlmServer) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 8, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        reads = [chunk for chunk in response.iter_raw()]
    events = [e for e in b"".join(reads).split(b"\n\n") if e.startswith(b"data:")]
    assert events[-1] == b"data: [DONE]"
    assert len(reads) >= 4  # one read per event or so, not one body at the end


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6)
    assert reply.choices[0].text
    assert reply.usage is not None and reply.usage.completion_tokens <= 6
    streamed = list(client.completions.create(model=MODEL, prompt="One, two,", max_tokens=4, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices)


def test_metrics_match_what_was_sent(server: LlmServer, client: openai.OpenAI) -> None:
    before = scrape(server)
    prompt = [{"role": "user", "content": "Summarize: the meeting moved the release to Friday."}]
    replies = [client.chat.completions.create(model=MODEL, messages=prompt, max_tokens=6) for _ in range(3)]  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=prompt,  # type: ignore[arg-type]
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    usages = [r.usage for r in replies] + [chunks[-1].usage]
    assert all(u is not None for u in usages)
    after = scrape(server)

    assert successes(before, after) == 4
    assert delta(before, after, "vllm:time_to_first_token_seconds_count") == 4
    assert delta(before, after, "vllm:e2e_request_latency_seconds_count") == 4
    assert delta(before, after, "vllm:prompt_tokens_total") == sum(u.prompt_tokens for u in usages if u) > 0
    assert delta(before, after, "vllm:generation_tokens_total") == sum(u.completion_tokens for u in usages if u)
    assert delta(before, after, "vllm:inter_token_latency_seconds_count") == 5  # 6 tokens streamed
    cached = sum(u.prompt_tokens_details.cached_tokens or 0 for u in usages if u and u.prompt_tokens_details)
    assert cached > 0  # the same prompt four times: llama.cpp reuses the prefix
    assert delta(before, after, "vllm:prefix_cache_hits_total") == cached
    assert delta(before, after, "vllm:prefix_cache_queries_total") == delta(before, after, "vllm:prompt_tokens_total")


def test_concurrent_requests_complete(server: LlmServer) -> None:
    async_client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)

    async def ask(i: int) -> str:
        messages = [{"role": "user", "content": f"Say the number {i}."}]
        reply = await async_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12)  # type: ignore[arg-type]
        return reply.choices[0].message.content or ""

    async def main() -> list[str]:
        import asyncio

        try:
            return await asyncio.gather(*(ask(i) for i in range(4)))
        finally:
            await async_client.close()

    import asyncio

    before = scrape(server)
    answers = asyncio.run(main())
    assert len(answers) == 4 and all(answers)
    assert successes(before, scrape(server)) == 4


def test_gauges_show_running_and_waiting_and_aborts_count(server: LlmServer, client: openai.OpenAI) -> None:
    """Four streams fill the four slots; a fifth waits; closing them aborts all five."""
    before = scrape(server)
    body = {"max_tokens": 400, "extra_body": {"ignore_eos": True}}
    streams = [
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **body)  # type: ignore[call-overload]
        for _ in range(4)
    ]
    for s in streams:
        next(iter(s))  # each has its first token: it holds a slot
    fifth_done = threading.Event()
    fifth: list[object] = []

    def ask_fifth() -> None:
        try:
            fifth.append(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **body))  # type: ignore[call-overload]
        finally:
            fifth_done.set()

    threading.Thread(target=ask_fifth, daemon=True).start()
    state = wait_for(server, lambda m: m["vllm:num_requests_waiting"] >= 1)
    assert state["vllm:num_requests_running"] == 4
    assert 0 < state["vllm:kv_cache_usage_perc"] <= 1
    for s in streams:
        s.close()
    assert fifth_done.wait(30)
    fifth[0].close()  # type: ignore[attr-defined]
    after = wait_for(server, lambda m: delta(before, m, "vllm:request_success_total[abort]") == 5)
    assert wait_for(server, lambda m: m["vllm:num_requests_running"] == 0)["vllm:num_requests_waiting"] == 0
    assert successes(before, after) == 0


def wait_for(server: LlmServer, condition: object, timeout: float = 30.0) -> dict[str, float]:
    """Scrape until `condition(metrics)` holds (bounded: fails after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = scrape(server)
        if condition(metrics):  # type: ignore[operator]
            return metrics
        assert time.monotonic() < deadline, f"metrics never met the condition: {metrics}"
        time.sleep(0.05)


def error_of(response: httpx.Response, status: int, code: str | None) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    return dict(error)


def test_errors_in_openai_shape(server: LlmServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)  # type: ignore[arg-type]
    assert "gpt-4o" in str(not_found.value)
    url = f"{server.url}/v1/chat/completions"
    error_of(httpx.post(url, content=b"{not json"), 400, "invalid_json")
    error_of(httpx.post(url, json=["a list"]), 400, "invalid_json")
    error_of(httpx.post(url, json={"model": MODEL, "messages": "not a list"}), 400, "invalid_request_error")
    long_prompt = [{"role": "user", "content": "hello " * 2500}]
    with pytest.raises(openai.APIStatusError) as too_long:
        client.chat.completions.create(model=MODEL, messages=long_prompt, max_tokens=2)  # type: ignore[arg-type]
    assert too_long.value.status_code == 413
    assert error_of(too_long.value.response, 413, "context_length_exceeded")["type"] == "invalid_request_error"
    error_of(httpx.get(f"{server.url}/v1/nothing-here"), 404, "not_found")


def test_stop_leaves_no_threads_or_ports() -> None:
    threads_before = set(threading.enumerate())
    port = free_port()
    srv = LlmServer(LlmServerConfig(port=port, parallel=1, ctx_size=512)).start_in_thread()
    srv.wait_ready(60)
    upstream = srv.state.upstream
    assert upstream is not None
    assert httpx.get(f"{upstream}/health").status_code == 200
    srv.stop()
    assert set(threading.enumerate()) - threads_before == set()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{upstream}/health")
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the public port is free again
