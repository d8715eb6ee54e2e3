"""`flotilla bench serve` end to end against the fake server: the run directory and its contents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flotilla.cli import app
from flotilla.runs.records import RequestRecord, RunDir

from .fake_openai import FakeOpenAI

runner = CliRunner()
DATA = "synthetic:prompt_tokens=16,output_tokens=3,samples=4"


def bench(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["bench", "serve", "--no-progress", *args])
    return result.exit_code, result.stdout + result.stderr


def test_a_sweep_writes_the_run_directory(fast_openai: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, text = bench(
        *("--target", fast_openai.url, "--profile", "sweep", "--rate", "3", "--max-requests", "4"),
        *("--data", DATA, "--output-dir", str(out)),
    )
    assert code == 0, text
    run = RunDir(out)
    info = run.info()
    assert (info.kind, info.status, info.name) == ("bench-serve", "succeeded", "sweep-3")
    assert info.config["model"] == "fake-model" and info.finished_at is not None
    records = run.records(RequestRecord)
    assert len(records) == 12
    items = [r.item for r in records]
    assert items[:8] == ["synchronous"] * 4 + ["throughput"] * 4
    assert all(i.startswith("constant@") for i in items[8:])
    assert all(r.status == 200 and r.output_tokens == 3 and r.endpoint for r in records)
    summary = json.loads((out / "summary.json").read_text())
    names = [b["name"] for b in summary["benchmarks"]]
    assert names[:2] == ["synchronous", "throughput"] and names[2] == items[8]
    first = summary["benchmarks"][0]
    assert first["requests"] == {"completed": 4, "errored": 0, "total": 4}
    assert first["rate"]["achieved"] > 0 and first["ttft"]["p99"] >= first["ttft"]["p50"] > 0
    assert set(first["ttft"]) == {"mean", "p50", "p90", "p95", "p99"}
    assert first["concurrency"] == pytest.approx(1.0, abs=0.2)  # one at a time
    # the constant rate is the throughput's (linspace(sync, throughput, 2)[1:])
    assert summary["benchmarks"][2]["rate"]["target"] == pytest.approx(summary["benchmarks"][1]["rate"]["achieved"])
    for png in ("ttft.png", "latency_vs_rate.png"):
        assert (out / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    assert "Benchmarks" in text and "TTFT" in text and "constant@" in text


def test_errors_are_counted_not_fatal(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    code, text = bench(
        *("--target", fake_openai.url, "--model", "fail-500", "--max-requests", "2", "--data", DATA),
        *("--output-dir", str(tmp_path / "r")),
    )
    assert code == 1  # every request failed
    assert "2 x HTTP 500: the engine fell over" in text
    run = RunDir(tmp_path / "r")
    assert run.info().status == "failed"
    assert [r.status for r in run.records(RequestRecord)] == [500, 500]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["benchmarks"][0]["requests"]["errored"] == 2


def test_a_constant_run_with_completions_and_a_jsonl_file(fast_openai: FakeOpenAI, tmp_path: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "a", "output_tokens": 2, "session": "s1"}\n{"prompt": "b"}\n')
    code, text = bench(
        *("--target", fast_openai.url, "--profile", "constant", "--rate", "50", "--max-requests", "4"),
        *("--endpoint-type", "completions", "--output-tokens", "4", "--data", f"file:{data}"),
        *("--output-dir", str(tmp_path / "r")),
    )
    assert code == 0, text
    records = RunDir(tmp_path / "r").records(RequestRecord)
    assert sorted(r.output_tokens for r in records) == [2, 2, 4, 4]
    assert sorted(r.session for r in records) == ["", "", "s1", "s1"]
    assert {r.item for r in records} == {"constant@50.00"}
    assert {p for p, _, _ in fast_openai.requests} == {"/v1/completions"}
    assert (tmp_path / "r" / "plots" / "ttft.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-requests", "1", "--data", "synthetic:promt_tokens=5"), "unknown key promt_tokens; keys:"),
        (("--max-requests", "1", "--profile", "concurrent"), "the concurrent profile needs --rate N"),
        (("--profile", "synchronous"), "give --max-requests or --max-seconds"),
        (("--max-requests", "1", "--rate", "fast", "--profile", "constant"), "'fast' is not a number"),
        (("--max-requests", "1", "--profile", "zigzag"), "unknown profile"),
    ],
)
def test_bad_flags_exit_2_before_sending(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, text = bench("--target", "http://127.0.0.1:9", "--output-dir", str(tmp_path / "r"), *args)
    assert code == 2 and message in text
    assert not (tmp_path / "r").exists()


def test_an_unreachable_target_without_model_is_an_error(tmp_path: Path) -> None:
    code, text = bench("--target", "http://127.0.0.1:9", "--max-requests", "1", "--output-dir", str(tmp_path / "r"))
    assert code == 1 and "cannot reach http://127.0.0.1:9/v1/models" in text
