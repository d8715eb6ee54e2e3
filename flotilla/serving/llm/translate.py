"""llama.cpp's numbers in vLLM's names: engine state from its `/metrics` and `/slots`, and each request's
timings from what the front sees pass through it. Pure functions and a per-request observer with an
injected clock; no I/O.

Engine state (refreshed on every scrape of the front's `/metrics`):

| vLLM                          | from llama.cpp                                                          |
|-------------------------------|-------------------------------------------------------------------------|
| `vllm:num_requests_running`   | `llamacpp:requests_processing`                                           |
| `vllm:num_requests_waiting`   | `llamacpp:requests_deferred`                                             |
| `vllm:kv_cache_usage_perc`    | tokens held by busy slots (`/slots`) / KV-cache size (`--ctx-size`)       |

Per request (see `RequestObserver`): TTFT and inter-token latency are measured by the front on
the stream; prompt, generation and cached tokens and the prefill/decode times come from the
response's `usage` and llama.cpp's `timings`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from flotilla.serving.vllm_metrics import VllmMetrics

Clock = Callable[[], float]
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "abort": "abort"}


@dataclass(frozen=True)
class EngineState:
    """The scheduler state vLLM's gauges report."""

    running: int
    waiting: int
    kv_usage: float


def parse_exposition(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name: value} for unlabelled samples (llama.cpp's are all unlabelled)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                out[sample.name] = float(sample.value)
    return out


def slot_tokens(slot: Mapping[str, Any]) -> int:
    """Tokens a busy slot holds in the KV cache (prompt, cached prefix and generated so far); 0 when idle.

    This llama.cpp reports `n_prompt_tokens` as the slot's current length while it generates; the
    sum of its parts is taken too, in case a version reports the prompt alone."""
    if not slot.get("is_processing"):
        return 0
    parts = int(slot.get("n_prompt_tokens_cache") or 0) + int(slot.get("n_prompt_tokens_processed") or 0)
    next_tokens = slot.get("next_token")
    if isinstance(next_tokens, list) and next_tokens and isinstance(next_tokens[0], Mapping):
        parts += int(next_tokens[0].get("n_decoded") or 0)
    return max(int(slot.get("n_prompt_tokens") or 0), parts)


def engine_state(metrics: Mapping[str, float], slots: Sequence[Mapping[str, Any]], kv_capacity: int) -> EngineState:
    """vLLM's gauges from llama.cpp's `/metrics` samples and `/slots` (`kv_capacity`: the KV-cache size in
    tokens). A newer llama.cpp's own `llamacpp:kv_cache_usage_ratio` is used when it has one."""
    if "llamacpp:kv_cache_usage_ratio" in metrics:
        kv = metrics["llamacpp:kv_cache_usage_ratio"]
    else:
        kv = sum(slot_tokens(s) for s in slots) / kv_capacity if kv_capacity > 0 else 0.0
    return EngineState(
        running=int(metrics.get("llamacpp:requests_processing", 0)),
        waiting=int(metrics.get("llamacpp:requests_deferred", 0)),
        kv_usage=min(1.0, max(0.0, kv)),
    )


class SseSplitter:
    """Bytes of a server-sent-event stream -> the `data:` payloads of complete events, in order."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += chunk
        out: list[str] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return out
            line, self._buffer = self._buffer[:end].rstrip(b"\r"), self._buffer[end + 1 :]
            if line.startswith(b"data:"):
                out.append(line[5:].strip().decode("utf-8", "replace"))


@dataclass
class RequestUsage:
    """What a finished response says about its request (zeros where it says nothing)."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    cached_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0


def usage_of(body: Mapping[str, Any]) -> RequestUsage | None:
    """Token counts from OpenAI's `usage` (with `prompt_tokens_details.cached_tokens`), else from
    llama.cpp's `timings` (`prompt_n` + `cache_n`, `predicted_n`); times from `timings`. None if neither."""
    usage, timings = body.get("usage"), body.get("timings")
    if not isinstance(usage, Mapping) and not isinstance(timings, Mapping):
        return None
    t: Mapping[str, Any] = timings if isinstance(timings, Mapping) else {}
    out = RequestUsage(
        prompt_tokens=int(t.get("prompt_n") or 0) + int(t.get("cache_n") or 0),
        generation_tokens=int(t.get("predicted_n") or 0),
        cached_tokens=int(t.get("cache_n") or 0),
        prefill_s=float(t.get("prompt_ms") or 0.0) / 1000,
        decode_s=float(t.get("predicted_ms") or 0.0) / 1000,
    )
    if isinstance(usage, Mapping):
        out.prompt_tokens = int(usage.get("prompt_tokens") or out.prompt_tokens)
        out.generation_tokens = int(usage.get("completion_tokens") or out.generation_tokens)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, Mapping) and details.get("cached_tokens") is not None:
            out.cached_tokens = int(details["cached_tokens"])
    return out


def _finish_reason(body: Mapping[str, Any]) -> str | None:
    choices = body.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, Mapping) and choice.get("finish_reason"):
                return FINISH_REASONS.get(str(choice["finish_reason"]), "stop")
    return None


def _has_token(event: Mapping[str, Any]) -> bool:
    """A stream chunk that carries generated text (chat `delta.content`/`reasoning_content`, or `text`)."""
    choices = event.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, Mapping):
            continue
        if choice.get("text"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, Mapping) and (delta.get("content") or delta.get("reasoning_content")):
            return True
    return False


class RequestObserver:
    """One request's vLLM metrics, recorded once when it finishes.

    Streaming: TTFT = first chunk carrying text - arrival; each later text chunk observes one
    inter-token latency. Non-streaming: TTFT = e2e - llama.cpp's generation time (its first token
    comes out of prefill). Queue time = TTFT - prefill time (waiting for a slot plus the hop
    through the front); prefill and decode times are llama.cpp's `timings`."""

    def __init__(self, metrics: VllmMetrics, clock: Clock = time.monotonic) -> None:
        self.metrics = metrics
        self.clock = clock
        self.arrival = clock()
        self.first_token: float | None = None
        self.last_token: float | None = None
        self.reason: str | None = None
        self.usage: RequestUsage | None = None
        self.done = False
        self.complete = False  # a stream's `[DONE]` was seen

    def on_event(self, payload: str, now: float) -> None:
        """A stream event's `data:` payload, received at `now`."""
        if payload == "[DONE]":
            self.complete = True
            return
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if not isinstance(event, Mapping):
            return
        if _has_token(event):
            if self.first_token is None:
                self.first_token = now
            elif self.last_token is not None:
                self.metrics.of(self.metrics.itl).observe(max(0.0, now - self.last_token))
            self.last_token = now
        self.reason = _finish_reason(event) or self.reason
        usage = usage_of(event)
        if usage is not None:
            self.usage = usage

    def on_body(self, body: Mapping[str, Any]) -> None:
        """A non-streaming response body."""
        self.reason = _finish_reason(body) or self.reason
        self.usage = usage_of(body)

    def finish(self, aborted: bool = False) -> None:
        """Record the request (once): `aborted` when the client went away before the end."""
        if self.done:
            return
        self.done = True
        now = self.clock()
        usage = self.usage or RequestUsage()
        e2e = max(0.0, now - self.arrival)
        if self.first_token is not None:
            ttft: float | None = self.first_token - self.arrival
        elif usage.generation_tokens > 0:
            ttft = max(0.0, e2e - usage.decode_s)
        else:
            ttft = None
        m = self.metrics
        if ttft is not None:
            m.of(m.ttft).observe(ttft)
        m.tokens(
            prompt=usage.prompt_tokens,
            generated=usage.generation_tokens,
            prefix_queried=usage.prompt_tokens,
            prefix_hit=usage.cached_tokens,
        )
        m.request_finished(
            reason="abort" if aborted else (self.reason or "stop"),
            prompt_tokens=usage.prompt_tokens,
            generation_tokens=usage.generation_tokens,
            e2e=e2e,
            queue=max(0.0, (ttft if ttft is not None else e2e) - usage.prefill_s),
            prefill=usage.prefill_s,
            decode=usage.decode_s,
        )
