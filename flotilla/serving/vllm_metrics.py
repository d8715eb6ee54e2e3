"""vLLM's Prometheus metrics contract, shared by every model server Flotilla runs.

The gateway's endpoint picker scrapes each server's `/metrics` the way GAIE / llm-d scrape vLLM,
so every server speaks vLLM's names: the llama.cpp server (its `llamacpp:*` metrics and its own
bookkeeping translated), the vLLM-compatible engine emulator (its engine state), and real vLLM
(itself). Names, types, label names and histogram buckets follow vLLM's V1 engine
(vllm/v1/metrics/loggers.py): labels `model_name` and `engine` ("0" for a single engine).

Counters are declared under vLLM's names (`vllm:prompt_tokens`, `vllm:prefix_cache_queries`, ...);
the Prometheus client library adds `_total` to their samples, as vLLM's own exposition shows
(`vllm:prefix_cache_queries_total`).

    metrics = VllmMetrics("qwen3-8b")
    metrics.running.set(3); metrics.kv_usage.set(0.42)
    metrics.ttft.observe(0.12)
    body = metrics.exposition()          # Prometheus text format
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.metrics import MetricWrapperBase

# vLLM V1's buckets (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
    1920.0, 7680.0,
)  # fmt: skip
LABELS = ("model_name", "engine")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
M = TypeVar("M", bound=MetricWrapperBase)


def token_buckets(max_model_len: int) -> tuple[float, ...]:
    """vLLM's 1-2-5 buckets up to the context length: 1, 2, 5, 10, 20, 50, ..."""
    out: list[float] = []
    magnitude = 1
    while True:
        for m in (1, 2, 5):
            value = m * magnitude
            if value > max_model_len:
                return tuple(out)
            out.append(float(value))
        magnitude *= 10


class VllmMetrics:
    """One server's vLLM metrics, bound to its model name, in a registry of their own."""

    def __init__(self, model_name: str, max_model_len: int = 8192, engine: str = "0") -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # vLLM's servers do the same: no `_created` series (process-wide)
        self.registry = CollectorRegistry()
        self.model_name = model_name
        r, labels = self.registry, LABELS
        # -- scheduler state (gauges) --
        self.running = Gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", labels, registry=r
        )
        self.waiting = Gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels, registry=r
        )
        self.kv_usage = Gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels, registry=r
        )
        # The name vLLM used before V1 (older GAIE pickers scrape it): the same value.
        self.gpu_cache_usage = Gauge(
            "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", labels, registry=r
        )
        self.lora_info = Gauge(
            "vllm:lora_requests_info",
            "Running stats on lora requests.",
            ("max_lora", "waiting_lora_adapters", "running_lora_adapters"),
            registry=r,
        )
        self.cache_config = Gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig.",
            ("block_size", "num_gpu_blocks", "enable_prefix_caching", "cache_dtype", "gpu_memory_utilization"),
            registry=r,
        )
        # -- counters --
        self.preemptions = Counter(
            "vllm:num_preemptions", "Cumulative number of preemption from the engine.", labels, registry=r
        )
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=r)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=r
        )
        self.prefix_queries = Counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            labels,
            registry=r,
        )
        self.prefix_hits = Counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", labels, registry=r
        )
        self.success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*labels, "finished_reason"),
            registry=r,
        )

        # -- per-request histograms --
        def hist(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=r)

        tokens = token_buckets(max_model_len)
        self.ttft = hist(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS
        )
        self.itl = hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS)
        self.tpot = hist(
            "vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", ITL_BUCKETS
        )
        self.e2e = hist(
            "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS
        )
        self.queue_time = hist(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.inference_time = hist(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.prefill_time = hist(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.decode_time = hist(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.request_prompt_tokens = hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokens)
        self.request_generation_tokens = hist(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", tokens
        )
        self._labels = (model_name, engine)
        for metric in (
            self.running, self.waiting, self.kv_usage, self.gpu_cache_usage, self.preemptions, self.prompt_tokens,
            self.generation_tokens, self.prefix_queries, self.prefix_hits, self.ttft, self.itl, self.tpot,
            self.e2e, self.queue_time, self.inference_time, self.prefill_time, self.decode_time,
            self.request_prompt_tokens, self.request_generation_tokens,
        ):  # fmt: skip
            metric.labels(*self._labels)  # every series exists from the first scrape, as in vLLM

    def of(self, metric: M) -> M:
        """The series of `metric` for this server's model (`metrics.of(metrics.ttft).observe(0.1)`)."""
        return metric.labels(*self._labels)

    # -- convenience for drivers -------------------------------------------------------------------
    def set_state(self, running: int, waiting: int, kv_usage: float) -> None:
        self.running.labels(*self._labels).set(running)
        self.waiting.labels(*self._labels).set(waiting)
        self.kv_usage.labels(*self._labels).set(kv_usage)
        self.gpu_cache_usage.labels(*self._labels).set(kv_usage)

    def set_cache_config(
        self, block_size: int, num_gpu_blocks: int, prefix_caching: bool, gpu_memory_utilization: float
    ) -> None:
        """vLLM's cache_config_info: one series whose labels describe the KV cache (value 1)."""
        self.cache_config.clear()
        self.cache_config.labels(
            str(block_size), str(num_gpu_blocks), str(prefix_caching), "auto", str(gpu_memory_utilization)
        ).set(1)

    def set_lora(self, max_lora: int, running: Sequence[str], waiting: Sequence[str], now: float) -> None:
        """vLLM's lora_requests_info: one series whose labels list the adapters; value = last update time."""
        self.lora_info.clear()
        self.lora_info.labels(str(max_lora), ",".join(waiting), ",".join(running)).set(now)

    def request_finished(
        self,
        *,
        reason: str,
        prompt_tokens: int,
        generation_tokens: int,
        e2e: float,
        queue: float,
        prefill: float,
        decode: float,
    ) -> None:
        """Record a finished request (`reason`: stop, length or abort)."""
        lab = self._labels
        self.success.labels(*lab, reason).inc()
        self.request_prompt_tokens.labels(*lab).observe(prompt_tokens)
        self.request_generation_tokens.labels(*lab).observe(generation_tokens)
        self.e2e.labels(*lab).observe(e2e)
        self.queue_time.labels(*lab).observe(queue)
        self.inference_time.labels(*lab).observe(prefill + decode)
        self.prefill_time.labels(*lab).observe(prefill)
        self.decode_time.labels(*lab).observe(decode)
        if generation_tokens > 1:
            self.tpot.labels(*lab).observe(decode / (generation_tokens - 1))

    def tokens(self, prompt: int = 0, generated: int = 0, prefix_queried: int = 0, prefix_hit: int = 0) -> None:
        lab = self._labels
        if prompt:
            self.prompt_tokens.labels(*lab).inc(prompt)
        if generated:
            self.generation_tokens.labels(*lab).inc(generated)
        if prefix_queried:
            self.prefix_queries.labels(*lab).inc(prefix_queried)
        if prefix_hit:
            self.prefix_hits.labels(*lab).inc(prefix_hit)

    def exposition(self) -> bytes:
        """The Prometheus text format of every series."""
        return bytes(generate_latest(self.registry))
