"""llama.cpp -> vLLM metric translation: engine gauges, per-request usage, SSE parsing, the request observer."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.serving.llm.translate import (
    EngineState,
    RequestObserver,
    RequestUsage,
    SseSplitter,
    engine_state,
    parse_exposition,
    slot_tokens,
    usage_of,
)
from flotilla.serving.vllm_metrics import VllmMetrics

LLAMACPP_METRICS = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 33
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 3
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
"""


def busy(prompt: int, processed: int, cached: int, decoded: int) -> dict[str, object]:
    return {
        "id": 0,
        "n_ctx": 2048,
        "is_processing": True,
        "n_prompt_tokens": prompt,
        "n_prompt_tokens_processed": processed,
        "n_prompt_tokens_cache": cached,
        "next_token": [{"n_decoded": decoded}],
    }


IDLE = {"id": 1, "n_ctx": 2048, "speculative": False, "is_processing": False}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def samples(metrics: VllmMetrics) -> dict[str, float]:
    """Sample name (with finished_reason where present) -> value."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            key = s.name + (f"[{s.labels['finished_reason']}]" if "finished_reason" in s.labels else "")
            out[key] = float(s.value)
    return out


def test_parse_exposition_keeps_unlabelled_samples() -> None:
    parsed = parse_exposition(LLAMACPP_METRICS)
    assert parsed == {
        "llamacpp:prompt_tokens_total": 33.0,
        "llamacpp:requests_processing": 3.0,
        "llamacpp:requests_deferred": 2.0,
    }


@pytest.mark.parametrize(
    ("slot", "tokens"),
    [
        (IDLE, 0),
        (busy(prompt=47, processed=9, cached=0, decoded=39), 48),  # this llama.cpp: n_prompt_tokens grows as it decodes
        (busy(prompt=9, processed=5, cached=4, decoded=20), 29),  # a version reporting the prompt alone
        ({"is_processing": True}, 0),
    ],
)
def test_slot_tokens(slot: dict[str, object], tokens: int) -> None:
    assert slot_tokens(slot) == tokens


@pytest.mark.parametrize(
    ("metrics", "slots", "expected"),
    [
        (
            parse_exposition(LLAMACPP_METRICS),
            [IDLE, busy(100, 100, 0, 0), busy(200, 50, 150, 0)],
            EngineState(3, 2, 0.25),
        ),
        ({}, [], EngineState(0, 0, 0.0)),
        ({"llamacpp:kv_cache_usage_ratio": 0.7}, [busy(10, 10, 0, 0)], EngineState(0, 0, 0.7)),
        ({}, [busy(5000, 5000, 0, 0)], EngineState(0, 0, 1.0)),  # clamped
    ],
)
def test_engine_state(metrics: dict[str, float], slots: list[dict[str, object]], expected: EngineState) -> None:
    assert engine_state(metrics, slots, kv_capacity=1200) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "usage": {"prompt_tokens": 33, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 32}},
                "timings": {"cache_n": 32, "prompt_n": 1, "prompt_ms": 7.0, "predicted_n": 4, "predicted_ms": 21.0},
            },
            RequestUsage(33, 4, 32, 0.007, 0.021),
        ),
        (  # a stream without include_usage: llama.cpp's last chunk has timings only
            {"timings": {"cache_n": 24, "prompt_n": 9, "prompt_ms": 30.0, "predicted_n": 8, "predicted_ms": 49.0}},
            RequestUsage(33, 8, 24, 0.030, 0.049),
        ),
        ({"usage": {"prompt_tokens": 5, "completion_tokens": 2}}, RequestUsage(5, 2, 0, 0.0, 0.0)),
        ({"choices": []}, None),
    ],
)
def test_usage_of(body: dict[str, object], expected: RequestUsage | None) -> None:
    assert usage_of(body) == expected


def test_sse_splitter_joins_events_split_across_chunks() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b'data: {"a"') == []
    assert splitter.feed(b": 1}\n\ndata: [DO") == ['{"a": 1}']
    assert splitter.feed(b"NE]\r\n\r\n: comment\n") == ["[DONE]"]


def chunk(content: str | None = None, finish: str | None = None, **extra: object) -> str:
    delta = {} if content is None else {"content": content}
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


def test_streaming_observer_measures_ttft_and_inter_token_latency() -> None:
    clock, metrics = FakeClock(), VllmMetrics("m")
    observer = RequestObserver(metrics, clock)
    observer.on_event(json.dumps({"choices": [{"delta": {"role": "assistant", "content": None}}]}), 100.1)
    for at, text in ((100.25, "Hel"), (100.30, "lo"), (100.40, "!")):
        observer.on_event(chunk(text), at)
    timings = {"cache_n": 10, "prompt_n": 20, "prompt_ms": 200.0, "predicted_n": 3, "predicted_ms": 150.0}
    observer.on_event(chunk(None, "stop", timings=timings), 100.41)
    observer.on_event("[DONE]", 100.41)
    clock.now = 100.5
    observer.finish(aborted=not observer.complete)
    got = samples(metrics)
    assert got["vllm:time_to_first_token_seconds_sum"] == pytest.approx(0.25)
    assert got["vllm:inter_token_latency_seconds_count"] == 2
    assert got["vllm:inter_token_latency_seconds_sum"] == pytest.approx(0.15)
    assert got["vllm:e2e_request_latency_seconds_sum"] == pytest.approx(0.5)
    assert got["vllm:request_queue_time_seconds_sum"] == pytest.approx(0.05)  # TTFT - prefill
    assert got["vllm:request_prefill_time_seconds_sum"] == pytest.approx(0.2)
    assert got["vllm:request_decode_time_seconds_sum"] == pytest.approx(0.15)
    assert got["vllm:time_per_output_token_seconds_sum"] == pytest.approx(0.075)
    assert got["vllm:prompt_tokens_total"] == 30
    assert got["vllm:generation_tokens_total"] == 3
    assert got["vllm:prefix_cache_queries_total"] == 30
    assert got["vllm:prefix_cache_hits_total"] == 10
    assert got["vllm:request_success_total[stop]"] == 1


def test_non_streaming_ttft_is_e2e_minus_generation_time_and_finish_records_once() -> None:
    clock, metrics = FakeClock(), VllmMetrics("m")
    observer = RequestObserver(metrics, clock)
    clock.now = 101.0
    observer.on_body(
        {
            "choices": [{"finish_reason": "length", "message": {"content": "x"}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 8},
            "timings": {"prompt_n": 12, "prompt_ms": 100.0, "predicted_n": 8, "predicted_ms": 600.0},
        }
    )
    observer.finish()
    observer.finish()
    got = samples(metrics)
    assert got["vllm:time_to_first_token_seconds_sum"] == pytest.approx(0.4)
    assert got["vllm:time_to_first_token_seconds_count"] == 1
    assert got["vllm:inter_token_latency_seconds_count"] == 0
    assert got["vllm:request_success_total[length]"] == 1


def test_a_stream_cut_short_is_an_abort() -> None:
    metrics = VllmMetrics("m")
    observer = RequestObserver(metrics, FakeClock())
    observer.on_event(chunk("Hi"), 100.1)
    observer.finish(aborted=not observer.complete)
    assert samples(metrics)["vllm:request_success_total[abort]"] == 1
