"""The emulated vLLM engine: pure bookkeeping on an injected clock, no I/O, no wall clock.

    engine = Engine.build("A100-80GB", "qwen3-8b", EngineConfig(), rng=random.Random(0))
    engine.add_request("r1", prompt_token_ids, max_tokens=128, arrival_time=0.0)
    result = engine.step(now=0.0)        # schedules a batch at `now`, runs it for the modelled time,
    result.end                           # and returns its outputs stamped at `end`

One `step(now)` is one vLLM engine-core iteration: schedule (scheduler.py: token budget, chunked
prefill, FCFS, preemption by recompute, prefix caching, max_loras), run (the step takes
`perfmodel.step_time` of the batch's shape, plus adapter loads), then update from the output: every
request whose computed tokens reached its token count samples one token; a request finishes at its
synthetic output length ("stop") or at max_tokens / max_model_len ("length"). A driver calls it
in a loop: the live server sleeps `(end - now) / speed`, the simulator jumps its clock to `end`.

Per-request times follow vLLM's: queued = arrival, scheduled = first admission, first token =
end of the step that sampled it; TTFT = first token - arrival; ITL = gap between a request's tokens.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from flotilla.serving.emulator.kvcache import KVCacheManager
from flotilla.serving.emulator.kvevents import KVCacheEvent
from flotilla.serving.emulator.lora import LoraAdapters
from flotilla.serving.emulator.perfmodel import Accelerator, PerfModel, StepShape, load_perf_data
from flotilla.serving.emulator.request import FinishReason, Request, RequestStatus
from flotilla.serving.emulator.scheduler import Scheduler
from flotilla.serving.emulator.tokenizer import Tokenizer


class EngineConfig(BaseModel):
    """vLLM's engine arguments that the emulator honours, plus the synthetic output length."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_num_seqs: int = Field(256, ge=1)
    max_num_batched_tokens: int = Field(8192, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=2, description="default: the model's max_position_embeddings")
    block_size: int = Field(16, ge=1)
    enable_prefix_caching: bool = True
    lora_modules: tuple[str, ...] = ()
    max_loras: int = Field(1, ge=1)
    max_cpu_loras: int | None = Field(None, ge=1)
    mean_output_tokens: float = Field(256.0, gt=0, description="mean of the synthetic stop length")
    num_gpu_blocks_override: int | None = Field(None, ge=2, description="vLLM's --num-gpu-blocks-override")


class ContextLengthError(ValueError):
    """Prompt plus max_tokens do not fit in max_model_len (vLLM's wording)."""


@dataclass(slots=True)
class StepResult:
    """What one step did, at engine time `start`..`end` (all counts are this step's, not cumulative)."""

    start: float
    end: float
    outputs: list[tuple[Request, int]] = field(default_factory=list)  # (request, its new token)
    finished: list[Request] = field(default_factory=list)
    preempted: list[Request] = field(default_factory=list)
    newly_scheduled: list[Request] = field(default_factory=list)
    kv_events: list[KVCacheEvent] = field(default_factory=list)
    lora_loads: list[tuple[str, bool]] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    itls: list[float] = field(default_factory=list)
    num_requests: int = 0
    num_tokens: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    prefix_queries: int = 0
    prefix_hits: int = 0
    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class EngineCounters:
    """Cumulative totals since start: what vLLM's counters report (the metrics tests compare them)."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    preemptions: int = 0
    steps: int = 0
    busy_time: float = 0.0
    finished: Counter[str] = field(default_factory=Counter)


class Engine:
    """One emulated vLLM engine core: scheduler + KV cache + performance model + LoRA slots."""

    def __init__(self, perf: PerfModel, config: EngineConfig, rng: random.Random, model_name: str = "") -> None:
        self.perf, self.config, self.rng = perf, config, rng
        self.model_name = model_name or perf.model.name
        self.max_model_len = config.max_model_len or perf.model.max_position_embeddings
        blocks = config.num_gpu_blocks_override or perf.num_gpu_blocks
        if (blocks - 1) * config.block_size < self.max_model_len:
            raise ContextLengthError(
                f"max_model_len {self.max_model_len} needs {-(-self.max_model_len // config.block_size)} KV blocks "
                f"but only {blocks - 1} fit ({(blocks - 1) * config.block_size} tokens); lower --max-model-len "
                "or raise --gpu-memory-utilization"
            )
        self.kv = KVCacheManager(blocks, config.block_size, config.enable_prefix_caching)
        self.loras = LoraAdapters(config.lora_modules, config.max_loras, config.max_cpu_loras)
        self.scheduler = Scheduler(
            self.kv,
            max_num_seqs=config.max_num_seqs,
            max_num_batched_tokens=config.max_num_batched_tokens,
            max_loras=config.max_loras if config.lora_modules else 0,
        )
        self.tokenizer = Tokenizer(perf.model.vocab_size)
        self.requests: dict[str, Request] = {}
        self.counters = EngineCounters()
        self.clock = 0.0  # end of the last step
        self._aborted: list[Request] = []
        self._lora_rank, self._lora_overhead = load_perf_data().lora.rank, load_perf_data().lora.load_overhead_s

    @classmethod
    def build(
        cls,
        gpu: str,
        model: str,
        config: EngineConfig | None = None,
        rng: random.Random | None = None,
        model_name: str | None = None,
    ) -> Engine:
        """An engine for `model` on `gpu` (`A100-80GB` or a MIG slice `A100-80GB:3g.40gb`); `model_name`
        (default `model`) is the served name its metrics carry."""
        config = config or EngineConfig()
        data = load_perf_data()
        perf = PerfModel(
            Accelerator.parse(gpu, data),
            data.model(model),
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_num_batched_tokens=config.max_num_batched_tokens,
            max_num_seqs=config.max_num_seqs,
            block_size=config.block_size,
        )
        return cls(perf, config, rng or random.Random(0), model_name=model_name or model)

    # -- state ----------------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self.scheduler.running)

    @property
    def num_waiting(self) -> int:
        return len(self.scheduler.waiting)

    @property
    def kv_usage(self) -> float:
        return self.kv.usage

    def has_unfinished_requests(self) -> bool:
        return bool(self.scheduler.running or self.scheduler.waiting or self._aborted)

    def lora_adapters_in_use(self) -> tuple[list[str], list[str]]:
        """(running adapters, waiting adapters), each sorted and distinct: vLLM's lora_requests_info labels."""
        running = sorted({r.lora.lora_name for r in self.scheduler.running if r.lora is not None})
        waiting = sorted({r.lora.lora_name for r in self.scheduler.waiting if r.lora is not None})
        return running, waiting

    # -- requests -------------------------------------------------------------------------------
    def add_request(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        *,
        arrival_time: float,
        max_tokens: int | None = None,
        output_len: int | None = None,
        min_tokens: int = 0,
        lora: str | None = None,
    ) -> Request:
        """Queue a request. `max_tokens` None: up to max_model_len; `output_len` None: drawn from the rng
        (exponential, mean `mean_output_tokens`, at least `min_tokens`). KeyError for a duplicate id,
        ContextLengthError when prompt + max_tokens exceed max_model_len, UnknownLoraError for an
        adapter not served."""
        if request_id in self.requests:
            raise KeyError(f"request {request_id!r} already exists")
        prompt_len = len(prompt_token_ids)
        if prompt_len == 0:
            raise ContextLengthError("the prompt is empty")
        room = self.max_model_len - prompt_len
        if max_tokens is None:
            max_tokens = room
        if room < 1 or max_tokens > room:
            raise ContextLengthError(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{prompt_len + max_tokens} tokens ({prompt_len} in the messages, {max_tokens} in the completion). "
                "Please reduce the length of the messages or completion."
            )
        if output_len is None:
            output_len = max(1, min_tokens, int(self.rng.expovariate(1.0 / self.config.mean_output_tokens)) + 1)
        request = Request(
            request_id=request_id,
            prompt_token_ids=list(prompt_token_ids),
            max_tokens=max(1, max_tokens),
            output_len=output_len,
            arrival_time=arrival_time,
            lora=self.loras.get(lora) if lora else None,
            output_seed=self.rng.randrange(len(self.tokenizer.lorem_ids)),
        )
        self.requests[request_id] = request
        self.scheduler.add(request)
        return request

    def abort_request(self, request_id: str, now: float) -> Request | None:
        """Stop a request (client gone); it is reported as finished ("abort") by the next step."""
        request = self.requests.get(request_id)
        if request is None or request.is_finished:
            return None
        self.scheduler.abort(request)
        self._finish(request, FinishReason.ABORT, max(now, self.clock))
        self._aborted.append(request)
        return request

    def reset_prefix_cache(self) -> bool:
        return self.kv.reset_prefix_cache()

    # -- the step ---------------------------------------------------------------------------------
    def step(self, now: float) -> StepResult:
        """One engine iteration starting at max(now, end of the previous step)."""
        start = max(now, self.clock)
        stats = self.kv.stats
        queries0, hits0 = stats.queries, stats.hits
        sched = self.scheduler.schedule(start)
        shape = self._shape(sched.scheduled)
        result = StepResult(start=start, end=start)
        if sched.scheduled:
            names = {r.lora.lora_name for r, _n, _c in sched.scheduled if r.lora is not None}
            if names:
                result.lora_loads = self.loras.activate(names)
                shape.lora_load_s = sum(
                    self.perf.lora_load_time(self._lora_rank, disk, self._lora_overhead)
                    for _n, disk in result.lora_loads
                )
            result.end = start + self.perf.step_time(shape)
        result.num_requests, result.num_tokens = shape.requests, shape.tokens
        result.preempted, result.newly_scheduled = sched.preempted, sched.newly_scheduled
        self._update_from_output(sched.scheduled, result)
        if self._aborted:
            result.finished.extend(self._aborted)
            self._aborted = []
        result.kv_events = self.kv.take_events()
        result.prefix_queries, result.prefix_hits = stats.queries - queries0, stats.hits - hits0
        result.running, result.waiting, result.kv_usage = self.num_running, self.num_waiting, self.kv.usage
        c = self.counters
        c.preemptions += len(sched.preempted)
        c.prompt_tokens += result.prompt_tokens
        c.generation_tokens += result.generation_tokens
        if sched.scheduled:
            c.steps += 1
            c.busy_time += result.end - start
        self.clock = result.end
        return result

    @staticmethod
    def _shape(scheduled: list[tuple[Request, int, int]]) -> StepShape:
        tokens = sampled = kv_read = 0
        pairs = 0.0
        for request, n, c in scheduled:
            tokens += n
            kv_read += c + n
            pairs += n * (c + (n + 1) * 0.5)
            if c + n >= request.num_tokens:
                sampled += 1
        return StepShape(tokens, sampled, len(scheduled), pairs, kv_read)

    def _update_from_output(self, scheduled: list[tuple[Request, int, int]], result: StepResult) -> None:
        end, max_model_len = result.end, self.max_model_len
        output_token = self.tokenizer.output_token
        outputs, finished = result.outputs, result.finished
        for request, _n, _c in scheduled:
            tokens = request.all_token_ids
            if request.num_computed_tokens < len(tokens):
                continue  # a prefill chunk that does not reach the end of the prompt samples nothing
            num_out = len(tokens) - request.num_prompt_tokens
            token = output_token(request.output_seed, num_out)
            tokens.append(token)
            num_out += 1
            outputs.append((request, token))
            if request.first_token_ts is None:
                request.first_token_ts = end
                result.ttfts.append(end - request.arrival_time)
                result.prompt_tokens += request.num_prompt_tokens
            else:
                result.itls.append(end - (request.last_token_ts or end))
            request.last_token_ts = end
            result.generation_tokens += 1
            if num_out >= request.output_len and request.output_len < request.max_tokens:
                self._finish(request, FinishReason.STOP, end)
            elif num_out >= request.max_tokens or len(tokens) >= max_model_len:
                self._finish(request, FinishReason.LENGTH, end)
            else:
                continue
            finished.append(request)
        self.scheduler.remove_finished(finished)

    def _finish(self, request: Request, reason: FinishReason, now: float) -> None:
        request.status = RequestStatus.FINISHED
        request.finish_reason = reason
        request.finished_ts = now
        self.counters.finished[reason.value] += 1
        self.requests.pop(request.request_id, None)
