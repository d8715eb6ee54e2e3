"""The bookkeeping benchmark runs and reports, and the CLI command refuses bad settings with exit code 2."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from flotilla.serving.emulator.bench import run_benchmark
from flotilla.serving.emulator.cli import serve_emulated


def test_benchmark_reports_requests_per_second_of_bookkeeping():
    r = run_benchmark(num_requests=300, rate=500.0, prompt_len=128, shared_prefix_len=64, output_len=16)
    assert r.requests == 300 and r.steps > 0 and r.simulated_s > 0
    assert r.requests_per_s > 0 and r.tokens_per_s > r.requests_per_s
    assert 0.3 < r.prefix_hit_rate < 0.5  # 64 of 128 prompt tokens shared: 4 of 8 blocks (the first request misses)


def app() -> typer.Typer:
    cli = typer.Typer()
    serve = typer.Typer(name="serve")
    serve.command("emulated")(serve_emulated)
    cli.add_typer(serve)
    return cli


def test_serve_emulated_refuses_what_cannot_run():
    runner = CliRunner()
    r = runner.invoke(app(), ["serve", "emulated", "--gpu", "V100"])
    assert r.exit_code == 2 and "unknown GPU 'V100'" in r.output
    r = runner.invoke(app(), ["serve", "emulated", "--gpu", "A100-80GB:1g.10gb", "--model", "qwen3-8b"])
    assert r.exit_code == 2 and "does not fit" in r.output
    r = runner.invoke(app(), ["serve", "emulated", "--model", "qwen3-8b", "--num-gpu-blocks-override", "10"])
    assert r.exit_code == 2 and "max_model_len" in r.output
