"""The engine's state and each step's events, written into vLLM's metrics (flotilla/serving/vllm_metrics.py).

After every step, as vLLM's PrometheusStatLogger does with its SchedulerStats and IterationStats:

- gauges: num_requests_running / waiting, kv_cache_usage_perc (the engine's values after the step);
  lora_requests_info (when adapters are served) with the running and waiting adapters
- counters: prompt_tokens (a request's prompt length, once, at its first token), generation_tokens,
  prefix_cache_queries / hits (lookups of requests not preempted before, in tokens), num_preemptions,
  request_success{finished_reason}
- histograms: time_to_first_token (first token - arrival), inter_token_latency (per new token),
  and per finished request: e2e (finish - arrival), queue (first scheduled - arrival), prefill
  (first token - first scheduled), decode (last token - first token), prompt and generation
  tokens, time per output token (decode / (tokens - 1)).

All times are engine (emulated) seconds, so with `--speed 10` a 1 s TTFT is reported as 1 s.
"""

from __future__ import annotations

from flotilla.serving.emulator.engine import Engine, StepResult
from flotilla.serving.emulator.request import Request
from flotilla.serving.vllm_metrics import VllmMetrics


def request_times(request: Request) -> dict[str, float]:
    """vLLM's per-request phases of a finished request (0 for a phase it never reached)."""
    end = request.finished_ts if request.finished_ts is not None else request.arrival_time
    scheduled = request.scheduled_ts if request.scheduled_ts is not None else end
    first = request.first_token_ts if request.first_token_ts is not None else scheduled
    last = request.last_token_ts if request.last_token_ts is not None else first
    return {
        "e2e": end - request.arrival_time,
        "queue": scheduled - request.arrival_time,
        "prefill": first - scheduled,
        "decode": last - first,
    }


class EngineMetrics:
    """Writes an engine's steps into a VllmMetrics registry."""

    def __init__(self, engine: Engine, metrics: VllmMetrics | None = None) -> None:
        self.engine = engine
        self.metrics = metrics or VllmMetrics(engine.model_name, max_model_len=engine.max_model_len)
        m = self.metrics
        self._ttft, self._itl = m.of(m.ttft), m.of(m.itl)
        self._preemptions = m.of(m.preemptions)
        config = engine.config
        m.set_cache_config(
            config.block_size, engine.kv.num_gpu_blocks, config.enable_prefix_caching, config.gpu_memory_utilization
        )
        self.record_state(0.0)

    def record_state(self, now: float) -> None:
        engine, m = self.engine, self.metrics
        m.set_state(engine.num_running, engine.num_waiting, engine.kv_usage)
        if engine.loras.adapters:
            running, waiting = engine.lora_adapters_in_use()
            m.set_lora(engine.config.max_loras, running, waiting, now)

    def record(self, result: StepResult) -> None:
        m = self.metrics
        m.set_state(result.running, result.waiting, result.kv_usage)
        if self.engine.loras.adapters:
            running, waiting = self.engine.lora_adapters_in_use()
            m.set_lora(self.engine.config.max_loras, running, waiting, result.end)
        m.tokens(
            prompt=result.prompt_tokens,
            generated=result.generation_tokens,
            prefix_queried=result.prefix_queries,
            prefix_hit=result.prefix_hits,
        )
        if result.preempted:
            self._preemptions.inc(len(result.preempted))
        for value in result.ttfts:
            self._ttft.observe(value)
        for value in result.itls:
            self._itl.observe(value)
        for request in result.finished:
            times = request_times(request)
            m.request_finished(
                reason=request.finish_reason.value if request.finish_reason is not None else "abort",
                prompt_tokens=request.num_prompt_tokens,
                generation_tokens=request.num_output_tokens,
                e2e=times["e2e"],
                queue=times["queue"],
                prefill=times["prefill"],
                decode=times["decode"],
            )
