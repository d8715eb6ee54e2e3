"""The online serving simulator: one clock for every engine, the live gateway's profiles over stale
snapshots, KV events with their timing, determinism, flow control and records."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from flotilla.gateway.scheduling import Endpoint, InferenceRequest, Profile
from flotilla.loadgen.datasets import Prompt
from flotilla.loadgen.profiles import ProfileParams, Step
from flotilla.runs.records import ReplicaSample, RequestRecord, RunDir
from flotilla.serving.emulator.engine import Engine, EngineConfig
from flotilla.serving.emulator.simulate import Arrival, simulate
from flotilla.serving.emulator.tokenizer import Tokenizer, chat_prompt
from flotilla.sim.engine import Engine as Clock
from flotilla.sim.gateway_model import GatewaySpec, SimGateway
from flotilla.sim.online import OnlineSimulation, ReplicaSpec
from flotilla.sim.online_results import no_backlog, write_run
from flotilla.sim.requests import Benchmark, SimRequest, conversations, document_pool, draw, from_step

GPU, MODEL = "A100-80GB", "qwen3-8b"


def sim(profile: str = "round-robin", replicas: int = 2, seed: int = 0, **gateway: object) -> OnlineSimulation:
    return OnlineSimulation(ReplicaSpec(GPU, MODEL, replicas), GatewaySpec(profile=profile, **gateway), seed=seed)  # type: ignore[arg-type]


def docs(n: int, tokens: int = 64, output: int = 8) -> list[Prompt]:
    return document_pool(n, tokens, output_tokens=output, seed=3)


def open_loop(times: list[float], prompts: list[Prompt]) -> Benchmark:
    requests = tuple(SimRequest(f"r{i}", p, t) for i, (t, p) in enumerate(zip(times, prompts, strict=True)))
    return Benchmark("trace", requests)


def closed_loop(prompts: list[Prompt], streams: int = 1) -> Benchmark:
    return from_step(
        Step(strategy="concurrent", streams=streams, max_concurrency=streams), prompts, max_requests=len(prompts)
    )


def fingerprint(s: OnlineSimulation) -> list[tuple[object, ...]]:
    return [
        (o.id, o.endpoint, o.sent_at, o.first_token_at, o.finished_at, o.cached_tokens, o.output_tokens)
        for run in s.runs
        for o in run.outcomes
    ]


def test_same_seed_same_requests_other_seed_other_picks() -> None:
    pool = docs(6, 200)
    bench = from_step(Step(strategy="poisson", rate=30.0, seed=1), draw(pool, 40, 1), max_requests=40)
    a, b, c = sim("random", 3, seed=5), sim("random", 3, seed=5), sim("random", 3, seed=6)
    for s in (a, b, c):
        s.run(bench)
    assert fingerprint(a) == fingerprint(b)
    assert [o[1] for o in fingerprint(a)] != [o[1] for o in fingerprint(c)]
    assert all(o.status == 200 for o in a.runs[0].outcomes)


def test_replicas_on_one_clock_time_each_request_as_an_engine_alone_would() -> None:
    """Two replicas, requests alternating between them (round-robin): every first token and finish is what
    the engine driven alone on its own clock (the emulator's simulate()) gives for its share of the requests."""
    prompts = docs(6, 3000, output=40)
    times = [0.0, 0.01, 0.02, 0.35, 0.36, 0.9]
    s = sim("round-robin", 2, seed=9)
    run = s.run(open_loop(times, prompts))
    by_endpoint: dict[str, list[int]] = {}
    for i, o in enumerate(run.outcomes):
        by_endpoint.setdefault(o.endpoint, []).append(i)
    assert sorted(by_endpoint.values()) == [[0, 2, 4], [1, 3, 5]]  # round-robin alternates
    for n, (address, indexes) in enumerate(sorted(by_endpoint.items())):
        engine = Engine.build(GPU, MODEL, EngineConfig(max_num_batched_tokens=2048), random.Random(f"9:engine:{n}"))
        tokenizer = Tokenizer(engine.perf.model.vocab_size)
        arrivals = [
            Arrival(
                times[i], f"r{i}", tokenizer.encode(chat_prompt([{"role": "user", "content": prompts[i].text}])), 40, 40
            )
            for i in indexes
        ]
        alone = {r.request_id: r for r in simulate(engine, arrivals).finished}
        for i in indexes:
            o, r = run.outcomes[i], alone[f"r{i}"]
            assert o.endpoint == address
            assert o.first_token_at == pytest.approx(r.first_token_ts, abs=1e-9)
            assert o.finished_at == pytest.approx(r.finished_ts, abs=1e-9)
    finishes = [o.finished_at for o in sorted(run.outcomes, key=lambda o: o.finished_at or 0)]
    assert s.clock.now == pytest.approx(max(f for f in finishes if f is not None))
    first_ends = sorted((o.first_token_at or 0, o.endpoint) for o in run.outcomes)
    assert len({e for _, e in first_ends[:2]}) == 2  # the two engines' steps interleave on the one clock


def test_snapshots_are_scraped_every_interval_and_in_flight_is_exact() -> None:
    clock = Clock()
    gauges = [(0, 0, 0.0)]
    endpoint = Endpoint("sim/a", "10.0.0.1:8000", "sim/pool")
    gateway = SimGateway(
        GatewaySpec(profile="round-robin", scrape_interval=0.05),
        clock,
        [(endpoint, lambda: gauges[0])],
        tokens_of=lambda _: (),
    )
    clock.run(until=0.2)
    gauges[0] = (3, 1, 0.5)  # the engine's state changes at 0.2
    assert gateway.pick(InferenceRequest("r1", MODEL, "hello")) == endpoint.address
    snap = gateway.snapshots()[0]
    assert snap.in_flight == 1  # the gateway's own count: at once
    assert (snap.metrics.waiting, snap.metrics.running) == (0, 0)  # the scrape: not yet
    assert 0.15 < snap.metrics.scraped_at <= 0.2
    clock.run(until=0.25)
    snap = gateway.snapshots()[0]
    assert (snap.metrics.waiting, snap.metrics.running, snap.metrics.kv_usage) == (3, 1, 0.5)
    assert 0.2 < snap.metrics.scraped_at <= 0.25
    seen = []
    for step in range(1, 40):
        clock.run(until=0.25 + step * 0.013)
        seen.append(gateway.snapshots()[0].metrics.scraped_at)
        assert 0 <= clock.now - seen[-1] < 0.05 + 1e-9
    ticks = sorted(set(seen))
    assert all(b - a == pytest.approx(0.05) for a, b in itertools.pairwise(ticks))
    gateway.finished(endpoint.address)
    assert gateway.snapshots()[0].in_flight == 0


def test_the_picker_is_the_live_gateways_profile() -> None:
    s = sim("round-robin", 3)
    assert isinstance(s.gateway.picker, Profile) and s.gateway.picker.name == "round-robin"
    run = s.run(closed_loop(docs(6)))
    addresses = sorted(s.replicas)
    assert [o.endpoint for o in run.outcomes] == addresses * 2


def test_precise_prefix_sends_a_recurring_transcript_to_the_replica_that_holds_it() -> None:
    pool = docs(3, 2000)
    order = [pool[i] for i in (0, 1, 2, 0, 1, 2, 2, 1, 0)]
    s = sim("precise-prefix", 4)
    assert s.gateway.precise is not None
    run = s.run(closed_loop(order))
    home: dict[str, str] = {}
    for o in run.outcomes:  # group: the document
        if o.group in home:
            assert o.endpoint == home[o.group] and o.cached_tokens >= 2000
        else:
            home[o.group] = o.endpoint
            assert o.cached_tokens == 0
    assert run.summary()["prefix_hit_rate"] > 0.6
    spread = sim("random", 4, seed=1).run(closed_loop(order * 3))
    assert spread.summary()["prefix_hit_rate"] < run.summary()["prefix_hit_rate"]


def test_kv_events_reach_the_index_when_the_step_ends_after_the_delay() -> None:
    prompt = docs(1, 800, output=30)
    first = sim("precise-prefix", 1, kv_event_delay=0.05).run(open_loop([0.0], prompt)).outcomes[0].first_token_at
    assert first is not None  # the end of the one prefill step (the same run again below: deterministic)
    s = sim("precise-prefix", 1, kv_event_delay=0.05)
    index, address = s.gateway.precise, next(iter(s.replicas))
    assert index is not None
    sizes: dict[float, int] = {}

    def probe(t: float) -> None:
        s.clock.at(t, lambda: sizes.__setitem__(t, index.size(address)), priority=5)

    for t in (first - 0.001, first + 0.04, first + 0.051, first + 0.2):
        probe(t)
    s.run(open_loop([0.0], prompt))
    assert sizes[first - 0.001] == 0  # computed at the step's start, published at its end
    assert sizes[first + 0.04] == 0  # published, not delivered yet
    assert sizes[first + 0.051] >= 800 // 16 and sizes[first + 0.2] >= sizes[first + 0.051]


def test_closed_loop_keeps_streams_requests_in_flight() -> None:
    s = sim("round-robin", 2)
    run = s.run(closed_loop(docs(12, 200, output=20), streams=3))
    assert [o.sent_at for o in run.outcomes[:3]] == [0.0, 0.0, 0.0]
    events = sorted([(o.sent_at, 1) for o in run.outcomes] + [(o.finished_at or 0, -1) for o in run.outcomes])
    level, peak = 0, 0
    for _, change in events:
        level += change
        peak = max(peak, level)
    assert peak == 3 and len(run.outcomes) == 12
    later = run.outcomes[3:]
    finished = sorted(o.finished_at or 0 for o in run.outcomes)
    assert all(any(o.sent_at == pytest.approx(f) for f in finished) for o in later)  # sent when one ended


def test_sessions_stick_with_a_session_affinity_profile(tmp_path: Path) -> None:
    profile = tmp_path / "epp.yaml"
    profile.write_text(
        "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n"
        "- type: session-affinity-scorer\n- type: max-score-picker\nschedulingProfiles:\n- name: sticky\n"
        "  plugins:\n  - pluginRef: session-affinity-scorer\n  - pluginRef: max-score-picker\n"
    )
    chats = conversations(4, 3, turn_tokens=30, output_tokens=10)
    interleaved = [chats[s * 3 + k] for k in range(3) for s in range(4)]
    s = OnlineSimulation(ReplicaSpec(GPU, MODEL, 3), GatewaySpec(profile="sticky", profile_file=profile), seed=2)
    run = s.run(closed_loop(interleaved))
    by_session: dict[str, set[str]] = {}
    for o in run.outcomes:
        by_session.setdefault(o.session, set()).add(o.endpoint)
    assert len(by_session) == 4 and all(len(e) == 1 for e in by_session.values())


def test_flow_control_queues_while_saturated_and_sheds_when_full() -> None:
    small = ReplicaSpec(GPU, MODEL, 1, EngineConfig(max_num_batched_tokens=2048, max_num_seqs=1))
    times = [i * 0.02 for i in range(40)]  # faster than one sequence at a time can serve: waiting grows past 5
    queued = OnlineSimulation(small, GatewaySpec(profile="round-robin"), seed=1)
    depth: list[int] = []
    for t in range(1, 100):
        queued.clock.at(t * 0.05, lambda: depth.append(len(queued.gateway.flow or ())), priority=5)
    run = queued.run(open_loop(times, docs(40, 100, output=10)))
    assert all(o.status == 200 for o in run.outcomes) and max(depth) > 0
    shed = OnlineSimulation(small, GatewaySpec(profile="round-robin", max_queue=2), seed=1)
    statuses = [o.status for o in shed.run(open_loop(times, docs(40, 100, output=10))).outcomes]
    assert 429 in statuses and 200 in statuses


def test_too_long_a_prompt_is_refused_like_the_server_does() -> None:
    small = ReplicaSpec(GPU, MODEL, 1, EngineConfig(max_model_len=256))
    run = OnlineSimulation(small, GatewaySpec(profile="round-robin")).run(
        open_loop([0.0, 0.1], [*docs(1, 600), *docs(1, 20)])
    )
    assert [o.status for o in run.outcomes] == [413, 200] and "maximum context length" in run.outcomes[0].error


def test_records_summary_and_run_directory(tmp_path: Path) -> None:
    s = OnlineSimulation(ReplicaSpec(GPU, MODEL, 2), GatewaySpec(profile="default"), seed=1, sample_interval=0.5)
    run = s.run(from_step(Step(strategy="poisson", rate=8.0, seed=2), draw(docs(4, 300, 16), 24, 2), max_requests=24))
    summary = run.summary()
    assert summary["requests"]["completed"] == 24 and summary["keeps_up"]
    assert summary["ttft"]["p50"] <= summary["ttft"]["p99"] and summary["itl"]["mean"] > 0
    assert sum(summary["per_endpoint"].values()) == 24 and 0 < summary["prefix_hit_rate"] < 1
    written = write_run(tmp_path / "run", s.runs, name="sim-test", samples=s.samples, config={"model": s.model})
    back = RunDir(written.path)
    records = back.records(RequestRecord)
    assert len(records) == 24 and all(r.ttft is not None and r.endpoint for r in records)
    assert back.records(ReplicaSample) and back.info().config["simulated"] is True


def test_no_backlog_rule() -> None:
    assert no_backlog([0.1] * 10)
    assert not no_backlog([0.1] * 5 + [2.0] * 5)
    assert not no_backlog([None, None])


def test_rate_sweeps_run_one_benchmark_per_rate_and_adapt_like_guidellm() -> None:
    prompts = docs(8, 100, output=8)
    s = sim("round-robin", 2)
    fixed = s.run_profile("poisson", ProfileParams(rates=(2.0, 8.0), seed=1), prompts, max_seconds=3.0)
    assert [r.benchmark.name for r in fixed] == ["poisson@2.00", "poisson@8.00"]
    assert fixed[0].achieved_rate < fixed[1].achieved_rate and fixed[1].started >= fixed[0].ended
    sweep = sim("round-robin", 2).run_profile(
        "sweep", ProfileParams(rates=(4,), max_concurrency=16), prompts, max_seconds=1.0
    )
    names = [r.benchmark.name for r in sweep]
    assert names[:2] == ["synchronous", "throughput"] and len(names) == 4
    rates = [r.benchmark.step.rate or 0.0 for r in sweep[2:] if r.benchmark.step is not None]
    assert rates[-1] == pytest.approx(sweep[1].achieved_rate) and sweep[0].achieved_rate < rates[0] < rates[-1]
    assert sweep[0].benchmark.cycle and len(sweep[0].outcomes) > len(prompts)  # the closed loop cycles its prompts
