"""vLLM's metrics, as the emulator exposes them, equal the engine's own state and counts."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.serving.emulator.metrics import EngineMetrics, request_times

from .builders import engine, prompt


def samples(recorder: EngineMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = recorder.metrics.exposition().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("model_name", "engine")))
            out[(s.name, labels)] = s.value
    return out


def value(recorder: EngineMetrics, name: str, **labels: str) -> float:
    return samples(recorder)[(name, tuple(sorted(labels.items())))]


def busy_engine():
    """Preemptions (tiny KV), prefix hits (a shared prefix), a LoRA adapter, an abort, stop and length."""
    e = engine(num_gpu_blocks_override=40, max_model_len=512, lora_modules=("sql",), max_loras=1)
    shared = prompt(64, seed=99)
    for i in range(10):
        e.add_request(
            f"r{i}",
            shared + prompt(40, seed=i),
            arrival_time=0.002 * i,
            max_tokens=90,
            output_len=60 if i % 2 else 200,
            lora="sql" if i % 3 == 0 else None,
        )
    return e


def test_gauges_equal_the_engine_state_after_every_step():
    e = busy_engine()
    recorder = EngineMetrics(e)
    now, aborted = 0.0, False
    while e.has_unfinished_requests():
        step = e.step(now)
        now = step.end
        recorder.record(step)
        got = samples(recorder)
        assert got[("vllm:num_requests_running", ())] == e.num_running
        assert got[("vllm:num_requests_waiting", ())] == e.num_waiting
        assert got[("vllm:kv_cache_usage_perc", ())] == pytest.approx(e.kv_usage)
        running, waiting = (",".join(names) for names in e.lora_adapters_in_use())
        info = [labels for name, labels in got if name == "vllm:lora_requests_info"]
        assert info == [(("max_lora", "1"), ("running_lora_adapters", running), ("waiting_lora_adapters", waiting))]
        if not aborted and e.counters.steps == 5:
            e.abort_request("r9", now)
            aborted = True


def test_counters_and_histograms_equal_the_engine_counts():
    e = busy_engine()
    recorder = EngineMetrics(e)
    finished, now = [], 0.0
    while e.has_unfinished_requests():
        step = e.step(now)
        now = step.end
        recorder.record(step)
        finished += step.finished
        if e.counters.steps == 5:
            e.abort_request("r8", now)
    c, stats = e.counters, e.kv.stats
    assert c.preemptions > 0 and stats.hits > 0  # the workload exercises both
    assert value(recorder, "vllm:num_preemptions_total") == c.preemptions
    assert (
        value(recorder, "vllm:prompt_tokens_total")
        == c.prompt_tokens
        == sum(r.num_prompt_tokens for r in finished if r.first_token_ts is not None)
    )
    assert value(recorder, "vllm:generation_tokens_total") == c.generation_tokens
    assert value(recorder, "vllm:prefix_cache_queries_total") == stats.queries
    assert value(recorder, "vllm:prefix_cache_hits_total") == stats.hits
    for reason in ("stop", "length", "abort"):
        assert value(recorder, "vllm:request_success_total", finished_reason=reason) == c.finished[reason] > 0
    started = [r for r in finished if r.first_token_ts is not None]
    assert value(recorder, "vllm:time_to_first_token_seconds_count") == len(started)
    assert value(recorder, "vllm:time_to_first_token_seconds_sum") == pytest.approx(
        sum(r.first_token_ts - r.arrival_time for r in started)
    )
    assert value(recorder, "vllm:inter_token_latency_seconds_count") == c.generation_tokens - len(started)
    assert value(recorder, "vllm:e2e_request_latency_seconds_count") == len(finished) == 10
    assert value(recorder, "vllm:e2e_request_latency_seconds_sum") == pytest.approx(
        sum(request_times(r)["e2e"] for r in finished)
    )
    assert value(recorder, "vllm:request_queue_time_seconds_sum") == pytest.approx(
        sum(request_times(r)["queue"] for r in finished)
    )
    assert value(recorder, "vllm:request_decode_time_seconds_sum") == pytest.approx(
        sum(request_times(r)["decode"] for r in finished)
    )
    assert value(recorder, "vllm:request_generation_tokens_sum") == sum(r.num_output_tokens for r in finished)


def test_request_times_are_vllm_phases():
    e = engine()
    e.add_request("a", prompt(100), arrival_time=0.0, max_tokens=3, output_len=3)
    e.add_request("b", prompt(100, seed=1), arrival_time=0.0, max_tokens=3, output_len=3)
    now, done = 0.0, []
    while e.has_unfinished_requests():
        step = e.step(now)
        now = step.end
        done += step.finished
    r = done[0]
    t = request_times(r)
    assert t["queue"] == r.scheduled_ts - r.arrival_time
    assert t["prefill"] == r.first_token_ts - r.scheduled_ts
    assert t["decode"] == r.last_token_ts - r.first_token_ts
    assert t["e2e"] == pytest.approx(t["queue"] + t["prefill"] + t["decode"])
