"""Real Envoy on loopback with Flotilla's picker over ext_proc, in front of two fake model servers.

What a user relies on: the request reaches the endpoint the picker chose, with its body; the picker
sees the body; the served endpoint comes back in a header; SSE streams arrive chunk by chunk; the
picker's rejections reach the client as they are; Envoy's failure modes (FailOpen: the fallback
endpoints, FailClose: 503); limits answered by Envoy (413, 504) in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.gateway.envoy import (
    DESTINATION_HEADER,
    SERVED_HEADER,
    EnvoyConfig,
    EnvoyProcess,
    PickDecision,
    start_envoy,
)

from .harness import GATE_HEADER, GATE_WAIT_S, Gates, PickerThread, RecordingPicker, Upstream

CHAT = "/v1/chat/completions"
BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def envoy(envoy_binary: Path, picker_thread: PickerThread) -> Iterator[EnvoyProcess]:
    """FailClose, a small body limit and a short route timeout, to see both answered."""
    config = EnvoyConfig(
        picker_address=picker_thread.address,
        failure_mode="FailClose",
        max_request_body_bytes=BODY_LIMIT,
        request_timeout_s=1.0,
    )
    process = start_envoy(config, binary=envoy_binary)
    yield process
    process.stop()


@pytest.fixture
def client(envoy: EnvoyProcess, picker: RecordingPicker) -> Iterator[httpx.Client]:
    picker.seen.clear()
    with httpx.Client(base_url=envoy.url, timeout=15.0, trust_env=False) as c:
        yield c


def chat(client: httpx.Client, pick: str | None = None, **payload: Any) -> httpx.Response:
    headers = {"x-pick": pick} if pick else {}
    return client.post(CHAT, json={"model": "m", "messages": [], **payload}, headers=headers)


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status
    assert error["message"]
    return error


@pytest.mark.parametrize("name", ["a", "b"])
def test_the_request_and_its_body_reach_the_picked_endpoint(
    client: httpx.Client, picker: RecordingPicker, upstreams: dict[str, Upstream], name: str
) -> None:
    sent = {"model": "m", "messages": [{"role": "user", "content": "hi " * 50}]}
    response = client.post(CHAT, json=sent, headers={"x-pick": name})

    assert response.status_code == 200
    assert response.json()["served_by"] == name
    assert json.loads(response.json()["body"]) == sent  # the upstream got the body unchanged
    [(headers, body)] = picker.seen
    assert json.loads(body) == sent  # the picker saw the whole body
    assert headers[":path"] == CHAT
    assert response.headers[SERVED_HEADER] == upstreams[name].address
    assert response.headers["x-picked-by"] == "flotilla"  # the decision's extra headers


def test_an_alternating_picker_uses_both_endpoints(client: httpx.Client) -> None:
    served = {chat(client).json()["served_by"] for _ in range(4)}
    assert served == {"a", "b"}


def test_a_client_cannot_choose_the_endpoint_itself(client: httpx.Client, picker: RecordingPicker) -> None:
    response = client.post(CHAT, json={"model": "m"}, headers={"x-pick": "a", DESTINATION_HEADER: "127.0.0.1:1"})
    assert response.json()["served_by"] == "a"
    assert DESTINATION_HEADER not in picker.seen[0][0]  # removed before any filter ran


def test_a_request_without_a_body_is_picked_too(client: httpx.Client, picker: RecordingPicker) -> None:
    response = client.get("/v1/models", headers={"x-pick": "b"})
    assert response.status_code == 404  # the fake model server has no /v1/models: it was reached
    assert picker.seen[0][1] == b""


def test_a_stream_arrives_chunk_by_chunk(client: httpx.Client, gates: Gates) -> None:
    headers = {"x-pick": "b", GATE_HEADER: "stream-1"}
    with client.stream("POST", CHAT, json={"model": "m", "stream": True}, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = response.iter_raw()
        first = next(chunks)
        # The upstream is still waiting for the gate: the first chunk came through before it finished.
        assert not gates.get("stream-1").is_set()
        assert json.loads(first.removeprefix(b"data: "))["chunk"] == 1
        gates.open("stream-1")
        rest = b"".join(chunks)
    assert b'"chunk": 2, "gate_opened": true' in rest
    assert rest.endswith(b"data: [DONE]\n\n")


def test_an_immediate_429_reaches_the_client_with_its_json_body(client: httpx.Client) -> None:
    response = chat(client, pick="reject")
    error = assert_openai_error(response, 429)
    assert error == {
        "message": "the pool is saturated; retry later",
        "type": "RateLimitError",
        "param": None,
        "code": 429,
    }
    assert response.headers["retry-after"] == "1"


def test_a_failing_picker_fails_closed_with_503(client: httpx.Client) -> None:
    assert_openai_error(chat(client, pick="fail"), 503)


def test_a_body_over_the_limit_is_refused_with_413(client: httpx.Client, picker: RecordingPicker) -> None:
    response = chat(client, pick="a", prompt="x" * (BODY_LIMIT + 1))
    error = assert_openai_error(response, 413)
    assert str(BODY_LIMIT) in error["message"]
    assert picker.seen == []


def test_an_upstream_slower_than_the_route_timeout_gives_504(client: httpx.Client, gates: Gates) -> None:
    response = client.post("/v1/wait", json={}, headers={"x-pick": "a", GATE_HEADER: "slow-1"})
    gates.open("slow-1")
    assert_openai_error(response, 504)


def test_a_path_outside_v1_is_404_without_asking_the_picker(client: httpx.Client, picker: RecordingPicker) -> None:
    assert_openai_error(client.get("/healthz"), 404)
    assert picker.seen == []


def test_fail_open_serves_through_the_fallback_endpoints_when_the_picker_is_gone(
    envoy_binary: Path, upstreams: dict[str, Upstream]
) -> None:
    picker = RecordingPicker({"a": upstreams["a"].address})
    thread = PickerThread(picker).start()
    fallback = tuple(u.address for u in upstreams.values())
    config = EnvoyConfig(picker_address=thread.address, failure_mode="FailOpen", fallback_endpoints=fallback)
    envoy = start_envoy(config, binary=envoy_binary)
    try:
        with httpx.Client(base_url=envoy.url, timeout=15.0, trust_env=False) as client:
            assert chat(client, pick="a").headers[SERVED_HEADER] == upstreams["a"].address
            thread.stop()
            answers = [chat(client, pick="a") for _ in range(4)]
            spoofed = client.post(CHAT, json={"model": "m"}, headers={DESTINATION_HEADER: "127.0.0.1:1"})
    finally:
        envoy.stop()
        thread.stop()
    assert [r.status_code for r in answers] == [200] * 4
    assert {r.json()["served_by"] for r in answers} == {"a", "b"}  # round robin over the fallback
    assert {r.headers[SERVED_HEADER] for r in answers} == set(fallback)
    assert len(picker.seen) == 1
    assert spoofed.status_code == 200  # the client's header was dropped: not sent to 127.0.0.1:1


def test_fail_close_answers_503_when_the_picker_is_unreachable(
    envoy_binary: Path, upstreams: dict[str, Upstream]
) -> None:
    thread = PickerThread(RecordingPicker({"a": upstreams["a"].address})).start()
    address = thread.address
    thread.stop()  # nothing listens there now
    envoy = start_envoy(EnvoyConfig(picker_address=address, failure_mode="FailClose"), binary=envoy_binary)
    try:
        with httpx.Client(base_url=envoy.url, timeout=15.0, trust_env=False) as client:
            response = chat(client, pick="a")
    finally:
        envoy.stop()
    assert_openai_error(response, 503)


@pytest.mark.parametrize(("mode", "status"), [("FailClose", 504), ("FailOpen", 200)])
def test_a_picker_slower_than_the_message_timeout(
    envoy_binary: Path, upstreams: dict[str, Upstream], gates: Gates, mode: str, status: int
) -> None:
    gate = gates.get(f"slow-picker-{mode}")

    async def stuck(headers: Mapping[str, str], body: bytes) -> PickDecision:
        await asyncio.to_thread(gate.wait, GATE_WAIT_S)
        return PickDecision.route(upstreams["a"].address)

    thread = PickerThread(stuck).start()
    config = EnvoyConfig(
        picker_address=thread.address,
        failure_mode=mode,
        fallback_endpoints=(upstreams["b"].address,),
        message_timeout_s=0.2,
    )
    envoy = start_envoy(config, binary=envoy_binary)
    try:
        with httpx.Client(base_url=envoy.url, timeout=15.0, trust_env=False) as client:
            response = chat(client)
    finally:
        gate.set()
        envoy.stop()
        thread.stop()
    assert response.status_code == status, response.text
    if mode == "FailOpen":
        assert response.json()["served_by"] == "b"  # the fallback, not the picker's late answer
