"""The front without llama.cpp: readiness with a fake engine, llama.cpp's errors through a MockTransport."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from flotilla.server.runner import free_port
from flotilla.serving.llm.app import FrontState, create_app
from flotilla.serving.llm.engine import EngineError
from flotilla.serving.llm.server import LlmServer, LlmServerConfig
from flotilla.serving.vllm_metrics import VllmMetrics

UPSTREAM = "http://engine.invalid"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class GatedEngine:
    """Loads when the test opens the gate; answers at an address where nothing listens."""

    def __init__(self, fail: str | None = None) -> None:
        self.gate = threading.Event()
        self.fail = fail
        self.stopped = False

    def start(self) -> str:
        assert self.gate.wait(30)
        if self.fail:
            raise EngineError(self.fail)
        return "http://127.0.0.1:9"

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def gated() -> Iterator[tuple[LlmServer, GatedEngine]]:
    engine = GatedEngine()
    server = LlmServer(LlmServerConfig(model="m", port=free_port()), engine=engine).start_in_thread()
    try:
        yield server, engine
    finally:
        engine.gate.set()
        server.stop()


def assert_error(response: httpx.Response, status: int, code: str | None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    return str(error["message"])


def test_not_ready_until_the_model_is_loaded(gated: tuple[LlmServer, GatedEngine]) -> None:
    server, engine = gated
    assert "loading" in assert_error(httpx.get(f"{server.url}/health"), 503, "model_not_ready")
    assert_error(httpx.post(f"{server.url}/v1/chat/completions", json=CHAT), 503, "model_not_ready")
    assert_error(httpx.get(f"{server.url}/v1/models"), 503, "model_not_ready")
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200 and 'vllm:num_requests_running{engine="0",model_name="m"} 0.0' in metrics.text
    engine.gate.set()
    server.wait_ready(10)
    assert httpx.get(f"{server.url}/health").status_code == 200
    # The engine "died" (nothing listens at its address): 503, not a hang or a 500.
    assert "unavailable" in assert_error(
        httpx.post(f"{server.url}/v1/chat/completions", json=CHAT), 503, "model_not_ready"
    )
    server.stop()
    assert engine.stopped


def test_a_model_that_fails_to_load_is_reported() -> None:
    engine = GatedEngine(fail="llama.cpp could not load x.gguf")
    engine.gate.set()
    server = LlmServer(LlmServerConfig(model="m", port=free_port()), engine=engine).start_in_thread()
    try:
        with pytest.raises(EngineError, match="could not load"):
            server.wait_ready(10)
        assert "could not load" in assert_error(httpx.get(f"{server.url}/health"), 503, "model_not_ready")
    finally:
        server.stop()


def upstream_answering(status: int, body: bytes) -> TestClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    state = FrontState(served_name="m", kv_capacity=1024, metrics=VllmMetrics("m"), upstream=UPSTREAM)
    return TestClient(create_app(state, transport=httpx.MockTransport(handler)))


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "code"),
    [
        (
            400,
            b'{"error":{"code":400,"message":"request (3001 tokens) exceeds the available context size (1024 tokens)",'
            b'"type":"exceed_context_size_error","n_prompt_tokens":3001,"n_ctx":1024}}',
            413,
            "context_length_exceeded",
        ),
        (400, b'{"error":{"code":400,"message":"bad","type":"invalid_request_error"}}', 400, "invalid_request_error"),
        (500, b'{"error":{"code":500,"message":"boom","type":"server_error"}}', 500, None),
        (502, b"not json", 502, None),
    ],
)
def test_llamacpp_errors_become_openai_errors(status: int, body: bytes, expected_status: int, code: str | None) -> None:
    with upstream_answering(status, body) as client:
        assert assert_error(client.post("/v1/chat/completions", json=CHAT), expected_status, code)


def test_request_checks_before_forwarding() -> None:
    with upstream_answering(500, b"never called") as client:
        assert_error(client.post("/v1/chat/completions", json={**CHAT, "model": "other"}), 404, "model_not_found")
        assert_error(client.post("/v1/chat/completions", json={**CHAT, "stream": "yes"}), 400, None)
        assert_error(client.post("/v1/completions", content=b"\xff"), 400, "invalid_json")


def test_a_body_over_the_limit_is_413() -> None:
    state = FrontState(
        served_name="m", kv_capacity=1024, metrics=VllmMetrics("m"), upstream=UPSTREAM, max_body_bytes=100
    )
    with TestClient(create_app(state)) as client:
        assert_error(client.post("/v1/completions", json={"prompt": "x" * 200}), 413, "request_too_large")
