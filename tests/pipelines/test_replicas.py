"""The replicas' load, scraped while a pipeline summarizes."""

from __future__ import annotations

import time

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from flotilla.pipelines.replicas import ReplicaSampler, gauges
from flotilla.runs import ReplicaSample
from tests.gateway.builders import ServerThread

EXPOSITION = """# HELP vllm:num_requests_waiting Requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_running{engine="1",model_name="m"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
# TYPE other_metric counter
other_metric_total 7.0
"""


def test_the_three_gauges_are_read_and_summed_over_engines() -> None:
    assert gauges(EXPOSITION) == {"waiting": 3.0, "running": 3.0, "kv_cache_usage": 0.25}
    assert gauges("") == {"waiting": 0.0, "running": 0.0, "kv_cache_usage": 0.0}


def test_the_sampler_records_answering_replicas_and_skips_the_others() -> None:
    app = FastAPI()
    app.get("/metrics", response_class=PlainTextResponse)(lambda: EXPOSITION)
    recorded: list[ReplicaSample] = []
    with ServerThread(app) as server:
        sampler = ReplicaSampler(lambda: [server.address, "127.0.0.1:9"], recorded.extend, time.monotonic, 0.05)
        with httpx.Client(timeout=1.0) as client:
            (sample,) = sampler.sample(client)
        assert sample.endpoint == server.address and (sample.waiting, sample.running) == (3.0, 3.0)
        sampler.start()
        deadline = time.monotonic() + 5
        while len(recorded) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        sampler.stop()
    assert len(recorded) >= 3 and {r.endpoint for r in recorded} == {server.address}
