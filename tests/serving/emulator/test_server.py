"""The OpenAI API over HTTP (uvicorn on a loopback port, httpx), at a high --speed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from flotilla.serving.emulator.cli import build_driver
from flotilla.serving.emulator.engine import EngineConfig
from flotilla.serving.emulator.kvcache import MASK64
from flotilla.serving.emulator.server import ServerThread, create_app

SYSTEM = "You summarise meeting transcripts into three short bullet points. " * 40


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    config = EngineConfig(lora_modules=("summarise",), max_model_len=4096)
    app = create_app(build_driver("A100-80GB", "qwen3-8b", config, speed=200.0, max_queue_len=64))
    with ServerThread(app) as s:
        yield s


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as c:
        yield c


def chat(content: str, **extra: object) -> dict[str, object]:
    return {
        "model": "qwen3-8b",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}],
        **extra,
    }


def events(response: httpx.Response) -> list[dict[str, object] | str]:
    out: list[dict[str, object] | str] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_chat_completion_with_usage_and_request_id(client):
    r = client.post("/v1/chat/completions", json=chat("first", max_tokens=12), headers={"X-Request-Id": "abc"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "chatcmpl-abc"
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"] == "chatcmpl-abc"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert (
        usage["completion_tokens"] <= 12
        and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    )
    assert "cached_tokens" in usage["prompt_tokens_details"]


def test_a_shared_system_prompt_is_served_from_the_prefix_cache(client):
    client.post("/v1/chat/completions", json=chat("one", max_tokens=2))
    r = client.post("/v1/chat/completions", json=chat("two", max_tokens=2)).json()
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] >= 16 * ((r["usage"]["prompt_tokens"] - 16) // 16)


def test_streaming_chat_sends_deltas_usage_and_done(client):
    body = chat("stream me", max_tokens=9, ignore_eos=True, stream=True, stream_options={"include_usage": True})
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        got = events(r)
    assert got[-1] == "[DONE]"
    chunks = [c for c in got[:-1] if isinstance(c, dict)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c for c in chunks[1:] if c["choices"]]
    assert len(deltas) == 9 and deltas[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 9


def test_streaming_completion_from_token_ids_on_a_lora_adapter(client):
    body = {
        "model": "summarise",
        "prompt": list(range(1000, 1100)),
        "max_tokens": 4,
        "stream": True,
        "ignore_eos": True,
    }
    with client.stream("POST", "/v1/completions", json=body) as r:
        got = events(r)
    texts = [c["choices"][0]["text"] for c in got if isinstance(c, dict)]
    assert len(texts) == 4 and got[-1] == "[DONE]" and got[0]["model"] == "summarise"


def test_models_health_version_and_state(client):
    models = client.get("/v1/models").json()["data"]
    assert [(m["id"], m["parent"]) for m in models] == [("qwen3-8b", None), ("summarise", "qwen3-8b")]
    assert client.get("/health").status_code == 200
    assert client.get("/version").json()["version"]
    state = client.get("/v1/emulator").json()
    assert state["kv_bytes_per_token"] == 147_456 and state["max_model_len"] == 4096


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "NotFoundError"),
        ({"model": "qwen3-8b", "messages": []}, 400, "BadRequestError"),
        ({"model": "qwen3-8b", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "BadRequestError"),
        (
            {"model": "qwen3-8b", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5000},
            413,
            "BadRequestError",
        ),
    ],
)
def test_errors_have_openai_shape(client, body, status, kind):
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["type"] == kind and error["code"] == status and error["message"]


def test_invalid_json_is_a_400(client):
    r = client.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequestError"


def test_metrics_and_kv_events_follow_the_requests(client):
    before = client.get("/v1/kv_events").json()["last_seq"]
    client.post("/v1/completions", json={"prompt": "kv events please " * 30, "max_tokens": 2})
    page = client.get("/v1/kv_events", params={"since": before, "timeout": 5}).json()
    stored = [e for b in page["batches"] for e in b["events"] if e["type"] == "BlockStored"]
    assert stored and all(b["seq"] > before for b in page["batches"])
    first = stored[0]
    assert len(first["token_ids"]) == 16 * len(first["block_hashes"])
    assert all(0 <= h <= MASK64 for h in first["block_hashes"])
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "vllm:prompt_tokens_total" in metrics.text and "vllm:prefix_cache_hits_total" in metrics.text


def test_a_client_that_goes_away_aborts_its_request(client):
    def aborted() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("vllm:request_success_total") and 'finished_reason="abort"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    start = aborted()
    body = {"prompt": "never mind", "max_tokens": 4000, "ignore_eos": True, "stream": True}
    with client.stream("POST", "/v1/completions", json=body) as r:
        for _ in r.iter_lines():
            break
    deadline = time.monotonic() + 10
    while aborted() == start and time.monotonic() < deadline:
        time.sleep(0.05)
    assert aborted() == start + 1


def test_a_full_queue_answers_429():
    app = create_app(build_driver("H100-80GB", "smollm2-135m", EngineConfig(), speed=100.0, max_queue_len=0))
    with ServerThread(app) as s, httpx.Client(base_url=s.url) as c:
        r = c.post("/v1/completions", json={"prompt": "hello"})
    assert r.status_code == 429 and r.json()["error"]["type"] == "RateLimitError"


def test_served_model_name_is_what_clients_and_metrics_use():
    driver = build_driver("H100-80GB", "smollm2-135m", EngineConfig(), speed=1000.0, served_model_name="tiny")
    with ServerThread(create_app(driver)) as s, httpx.Client(base_url=s.url, timeout=20) as c:
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["tiny"]
        assert c.post("/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2}).status_code == 200
        assert (
            c.post("/v1/completions", json={"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "prompt": "x"}).status_code
            == 200
        )
        assert 'vllm:prompt_tokens_total{engine="0",model_name="tiny"}' in c.get("/metrics").text
