"""The front door over fake vLLM servers: routing, sessions, streaming, every error, retries,
disconnects and the metrics it exposes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.gateway.endpoints import Objective, StaticEndpoints
from flotilla.gateway.policy import default_scheduling
from flotilla.gateway.scheduling.types import OBJECTIVE_HEADER, SERVED_HEADER, SESSION_HEADER

from .builders import MODEL, DyingServer, FakeVllm, chat, pool, running_gateway, serving, topology

CHAT = "/v1/chat/completions"
STICKY_PROFILE = """
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: healthy-filter
- type: queue-scorer
- type: session-affinity-scorer
- type: max-score-picker
schedulingProfiles:
- name: sticky
  plugins:
  - pluginRef: healthy-filter
  - pluginRef: queue-scorer
    weight: 1
  - pluginRef: session-affinity-scorer
    weight: 10
  - pluginRef: max-score-picker
"""


def post(url: str, body: object, headers: dict[str, str] | None = None, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(f"{url}{CHAT}", json=body, headers=headers, timeout=timeout)


def wait_for(event: threading.Event, timeout: float = 3.0) -> bool:
    return event.wait(timeout)


def test_the_endpoint_with_the_shortest_queue_wins() -> None:
    with (
        serving(FakeVllm("a", waiting=4), FakeVllm("b", waiting=0), FakeVllm("c", waiting=2)) as (a, b, c),
        running_gateway(StaticEndpoints([a.url, b.url, c.url]), fresh=3) as gw,
    ):
        for i in range(5):
            r = post(gw.url, chat(content=f"q{i}"))
            assert r.status_code == 200
            assert r.json()["served_by"] == "b"
            assert r.headers[SERVED_HEADER] == b.address == r.json()["destination"]
        b.waiting, a.waiting = 6, 0
        gw.wait_scrape()
        assert post(gw.url, chat(content="next")).json()["served_by"] == "a"


def test_a_session_sticks_to_the_endpoint_that_served_it(tmp_path: Path) -> None:
    profile = tmp_path / "sticky.yaml"
    profile.write_text(STICKY_PROFILE)
    scheduling = default_scheduling(profile)
    with (
        serving(FakeVllm("a", waiting=0), FakeVllm("b", waiting=3)) as (a, b),
        running_gateway(StaticEndpoints([a.url, b.url]), scheduling, fresh=2, profile="sticky") as gw,
    ):
        assert post(gw.url, chat(), {SESSION_HEADER: "s1"}).json()["served_by"] == "a"
        a.waiting, b.waiting = 3, 0
        gw.wait_scrape()
        assert post(gw.url, chat(), {SESSION_HEADER: "s1"}).json()["served_by"] == "a"
        assert post(gw.url, chat(), {SESSION_HEADER: "s2"}).json()["served_by"] == "b"
        assert post(gw.url, chat()).json()["served_by"] == "b"


def test_streams_pass_through_chunk_by_chunk() -> None:
    gate = threading.Event()
    with (
        serving(FakeVllm("a", chunks=4, gate=gate)) as (a,),
        running_gateway(StaticEndpoints([a.url]), fresh=1) as gw,
    ):
        body = chat(stream=True, stream_options={"include_usage": True})
        with httpx.stream("POST", f"{gw.url}{CHAT}", json=body, timeout=3) as r:
            assert r.status_code == 200 and r.headers[SERVED_HEADER] == a.address
            chunks = r.iter_raw()
            first = next(chunks)
            assert b"t0" in first and not a.finished.is_set()  # the upstream is still held at its gate
            gate.set()
            rest = b"".join(chunks)
        assert b"t3" in rest and rest.endswith(b"data: [DONE]\n\n")
        metrics = gw.scrape_metrics()
        assert (
            'inference_objective_output_tokens_sum{model_name="fake-model",target_model_name="fake-model"} 4.0'
            in metrics
        )


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', 400, "model"),
        (b'{"model": "fake-model"}', 400, "messages"),
        (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}', 404, "model"),
    ],
)
def test_bad_requests_get_openai_errors(content: bytes, status: int, param: str | None, gateway_url: str) -> None:
    r = httpx.post(f"{gateway_url}{CHAT}", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == (param, status)


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    with serving(FakeVllm("a")) as (a,), running_gateway(StaticEndpoints([a.url]), fresh=1, max_body_bytes=2048) as gw:
        yield gw.url


def test_unknown_paths_and_oversized_bodies(gateway_url: str) -> None:
    r = httpx.get(f"{gateway_url}/v2/anything")
    assert r.status_code == 404 and "no route" in r.json()["error"]["message"]
    big = chat(content="x" * 4096)
    assert httpx.post(f"{gateway_url}{CHAT}", json=big).status_code == 413  # Content-Length says so

    def chunked() -> Iterator[bytes]:
        yield b'{"model": "fake-model", "messages": [{"role": "user", "content": "'
        yield b"x" * 4096
        yield b'"}]}'

    r = httpx.post(f"{gateway_url}{CHAT}", content=chunked())  # no Content-Length: counted while reading
    assert r.status_code == 413 and r.json()["error"]["type"] == "BadRequestError"
    assert httpx.get(f"{gateway_url}/v1/models").json()["data"][0]["id"] == MODEL
    assert httpx.get(f"{gateway_url}/health").json()["fresh_endpoints"] == 1


def test_flow_control_queues_while_saturated_and_sheds_sheddable_requests() -> None:
    with serving(FakeVllm("a", waiting=9)) as (a,):
        objectives = (Objective("batch", "ml", -1, "ml/chat"), Objective("chat", "ml", 1, "ml/chat"))
        source = topology(pool("ml/chat", a, models={MODEL}), objectives=objectives)
        with running_gateway(source, default_scheduling(max_wait_seconds=5), fresh=1) as gw:
            shed = post(gw.url, chat(), {OBJECTIVE_HEADER: "batch"})
            assert shed.status_code == 429 and shed.headers["retry-after"] == "1"
            assert shed.json()["error"]["type"] == "RateLimitError"
            answers: list[httpx.Response] = []
            waiter = threading.Thread(target=lambda: answers.append(post(gw.url, chat(), {OBJECTIVE_HEADER: "chat"})))
            waiter.start()
            time.sleep(0.3)
            assert not answers and a.served() == 0  # queued in the gateway while the pool is saturated
            a.waiting = 0
            waiter.join(5)
            assert answers[0].status_code == 200 and a.served() == 1


def test_no_ready_endpoint_is_503_and_a_slow_one_is_504() -> None:
    with serving(FakeVllm("slow", delay=5.0), FakeVllm("trickle", chunks=100, chunk_delay=0.05)) as (slow, trickle):
        source = topology(
            pool("ml/dead", addresses=("127.0.0.1:9",), models={"dead-model"}),
            pool("ml/slow", slow, models={MODEL}),
            pool("ml/trickle", trickle, models={"trickle"}),
        )
        with running_gateway(source, fresh=2, request_timeout=0.4) as gw:
            r = post(gw.url, chat(model="dead-model"))
            assert r.status_code == 503 and r.json()["error"]["type"] == "ServiceUnavailableError"
            started = time.monotonic()
            r = post(gw.url, chat())
            assert r.status_code == 504 and time.monotonic() - started < 2
            assert wait_for(slow.cancelled)  # the gateway hung up on the model server
            with pytest.raises(httpx.RemoteProtocolError):  # past the timeout mid-stream: the stream is cut
                post(gw.url, chat(model="trickle", stream=True))
            assert wait_for(trickle.cancelled) and not trickle.finished.is_set()
            metrics = gw.scrape_metrics()
        assert 'error_code="504",model_name="fake-model"' in metrics
        assert 'error_code="504",model_name="trickle"' in metrics


def test_an_endpoint_that_dies_before_answering_is_retried_once_on_the_next() -> None:
    with (
        DyingServer() as dying,
        serving(FakeVllm("b", waiting=3)) as (b,),
        running_gateway(StaticEndpoints([f"http://{dying.address}", b.url]), fresh=2) as gw,
    ):
        r = post(gw.url, chat())
        assert r.status_code == 200 and r.json()["served_by"] == "b"
        assert r.headers[SERVED_HEADER] == b.address
        assert dying.dropped == 1
        assert "flotilla_gateway_retries_total 1.0" in gw.scrape_metrics()


def test_a_lone_endpoint_that_dies_gives_503() -> None:
    with DyingServer() as dying, running_gateway(StaticEndpoints([f"http://{dying.address}"]), fresh=1) as gw:
        r = post(gw.url, chat())
        assert r.status_code == 503 and "failed before answering" in r.json()["error"]["message"]


def test_a_client_that_disconnects_cancels_the_upstream_request() -> None:
    with serving(FakeVllm("stream", chunks=500, chunk_delay=0.01), FakeVllm("held", delay=5.0)) as (stream, held):
        source = topology(pool("ml/a", stream, models={"streamer"}), pool("ml/b", held, models={MODEL}))
        with running_gateway(source, fresh=2) as gw:
            with httpx.stream("POST", f"{gw.url}{CHAT}", json=chat(model="streamer", stream=True)) as r:
                chunks = r.iter_raw()
                next(chunks), next(chunks)
            assert wait_for(stream.cancelled) and not stream.finished.is_set()  # mid-stream
            with pytest.raises(httpx.ReadTimeout):
                post(gw.url, chat(), timeout=0.3)
            assert wait_for(held.cancelled)  # before the first byte


def test_metrics_use_gaie_names() -> None:
    with (
        serving(FakeVllm("a", waiting=2, kv=0.5), FakeVllm("b", waiting=4, kv=0.25)) as (a, b),
        running_gateway(topology(pool("ml/chat", a, b, models={MODEL})), fresh=2) as gw,
    ):
        assert post(gw.url, chat()).status_code == 200
        assert post(gw.url, chat(model="nope")).status_code == 404
        families = {f.name: f for f in text_string_to_metric_families(gw.scrape_metrics())}
    for name in (
        "inference_objective_request",
        "inference_objective_request_error",
        "inference_objective_request_duration_seconds",
        "inference_objective_input_tokens",
        "inference_objective_output_tokens",
        "inference_objective_normalized_time_per_output_token_seconds",
        "inference_pool_average_kv_cache_utilization",
        "inference_pool_average_queue_size",
        "inference_pool_ready_pods",
        "flotilla_gateway_ttft_seconds",
        "flotilla_gateway_scheduling_duration_seconds",
    ):
        assert name in families, name

    def value(family: str, sample: str, **labels: str) -> float:
        return next(
            s.value for s in families[family].samples if s.name == sample and labels.items() <= s.labels.items()
        )

    assert value("inference_pool_ready_pods", "inference_pool_ready_pods", name="ml/chat") == 2
    assert value("inference_pool_average_queue_size", "inference_pool_average_queue_size", name="ml/chat") == 3
    assert value("inference_pool_average_kv_cache_utilization", "inference_pool_average_kv_cache_utilization") == 0.375
    assert value("inference_objective_request", "inference_objective_request_total", model_name=MODEL) == 1
    errors = "inference_objective_request_error_total"
    assert value("inference_objective_request_error", errors, model_name="nope", error_code="404") == 1
    tokens = "inference_objective_input_tokens_sum"
    assert value("inference_objective_input_tokens", tokens, target_model_name=MODEL) == 7
