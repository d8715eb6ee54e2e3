"""The CPU device of the performance model reproduces Flotilla's own measurement of SmolLM2-135M on llama.cpp
(benchmarks/results/serving_bench.json): the same closed-loop batches, emulated on a simulated clock."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest

from flotilla.serving.emulator.engine import Engine, EngineConfig
from flotilla.serving.emulator.simulate import Arrival, simulate

MEASURED = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "serving_bench.json"
PROMPT_TOKENS, OUTPUT_TOKENS = 65, 128  # the bench's chat prompt with SmolLM2's template; max_tokens, ignore_eos
TOLERANCE = 0.15


def emulate(concurrency: int) -> tuple[float, float]:
    """(median TTFT, output tokens/s) of `concurrency` requests sent at once, as the bench measures them."""
    # llama.cpp's --parallel 4 slots and --ctx-size 4096 (the bench's server), no prompt cache
    config = EngineConfig(max_num_seqs=4, max_num_batched_tokens=2048, max_model_len=4080, enable_prefix_caching=False)
    engine = Engine.build("CPU-2core", "smollm2-135m", config, random.Random(1))
    rng = random.Random(concurrency)
    arrivals = [
        Arrival(0.0, f"r{i}", [rng.randrange(1, 49_152) for _ in range(PROMPT_TOKENS)], OUTPUT_TOKENS, OUTPUT_TOKENS)
        for i in range(concurrency)
    ]
    result = simulate(engine, arrivals)
    ttft = statistics.median(result.ttfts())
    tokens = sum(r.num_output_tokens for r in result.finished)
    return ttft, tokens / result.duration


@pytest.mark.parametrize(
    "row", json.loads(MEASURED.read_text())["results"]["llm"], ids=lambda r: f"c{r['concurrency']}"
)
def test_smollm2_on_the_cpu_device_matches_the_measured_server(row: dict[str, float]) -> None:
    ttft, rate = emulate(int(row["concurrency"]))
    assert ttft == pytest.approx(row["direct_ttft_s"], rel=TOLERANCE)
    assert rate == pytest.approx(row["direct_tokens_per_s"], rel=TOLERANCE)
