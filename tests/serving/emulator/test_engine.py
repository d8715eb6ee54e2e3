"""The engine's scheduling behaviour on the simulated clock (vLLM V1's rules)."""

from __future__ import annotations

import statistics

import pytest

from flotilla.serving.emulator.engine import ContextLengthError
from flotilla.serving.emulator.lora import UnknownLoraError
from flotilla.serving.emulator.request import FinishReason, RequestStatus
from flotilla.serving.emulator.simulate import Arrival

from .builders import arrivals, by_id, engine, prompt, run


@pytest.mark.parametrize("budget", [512, 2048])
def test_ttft_grows_with_the_number_of_concurrent_arrivals(budget):
    means = []
    for n in (1, 4, 16):
        e = engine(max_num_batched_tokens=budget)
        result, _ = run(e, arrivals(*[(0.0, prompt(1500, seed=i), 8) for i in range(n)]))
        means.append(statistics.fmean(result.ttfts()))
    assert means[0] < means[1] < means[2]


def test_a_shared_prefix_is_a_cache_hit_that_cuts_prefill():
    e = engine()
    system = prompt(4000, seed=1)
    first, _ = run(e, arrivals((0.0, system + prompt(20, seed=2), 4)))
    hits_before = e.kv.stats.hits
    second, steps = run(e, arrivals((e.clock, system + prompt(20, seed=3), 4)))
    r0, r1 = first.finished[0], second.finished[0]
    assert r0.num_cached_tokens == 0
    assert r1.num_cached_tokens == 4000  # 250 full blocks of the shared system prompt
    assert r1.first_token_ts - r1.arrival_time < (r0.first_token_ts - r0.arrival_time) / 5
    assert e.kv.stats.hits - hits_before == 4000 == sum(s.prefix_hits for s in steps)


def test_preemption_under_kv_pressure_recomputes_and_everyone_finishes():
    e = engine(num_gpu_blocks_override=33, max_model_len=512, max_num_seqs=16)  # 32 usable blocks = 512 tokens
    result, steps = run(e, arrivals(*[(0.0, prompt(100, seed=i), 120) for i in range(8)]))
    preempted = [r for s in steps for r in s.preempted]
    assert preempted and e.counters.preemptions == len(preempted)
    assert len(result.finished) == 8
    assert all(r.num_output_tokens == 120 and r.finish_reason is FinishReason.LENGTH for r in result.finished)
    assert e.kv.num_free_blocks == 32 and e.kv.stats.preempted_requests > 0


def test_the_most_recently_admitted_request_is_preempted_to_the_front_of_the_queue():
    e = engine(num_gpu_blocks_override=17, max_model_len=256, max_num_seqs=8)  # 16 usable blocks
    for i in range(4):
        e.add_request(f"r{i}", prompt(60, seed=i), arrival_time=0.0, max_tokens=150, output_len=150)
    e.add_request("late", prompt(60, seed=9), arrival_time=0.0, max_tokens=150, output_len=150)
    now = 0.0
    while True:
        step = e.step(now)
        now = step.end
        if step.preempted:
            break
    victim = step.preempted[0]
    running_ids = [r.request_id for r in e.scheduler.running]
    assert victim.request_id == "r3" and "r3" not in running_ids  # the last admitted of r0..r3
    assert e.scheduler.waiting[0] is victim and victim.status is RequestStatus.PREEMPTED
    assert victim.num_computed_tokens == 0 and e.kv.blocks_of("r3") == []


def test_chunked_prefill_stays_within_the_token_budget():
    e = engine(max_num_batched_tokens=512)
    result, steps = run(e, arrivals((0.0, prompt(2000), 3), (0.0, prompt(300, seed=1), 3)))
    assert all(s.num_tokens <= 512 for s in steps)
    first = by_id(result)["r0"]
    prefill_steps = [s for s in steps if s.start < first.first_token_ts]
    assert len(prefill_steps) == 4  # ceil(2000 / 512): the prompt is prefilled over four steps
    assert all(not any(r is first for r, _t in s.outputs) for s in prefill_steps[:-1])


def test_running_requests_never_exceed_max_num_seqs():
    e = engine(max_num_seqs=4)
    result, steps = run(e, arrivals(*[(0.0, prompt(50, seed=i), 20) for i in range(10)]))
    assert max(s.running for s in steps) == 4 and max(s.num_requests for s in steps) <= 4
    assert len(result.finished) == 10


def test_waiting_requests_are_admitted_first_come_first_served():
    e = engine(max_num_seqs=1)
    result, _ = run(e, arrivals(*[(0.1 * i, prompt(50, seed=i), 5) for i in range(5)]))
    assert [r.request_id for r in result.finished] == ["r0", "r1", "r2", "r3", "r4"]


def test_lora_adapters_load_once_and_max_loras_bounds_the_batch():
    e = engine(lora_modules=("sql", "chat"), max_loras=1, max_cpu_loras=2)
    items = [Arrival(0.0, f"s{i}", prompt(50, seed=i), 10, 10, "sql") for i in range(2)]
    items += [Arrival(0.0, f"c{i}", prompt(50, seed=10 + i), 10, 10, "chat") for i in range(2)]
    result, steps = run(e, items)
    loads = [load for s in steps for load in s.lora_loads]
    assert loads == [("sql", True), ("chat", True)]  # each read from disk once, swapped in its turn
    for s in steps:  # at most one adapter in any batch
        assert len({r.lora.lora_name for r, _t in s.outputs if r.lora}) <= 1
    sql_done = max(r.finished_ts for r in result.finished if r.lora and r.lora.lora_name == "sql")
    chat_start = min(r.scheduled_ts for r in result.finished if r.lora and r.lora.lora_name == "chat")
    assert chat_start >= sql_done  # the chat requests waited while sql held the only slot
    load_step = next(s for s in steps if s.lora_loads)
    assert load_step.duration > e.perf.lora_load_time(16, True, 0.02)


def test_a_resident_adapter_in_host_memory_skips_the_disk_read():
    e = engine(lora_modules=("a", "b"), max_loras=1, max_cpu_loras=2)
    loads = []
    for i, name in enumerate(("a", "b", "a")):
        _, steps = run(e, [Arrival(e.clock, f"x{i}", prompt(20), 2, 2, name)])
        loads += [load for s in steps for load in s.lora_loads]
    assert loads == [("a", True), ("b", True), ("a", False)]  # "a" came back from host memory
    assert list(e.loras.gpu) == ["a"] and set(e.loras.cpu) == {"a", "b"}


def test_finish_reasons_stop_length_and_context():
    e = engine(max_model_len=64)
    e.add_request("stop", prompt(10), arrival_time=0.0, max_tokens=20, output_len=5)
    e.add_request("length", prompt(10), arrival_time=0.0, max_tokens=5, output_len=50)
    e.add_request("context", prompt(60), arrival_time=0.0)  # max_tokens defaults to the 4 tokens left
    result, _ = run(e, [])
    got = {r.request_id: (r.finish_reason, r.num_output_tokens) for r in result.finished}
    assert got == {
        "stop": (FinishReason.STOP, 5),
        "length": (FinishReason.LENGTH, 5),
        "context": (FinishReason.LENGTH, 4),
    }


def test_bad_requests_are_refused_before_they_queue():
    e = engine(max_model_len=64, lora_modules=("sql",))
    with pytest.raises(ContextLengthError, match="maximum context length is 64"):
        e.add_request("long", prompt(60), arrival_time=0.0, max_tokens=10)
    with pytest.raises(ContextLengthError):
        e.add_request("empty", [], arrival_time=0.0)
    with pytest.raises(UnknownLoraError):
        e.add_request("x", prompt(5), arrival_time=0.0, lora="nope")
    e.add_request("dup", prompt(5), arrival_time=0.0)
    with pytest.raises(KeyError):
        e.add_request("dup", prompt(5), arrival_time=0.0)
    assert e.num_waiting == 1


def test_abort_frees_the_request_and_reports_it_next_step():
    e = engine()
    e.add_request("a", prompt(40), arrival_time=0.0, max_tokens=100, output_len=100)
    e.add_request("b", prompt(40, seed=1), arrival_time=0.0, max_tokens=100, output_len=100)
    e.step(0.0)
    e.abort_request("a", 0.5)
    step = e.step(0.5)
    assert [r.request_id for r in step.finished] == ["a"] and step.finished[0].finish_reason is FinishReason.ABORT
    assert e.kv.blocks_of("a") == [] and e.num_running == 1
    assert e.abort_request("a", 1.0) is None


def test_same_seed_same_run():
    def once():
        e = engine(seed=3, mean_output_tokens=30)
        for i in range(20):
            e.add_request(f"r{i}", prompt(100, seed=i), arrival_time=0.01 * i)
        result, _ = run(e, [])
        return [(r.request_id, r.num_output_tokens, r.output_token_ids[:3], r.finished_ts) for r in result.finished]

    assert once() == once()
