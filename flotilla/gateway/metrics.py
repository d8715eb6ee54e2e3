"""The gateway's Prometheus metrics: GAIE's EPP names (so GAIE dashboards work) plus Flotilla's own.

GAIE (pkg/epp/metrics), labels `model_name` (what the client asked for) and `target_model_name`
(what was sent upstream; the same here, the gateway rewrites no model names):

    inference_objective_request_total                            counter
    inference_objective_request_error_total                      counter (+ error_code)
    inference_objective_request_duration_seconds                 histogram, arrival to last byte
    inference_objective_input_tokens / _output_tokens            histograms, from the response's usage
    inference_objective_normalized_time_per_output_token_seconds histogram, duration / output tokens
    inference_objective_running_requests                         gauge (model_name)
    inference_pool_average_kv_cache_utilization                  gauge (name), over fresh endpoints
    inference_pool_average_queue_size                            gauge (name), over fresh endpoints
    inference_pool_ready_pods                                    gauge (name)

Flotilla's:

    flotilla_gateway_ttft_seconds                  histogram: arrival to the first response byte from
                                                   the model server (streaming: the first chunk)
    flotilla_gateway_scheduling_duration_seconds   histogram: one pick by the profile (profile)
    flotilla_gateway_flow_control_wait_seconds     histogram: time queued in flow control
    flotilla_gateway_retries_total                 counter: second attempts after a failed endpoint
    flotilla_gateway_picker_failures_total         counter (failure_mode): picks that raised
    flotilla_gateway_endpoint_in_flight            gauge (endpoint): requests the gateway has open there

`UsageTracker` reads the token counts on the way through: the `usage` object of a JSON body or of an
SSE chunk (stream_options.include_usage); without one, the number of SSE chunks that carry choices
(vLLM streams one token per chunk) stands in for the output tokens.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from flotilla.gateway.endpoints import Pool
from flotilla.gateway.scheduling.types import EndpointMetrics

MODEL_LABELS = ("model_name", "target_model_name")
DURATION_BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120,
    180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
)  # fmt: skip
INPUT_TOKEN_BUCKETS = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072, 262144, 524288, 1048576,
)  # fmt: skip
OUTPUT_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
NTPOT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SCHEDULER_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)
MAX_JSON_BODY = 4 * 1024 * 1024  # bytes of a non-streamed body kept to read its usage


MAX_CACHED_MODELS = 1024  # model names whose children are kept (clients choose names: bounded)


@dataclass(frozen=True)
class ModelSeries:
    """The children of the per-model series, for one model name."""

    requests: Counter
    running: Gauge
    ttft: Histogram
    duration: Histogram
    input_tokens: Histogram
    output_tokens: Histogram
    ntpot: Histogram


class GatewayMetrics:
    """The gateway's series, in a registry of their own (several gateways can live in one process)."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series, as GAIE's Go client
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "inference_objective_request_total",
            "Counter of inference objective requests broken out for each model and target model.",
            MODEL_LABELS,
            registry=r,
        )
        self.errors = Counter(
            "inference_objective_request_error_total",
            "Counter of inference objective requests errors broken out for each model and target model.",
            (*MODEL_LABELS, "error_code"),
            registry=r,
        )
        self.duration = Histogram(
            "inference_objective_request_duration_seconds",
            "Inference objective response latency distribution in seconds for each model and target model.",
            MODEL_LABELS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.input_tokens = Histogram(
            "inference_objective_input_tokens",
            "Inference objective input token count distribution for requests in each model.",
            MODEL_LABELS,
            buckets=INPUT_TOKEN_BUCKETS,
            registry=r,
        )
        self.output_tokens = Histogram(
            "inference_objective_output_tokens",
            "Inference objective output token count distribution for requests in each model.",
            MODEL_LABELS,
            buckets=OUTPUT_TOKEN_BUCKETS,
            registry=r,
        )
        self.ntpot = Histogram(
            "inference_objective_normalized_time_per_output_token_seconds",
            "Inference objective latency divided by number of output tokens in seconds "
            "for each model and target model.",
            MODEL_LABELS,
            buckets=NTPOT_BUCKETS,
            registry=r,
        )
        self.running = Gauge(
            "inference_objective_running_requests",
            "Inference objective number of running requests in each model.",
            ("model_name",),
            registry=r,
        )
        self.pool_kv = Gauge(
            "inference_pool_average_kv_cache_utilization",
            "The average kv cache utilization for an inference server pool.",
            ("name",),
            registry=r,
        )
        self.pool_queue = Gauge(
            "inference_pool_average_queue_size",
            "The average number of requests pending in the model server queue.",
            ("name",),
            registry=r,
        )
        self.pool_ready = Gauge(
            "inference_pool_ready_pods", "The number of ready pods in the inference server pool.", ("name",), registry=r
        )
        self.ttft = Histogram(
            "flotilla_gateway_ttft_seconds",
            "Arrival at the gateway to the first response byte from the model server.",
            MODEL_LABELS,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.scheduling = Histogram(
            "flotilla_gateway_scheduling_duration_seconds",
            "One pick by the scheduling profile, in seconds.",
            ("profile",),
            buckets=SCHEDULER_BUCKETS,
            registry=r,
        )
        self.flow_wait = Histogram(
            "flotilla_gateway_flow_control_wait_seconds",
            "Time a request waited in flow control before it was dispatched.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "flotilla_gateway_retries", "Requests sent to a fallback endpoint after the first failed.", registry=r
        )
        self.picker_failures = Counter(
            "flotilla_gateway_picker_failures",
            "Picks that failed (the picker raised or was unavailable), by the pool's failure mode.",
            ("failure_mode",),
            registry=r,
        )
        self.in_flight = Gauge(
            "flotilla_gateway_endpoint_in_flight",
            "Requests the gateway has open at each endpoint.",
            ("endpoint",),
            registry=r,
        )
        self._series: dict[str, ModelSeries] = {}

    def model(self, name: str) -> ModelSeries:
        """The per-model series of `name` (children looked up once per model, not per request)."""
        series = self._series.get(name)
        if series is None:
            if len(self._series) >= MAX_CACHED_MODELS:
                self._series.clear()
            labels = (name, name)
            series = self._series[name] = ModelSeries(
                self.requests.labels(*labels),
                self.running.labels(name),
                self.ttft.labels(*labels),
                self.duration.labels(*labels),
                self.input_tokens.labels(*labels),
                self.output_tokens.labels(*labels),
                self.ntpot.labels(*labels),
            )
        return series

    def observe_pools(
        self,
        pools: Iterable[Pool],
        metrics_of: Callable[[str], EndpointMetrics],
        in_flight_of: Callable[[str], int],
    ) -> None:
        """Refresh the pool and endpoint gauges (called before each exposition)."""
        self.pool_kv.clear()
        self.pool_queue.clear()
        self.pool_ready.clear()
        self.in_flight.clear()
        for pool in pools:
            fresh = [m for m in (metrics_of(e.address) for e in pool.endpoints) if m.fresh]
            self.pool_ready.labels(pool.name).set(len(pool.endpoints))
            self.pool_kv.labels(pool.name).set(sum(m.kv_usage for m in fresh) / len(fresh) if fresh else 0.0)
            self.pool_queue.labels(pool.name).set(sum(m.waiting for m in fresh) / len(fresh) if fresh else 0.0)
            for e in pool.endpoints:
                self.in_flight.labels(e.address).set(in_flight_of(e.address))

    def finished(
        self,
        model: str,
        status: int,
        failure_code: str,
        completed: bool,
        *,
        elapsed: float,
        ttft: float | None,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        """Record a request whose response was passed through: an error when the model server answered
        >= 400 (its status) or the response did not complete (`failure_code`: 499 the client left,
        504 timed out, 502 the upstream broke), else duration, tokens and NTPOT."""
        series = self.model(model)
        if ttft is not None:
            series.ttft.observe(ttft)
        if status >= 400 or not completed:
            self.errors.labels(model, model, str(status) if status >= 400 else failure_code).inc()
            return
        series.duration.observe(elapsed)
        if input_tokens:
            series.input_tokens.observe(input_tokens)
        if output_tokens:
            series.output_tokens.observe(output_tokens)
            series.ntpot.observe(elapsed / output_tokens)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class UsageTracker:
    """Token counts read from a response as it passes (see the module docstring)."""

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.chunks = 0
        self.size = 0
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if not self.sse:
            if len(self._buffer) + len(chunk) <= MAX_JSON_BODY:
                self._buffer += chunk
            return
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return
            event = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            self._event(event)

    def _event(self, event: bytes) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if b'"usage"' in data:
                with contextlib.suppress(ValueError):
                    self._usage(json.loads(data))
            if b'"choices":[{' in data.replace(b" ", b""):
                self.chunks += 1

    def _usage(self, body: Any) -> None:
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or self.prompt_tokens)
            self.completion_tokens = int(usage.get("completion_tokens") or self.completion_tokens)

    def finish(self) -> None:
        if not self.sse and self._buffer:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                self._usage(json.loads(self._buffer))

    @property
    def output_tokens(self) -> int:
        return self.completion_tokens or self.chunks
