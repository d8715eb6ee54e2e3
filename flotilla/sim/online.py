"""The online serving simulator: emulated vLLM engines behind the gateway's endpoint picker, on one clock.

    sim = OnlineSimulation(ReplicaSpec("A100-40GB", "qwen3-8b", count=8), GatewaySpec(profile="precise-prefix"))
    run = sim.run(from_step(Step(strategy="concurrent", streams=20), prompts, max_requests=256))
    run.summary()["ttft"]["mean"], run.records()    # `flotilla bench serve`'s summary; its RequestRecords
    write_run(Path("out"), sim.runs, name="sim", samples=sim.samples)  # for `flotilla report out`
                                                    # (Outcome, BenchmarkRun, write_run: online_results.py)

Each replica is the vLLM engine emulator (flotilla/serving/emulator/engine.py: scheduler, paged KV cache
with prefix caching, performance model of its GPU and model). All share one discrete-event clock
(sim/engine.py): a replica's step runs `engine.step(now)` and is an event that ends at the step's
modelled end, where its outputs are published, exactly as the live driver (emulator/driver.py) does
after sleeping the step's time: the metrics gauges change, the KV events go out, the next step starts
at once, then the clients see their tokens. A request that arrives while a step runs waits for the next.

The gateway (sim/gateway_model.py) picks an endpoint per request with the live gateway's profiles,
over EndpointSnapshots built as its data layer builds them: scraped gauges refreshed every 50 ms (so
up to 50 ms stale) plus its own exact in-flight counts; the precise prefix index is fed the engines'
KV events when their step ends. Clients are `flotilla bench serve`'s (flotilla/loadgen): the same
request bodies (chat by default, rendered and tokenized as the emulator's server does), GuideLLM's
open and closed loops (sim/requests.py), and the same RequestRecords and summaries. Network and HTTP
time are not modelled: a request reaches its engine when it is picked, a token its client when the
step that made it ends.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from flotilla.gateway.requests import chat_prompt as gateway_chat_prompt
from flotilla.gateway.scheduling import Endpoint, InferenceRequest, Shed
from flotilla.loadgen.client import ClientConfig, request_body
from flotilla.loadgen.datasets import Prompt
from flotilla.loadgen.profiles import ProfileParams, next_step
from flotilla.runs.records import ReplicaSample
from flotilla.serving.emulator.calibration import A100_SERVE
from flotilla.serving.emulator.engine import ContextLengthError, Engine, EngineConfig, StepResult
from flotilla.serving.emulator.tokenizer import Tokenizer, chat_prompt
from flotilla.sim.engine import Engine as Clock
from flotilla.sim.gateway_model import GatewaySpec, SimGateway
from flotilla.sim.online_results import BenchmarkRun, Outcome
from flotilla.sim.requests import Benchmark, SimRequest, from_step


@dataclass(frozen=True)
class ReplicaSpec:
    """`count` identical replicas: an emulated vLLM engine for `model` on `gpu` with `config`
    (default: `vllm serve`'s A100 defaults, 2,048 batched tokens and 256 sequences)."""

    gpu: str = "A100-40GB"
    model: str = "qwen3-8b"
    count: int = 1
    config: EngineConfig = field(default_factory=lambda: EngineConfig(**A100_SERVE))


@dataclass
class _Replica:
    endpoint: Endpoint
    engine: Engine
    vocab: int
    stepping: bool = False
    gauges: tuple[int, int, float] = (0, 0, 0.0)  # waiting, running, KV usage after the last published step
    outcomes: dict[str, Outcome] = field(default_factory=dict)


@dataclass
class _Active:
    """The benchmark being run."""

    run: BenchmarkRun
    next: int = 0  # closed loop: the next request to send
    in_flight: int = 0
    arrivals_left: int = 0  # open loop: arrivals not yet due
    backlog: deque[SimRequest] = field(default_factory=deque)  # open loop: due, waiting for a slot

    @property
    def complete(self) -> bool:
        return self.in_flight == 0 and self.arrivals_left == 0 and not self.backlog


@dataclass
class _Pending:
    outcome: Outcome
    request: InferenceRequest
    prompt: str  # the text the engine tokenizes
    max_tokens: int
    active: _Active


class OnlineSimulation:
    """Replicas and a gateway on one clock; `run(benchmark)` runs one benchmark after the last one, on
    the same replicas (their prefix caches stay warm, as between the benchmarks of one GuideLLM run)."""

    def __init__(
        self,
        replicas: ReplicaSpec | Sequence[ReplicaSpec],
        gateway: GatewaySpec | None = None,
        *,
        seed: int = 0,
        endpoint_type: Literal["chat", "completions"] = "chat",
        ignore_eos: bool = True,
        sample_interval: float | None = None,
    ) -> None:
        specs = [replicas] if isinstance(replicas, ReplicaSpec) else list(replicas)
        self.clock = Clock(seed)
        self.replicas: dict[str, _Replica] = {}
        for i, spec in enumerate(r for s in specs for r in itertools.repeat(s, s.count)):
            engine = Engine.build(spec.gpu, spec.model, spec.config, random.Random(f"{seed}:engine:{i}"))
            address = f"10.0.{i // 250}.{i % 250 + 1}:8000"
            endpoint = Endpoint(f"sim/replica-{i}", address, "sim/pool", {"gpu": spec.gpu, "model": spec.model})
            self.replicas[address] = _Replica(endpoint, engine, engine.perf.model.vocab_size)
        if not self.replicas:
            raise ValueError("no replicas: give a ReplicaSpec with count >= 1")
        first = next(iter(self.replicas.values()))
        self.model = first.engine.model_name
        self.client = ClientConfig("sim", self.model, endpoint_type, ignore_eos)
        self._tokenizers: dict[int, Tokenizer] = {}
        self._token_memo: dict[tuple[int, str], list[int]] = {}
        self._gateway_vocab = first.vocab  # the gateway tokenizes with one vocabulary (--tokenizer-vocab)
        self._gateway_tokens: dict[str, list[int]] = {}
        self.gateway = SimGateway(
            gateway or GatewaySpec(),
            self.clock,
            [(r.endpoint, self._gauges_of(r)) for r in self.replicas.values()],
            tokens_of=lambda rid: self._gateway_tokens.get(rid, ()),
            seed=seed,
        )
        self.gateway.on_tick = self._tick
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count()
        self.samples: list[ReplicaSample] = []
        self._sample_interval = sample_interval
        self._next_sample = 0.0
        self.runs: list[BenchmarkRun] = []

    @staticmethod
    def _gauges_of(replica: _Replica) -> Callable[[], tuple[int, int, float]]:
        return lambda: replica.gauges

    # -- benchmarks -------------------------------------------------------------------------------------------
    def run(self, benchmark: Benchmark) -> BenchmarkRun:
        """Run `benchmark` from now until its last request ended."""
        stats = [r.engine.kv.stats for r in self.replicas.values()]
        queries0, hits0 = sum(s.queries for s in stats), sum(s.hits for s in stats)
        active = _Active(BenchmarkRun(benchmark, started=self.clock.now))
        if benchmark.streams is not None:
            for _ in range(benchmark.streams):
                self._issue(active)
        else:
            active.arrivals_left = len(benchmark.requests)
            for r in benchmark.requests:
                self.clock.at(active.run.started + (r.at or 0.0), self._arrival(active, r))
        while not active.complete:
            self.clock.step()
        run = active.run
        run.ended = max((o.finished_at or run.started for o in run.outcomes), default=run.started)
        run.prefix_queries = sum(s.queries for s in stats) - queries0
        run.prefix_hits = sum(s.hits for s in stats) - hits0
        self.runs.append(run)
        return run

    def run_profile(
        self,
        profile: str,
        params: ProfileParams,
        prompts: Sequence[Prompt],
        *,
        max_requests: int | None = None,
        max_seconds: float | None = None,
    ) -> list[BenchmarkRun]:
        """Every benchmark of a load-generator profile (`concurrent`, `poisson`, ..., and `sweep`, whose
        rates follow the simulated synchronous and throughput benchmarks' achieved rates)."""
        runs: list[BenchmarkRun] = []
        while (step := next_step(profile, params, [r.achieved_rate for r in runs])) is not None:
            bench = from_step(step, prompts, max_requests=max_requests, max_seconds=max_seconds, index=len(runs))
            runs.append(self.run(bench))
        return runs

    # -- clients ------------------------------------------------------------------------------------------------
    def _issue(self, active: _Active) -> None:
        """Closed loop: a stream sends the next request, unless the benchmark is over."""
        bench = active.run.benchmark
        seq, n = active.next, len(bench.requests)
        if (seq >= n and not bench.cycle) or self._past_deadline(active):
            return
        request = bench.requests[seq % n]
        if seq >= n:
            request = replace(request, id=f"{request.id}~{seq // n}")
        active.next += 1
        self._send(active, request)

    def _arrival(self, active: _Active, request: SimRequest) -> Callable[[], None]:
        return lambda: self._arrive(active, request)

    def _arrive(self, active: _Active, request: SimRequest) -> None:
        active.arrivals_left -= 1
        limit = active.run.benchmark.max_concurrency
        if limit is not None and active.in_flight >= limit:
            active.backlog.append(request)
        else:
            self._send(active, request)

    def _past_deadline(self, active: _Active) -> bool:
        limit = active.run.benchmark.max_seconds
        return limit is not None and self.clock.now - active.run.started >= limit

    def _done(self, active: _Active) -> None:
        active.in_flight -= 1
        if active.run.benchmark.streams is not None:
            self._issue(active)
        while active.backlog:
            request = active.backlog.popleft()
            if not self._past_deadline(active):
                self._send(active, request)
                break
        self._pump()

    def _send(self, active: _Active, request: SimRequest) -> None:
        prompt = request.prompt
        outcome = Outcome(request.id, active.run.benchmark.name, request.group, prompt.session, self.clock.now)
        active.run.outcomes.append(outcome)
        active.in_flight += 1
        body = request_body(self.client, prompt)
        if self.client.endpoint_type == "chat":
            text, engine_text = gateway_chat_prompt(body["messages"]), chat_prompt(body["messages"])
        else:
            text = engine_text = body["prompt"]
        rid = f"{next(self._ids)}-{request.id}"
        self._gateway_tokens[rid] = self._tokens(self._gateway_vocab, text)
        ireq = InferenceRequest(rid, self.model, text, prompt.session or None, prompt_tokens_estimate=len(text) // 4)
        self._pending[rid] = _Pending(outcome, ireq, engine_text, prompt.output_tokens, active)
        admitted = self.gateway.admit(ireq)
        if isinstance(admitted, Shed):
            self._fail(rid, admitted.status_code, f"flow control shed this request ({admitted.reason})")
        elif admitted is None:
            self._route(rid)

    def _tokens(self, vocab: int, text: str) -> list[int]:
        key = (vocab, text)
        ids = self._token_memo.get(key)
        if ids is None:
            tokenizer = self._tokenizers.get(vocab) or self._tokenizers.setdefault(vocab, Tokenizer(vocab))
            ids = self._token_memo[key] = tokenizer.encode(text)
        return ids

    def _fail(self, rid: str, status: int, error: str) -> None:
        pending = self._pending.pop(rid)
        self._gateway_tokens.pop(rid, None)
        outcome = pending.outcome
        outcome.status, outcome.error, outcome.finished_at = status, error, self.clock.now
        self._done(pending.active)

    # -- the gateway ----------------------------------------------------------------------------------------------
    def _route(self, rid: str) -> None:
        pending = self._pending[rid]
        picked = self.gateway.pick(pending.request)
        if not isinstance(picked, str):
            self._fail(rid, 503, f"no endpoint can take this request: {picked.reason}")
            return
        replica = self.replicas[picked]
        outcome = pending.outcome
        outcome.endpoint = picked
        tokens = self._tokens(replica.vocab, pending.prompt)
        n = pending.max_tokens
        try:
            replica.engine.add_request(
                rid, tokens, arrival_time=self.clock.now, max_tokens=n, output_len=n if self.client.ignore_eos else None
            )
        except ContextLengthError as exc:
            self.gateway.finished(picked)
            self._fail(rid, 413, str(exc))
            return
        outcome.prompt_tokens = len(tokens)
        replica.outcomes[rid] = outcome
        if not replica.stepping:
            self._step(replica)

    def _pump(self) -> None:
        went, expired = self.gateway.dispatchable()
        for ticket in expired:
            self._fail(ticket.request.request_id, 503, "flow control shed this request (timeout)")
        for ticket in went:
            self._route(ticket.request.request_id)

    def _tick(self) -> None:
        self._pump()
        if self._sample_interval is not None and self.clock.now >= self._next_sample:
            self._next_sample = self.clock.now + self._sample_interval
            for address, state in self.gateway.states.items():
                m = state.metrics
                self.samples.append(
                    ReplicaSample(
                        t=self.clock.now,
                        endpoint=address,
                        waiting=m.waiting,
                        running=m.running,
                        kv_cache_usage=m.kv_usage,
                    )
                )

    # -- the engines ------------------------------------------------------------------------------------------------
    def _step(self, replica: _Replica) -> None:
        result = replica.engine.step(self.clock.now)
        if result.num_requests == 0 and not result.finished:
            if replica.engine.has_unfinished_requests():
                raise RuntimeError(f"{replica.endpoint.name}: the engine cannot schedule its waiting requests")
            replica.stepping = False
            return
        replica.stepping = True
        self.clock.at(result.end, lambda: self._publish(replica, result))

    def _publish(self, replica: _Replica, result: StepResult) -> None:
        """The step ended: the driver's publish (gauges, KV events), the next step, then the clients' tokens."""
        now, address = self.clock.now, replica.endpoint.address
        replica.gauges = (result.waiting, result.running, result.kv_usage)
        if result.kv_events and self.gateway.precise is not None:
            self.gateway.kv_events(address, [e.to_json() for e in result.kv_events])
        if replica.engine.has_unfinished_requests():
            self._step(replica)
        else:
            replica.stepping = False
        outcomes = replica.outcomes
        for request, _token in result.outputs:
            outcome = outcomes.get(request.request_id)
            if outcome is None:
                continue
            if outcome.first_token_at is None:
                outcome.first_token_at = now
                outcome.cached_tokens = max(0, request.num_cached_tokens)
            outcome.output_tokens += 1
        for request in result.finished:
            rid = request.request_id
            outcome = outcomes.pop(rid, None)
            if outcome is None:
                continue
            outcome.status, outcome.finished_at = 200, now
            self.gateway.finished(address)
            self._gateway_tokens.pop(rid, None)
            self._done(self._pending.pop(rid).active)
