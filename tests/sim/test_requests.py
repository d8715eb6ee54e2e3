"""Request streams for the online simulator: arrival processes, closed loops, pools, sessions, traces."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import pytest

from flotilla.loadgen.datasets import Prompt, TextMaker, load_dataset
from flotilla.loadgen.profiles import Step
from flotilla.sim.requests import (
    Benchmark,
    SimRequest,
    TraceError,
    conversations,
    document_pool,
    draw,
    from_step,
    read_trace,
    write_trace,
)


def prompts(n: int = 3, tokens: int = 32) -> list[Prompt]:
    return document_pool(n, tokens, output_tokens=8, seed=1)


def test_poisson_arrivals_have_the_asked_rate() -> None:
    bench = from_step(Step(strategy="poisson", rate=20.0, seed=3), prompts(), max_requests=4000)
    times = [r.at for r in bench.requests]
    assert all(t is not None for t in times)
    gaps = [b - a for a, b in itertools.pairwise(times)]  # type: ignore[operator]
    assert min(gaps) >= 0
    assert statistics.fmean(gaps) == pytest.approx(1 / 20.0, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(1 / 20.0, rel=0.08)  # exponential: stdev = mean
    assert bench.streams is None and bench.step is not None and bench.step.rate == 20.0


def test_constant_arrivals_are_evenly_spaced_and_stop_at_max_seconds() -> None:
    bench = from_step(Step(strategy="constant", rate=4.0), prompts(), max_seconds=2.0)
    assert [r.at for r in bench.requests] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert bench.max_seconds == 2.0


def test_prompts_are_taken_in_order_and_cycled_like_bench_serve() -> None:
    pool = prompts(3)
    bench = from_step(Step(strategy="constant", rate=1.0), pool, max_requests=5, index=2)
    assert [r.prompt.id for r in bench.requests] == ["doc-0", "doc-1", "doc-2", "doc-0", "doc-1"]
    assert [r.id for r in bench.requests][:2] == ["b2-0-doc-0", "b2-1-doc-1"]


def test_closed_loop_steps_have_streams_and_no_times() -> None:
    bench = from_step(Step(strategy="concurrent", streams=4, max_concurrency=4), prompts(), max_requests=10)
    assert bench.closed_loop and bench.streams == 4 and len(bench.requests) == 10
    assert all(r.at is None for r in bench.requests)
    timed = from_step(Step(strategy="synchronous", streams=1, max_concurrency=1), prompts(), max_seconds=5.0)
    assert timed.cycle and len(timed.requests) == 3  # one pass, sent again until max_seconds
    with pytest.raises(ValueError, match="max_requests or max_seconds"):
        from_step(Step(strategy="concurrent", streams=2), prompts())


def test_open_loop_benchmarks_need_times() -> None:
    with pytest.raises(ValueError, match="needs a time"):
        Benchmark("b", (SimRequest("r", prompts(1)[0]),))


def test_draw_samples_with_replacement_reproducibly() -> None:
    pool = prompts(5)
    drawn = draw(pool, 200, seed=7)
    assert drawn == draw(pool, 200, seed=7) and drawn != draw(pool, 200, seed=8)
    counts = {p.id: sum(d.id == p.id for d in drawn) for p in pool}
    assert set(counts) == {p.id for p in pool} and all(20 <= c <= 60 for c in counts.values())


def test_document_pool_sizes_and_instruction() -> None:
    maker = TextMaker()
    exact = document_pool(4, 300, instruction="Summarize this:", seed=2)
    assert len({p.text for p in exact}) == 4
    assert all(p.text.startswith("Summarize this: ") for p in exact)
    assert {p.prompt_tokens for p in exact} == {maker.count("Summarize this:") + 300}
    spread = document_pool(200, 1000, stdev=100, seed=2)
    sizes = [p.prompt_tokens for p in spread]
    assert statistics.fmean(sizes) == pytest.approx(1000, rel=0.03) and 70 < statistics.stdev(sizes) < 130


def test_shared_prefix_groups_from_the_load_generators_synthetic_data() -> None:
    data = load_dataset("synthetic:prompt_tokens=20,output_tokens=4,prefix_tokens=64,prefix_groups=2,samples=6")
    bench = from_step(Step(strategy="constant", rate=1.0), data, max_requests=6)
    texts = [r.prompt.text for r in bench.requests]
    head = [t[: len(texts[0]) // 2] for t in texts]
    assert head[0] == head[2] == head[4] and head[1] == head[3] == head[5] and head[0] != head[1]


def test_conversations_replay_their_history_in_one_session() -> None:
    chats = conversations(2, 3, turn_tokens=10, output_tokens=5, system_tokens=4, seed=1)
    assert [p.id for p in chats] == ["chat-0-0", "chat-0-1", "chat-0-2", "chat-1-0", "chat-1-1", "chat-1-2"]
    for a, b in itertools.pairwise(chats[:3]):
        assert b.text.startswith(a.text) and b.session == a.session == "chat-0"
        assert b.prompt_tokens == a.prompt_tokens + 5 + 10
    assert chats[0].system and chats[3].text != chats[0].text


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("text", [True, False])
def test_trace_round_trip(tmp_path: Path, suffix: str, text: bool) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(
        "time,output_tokens,prompt_tokens,prefix_group,prefix_tokens,session\n"
        "0.5,16,120,transcript-a,,user-1\n"
        "0.0,8,150,transcript-b,100,\n"
        "1.25,4,130,transcript-b,100,user-2\n"
        "2.0,32,40,,,\n"
    )
    if suffix == ".jsonl":  # the same rows as JSON objects
        path = tmp_path / "trace.jsonl"
        write_trace(read_trace(tmp_path / "trace.csv").requests, path, text=False)
    first = read_trace(path)
    assert [r.at for r in first.requests] == [0.0, 0.5, 1.25, 2.0]  # sorted by time
    b0, a, b1, plain = first.requests
    assert a.prompt.prompt_tokens == 120 and a.prompt.session == "user-1" and a.prompt.output_tokens == 16
    assert b0.prompt.prompt_tokens == 150 and b1.prompt.prompt_tokens == 130 and plain.prompt.prompt_tokens == 40
    assert TextMaker().count(_common_prefix(b0.prompt.text, b1.prompt.text)) >= 100  # the group's 100 tokens
    assert not _common_prefix(a.prompt.text, b0.prompt.text).strip()
    assert (a.group, a.prefix_tokens, b1.prefix_tokens) == ("transcript-a", 120, 100)
    assert plain.group == plain.id and plain.prefix_tokens == 0
    again = tmp_path / f"again{suffix}"
    write_trace(first.requests, again, text=text)
    second = read_trace(again)
    assert [(r.at, r.id, r.prompt.text, r.prompt.output_tokens, r.prompt.session) for r in second.requests] == [
        (r.at, r.id, r.prompt.text, r.prompt.output_tokens, r.prompt.session) for r in first.requests
    ]


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("output_tokens,prompt_tokens\n4,10\n", "no column time"),
        ("time,output_tokens\n0,4\n", "give `prompt` .text. or `prompt_tokens`"),
        ("time,output_tokens,prompt_tokens\nsoon,4,10\n", "time='soon' is not a number"),
        ("time,output_tokens,prompt_tokens\n0,4.5,10\n", "output_tokens='4.5' is not a whole number"),
        ("time,output_tokens,prompt_tokens,prefix_tokens\n0,4,10,20\n", "prefix_tokens 20 is more than"),
        ("time,output_tokens,prompt_tokens,prefix_group,prefix_tokens\n0,4,10,g,5\n1,4,10,g,6\n", "line 2"),
        ("time,output_tokens,prompt_tokens\n-1,4,10\n", "time must be >= 0"),
    ],
)
def test_trace_errors_name_the_line_and_the_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TraceError, match=message):
        read_trace(path)


def test_trace_needs_a_known_format(tmp_path: Path) -> None:
    path = tmp_path / "trace.txt"
    path.write_text("x")
    with pytest.raises(TraceError, match=r"use a \.csv or \.jsonl"):
        read_trace(path)
    closed = from_step(Step(strategy="concurrent", streams=1), prompts(), max_requests=1)
    with pytest.raises(TraceError, match="only open-loop"):
        write_trace(closed.requests, tmp_path / "t.csv")
