"""Published vLLM runs the performance model is fitted to, and the emulator's figures for them.

Each case replays a `vllm bench serve` run on the simulated clock (random token prompts, fixed
output lengths, all requests sent at once or at a fixed concurrency) with the engine settings vLLM
used (its defaults for `vllm serve` on that GPU: 2048 batched tokens and 256 sequences on A100,
8192 and 1024 on H100) and compares one published figure.

Source of every figure: GPUStack performance lab, vLLM v0.11.0 baselines (`vllm serve <model>`,
no tuning), github.com/gpustack/gpustack docs/performance-lab/{qwen3-14b/a100.md,
qwen3-14b/h100.md, qwen3-8b/h100-latency.md}. The A100 runs used an A100 SXM 80GB (the sibling
pages name it), the H100 runs an H100 SXM.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from flotilla.serving.emulator.engine import Engine, EngineConfig
from flotilla.serving.emulator.simulate import random_arrivals, simulate

A100_SERVE = {"max_num_batched_tokens": 2048, "max_num_seqs": 256}
HOPPER_SERVE = {"max_num_batched_tokens": 8192, "max_num_seqs": 1024}


@dataclass(frozen=True)
class Case:
    """One published run: the workload and the figure (`metric` of SimResult.summary) it reported."""

    name: str
    gpu: str
    model: str
    num_requests: int
    prompt_len: int
    output_len: int
    metric: str
    published: float
    max_concurrency: int | None = None
    fitted: bool = True  # False: a check the coefficients were not fitted to


CASES = (
    Case("a100-14b-random-2k", "A100-80GB", "qwen3-14b", 500, 2000, 100, "duration_s", 175.66),
    Case("a100-14b-random-32k", "A100-80GB", "qwen3-14b", 100, 32000, 100, "duration_s", 724.56),
    Case("a100-14b-random-4k", "A100-80GB", "qwen3-14b", 500, 4000, 200, "duration_s", 407.05),
    Case("a100-14b-random-128", "A100-80GB", "qwen3-14b", 1000, 128, 4, "duration_s", 26.79, fitted=False),
    Case("h100-14b-random-2k", "H100-80GB", "qwen3-14b", 500, 2000, 100, "duration_s", 98.91),
    Case("h100-14b-random-32k", "H100-80GB", "qwen3-14b", 100, 32000, 100, "duration_s", 386.80),
    Case("h100-14b-random-4k", "H100-80GB", "qwen3-14b", 500, 4000, 200, "duration_s", 227.57),
    Case("h100-14b-random-128", "H100-80GB", "qwen3-14b", 1000, 128, 4, "duration_s", 22.72, fitted=False),
    # ShareGPT, 1000 prompts at once (217.4 input and 201.6 output tokens on average): the highest
    # output tokens in one second ("Peak output token throughput"), when the most requests decode
    Case("a100-14b-sharegpt-peak", "A100-80GB", "qwen3-14b", 1000, 217, 202, "peak_output_throughput", 4616.0),
    Case("h100-14b-sharegpt-peak", "H100-80GB", "qwen3-14b", 1000, 217, 202, "peak_output_throughput", 8890.0),
    # ShareGPT (100 prompts, 232.6 input and 220.6 output tokens on average) at concurrency 4
    Case("h100-8b-sharegpt-c4", "H100-80GB", "qwen3-8b", 100, 233, 221, "median_tpot_s", 0.00740, 4),
    Case("h100-8b-sharegpt-c4-ttft", "H100-80GB", "qwen3-8b", 100, 233, 221, "mean_ttft_s", 0.06400, 4, False),
)


def run_case(case: Case, seed: int = 0) -> float:
    """The emulator's value of the case's metric."""
    serve = A100_SERVE if case.gpu.startswith("A100") else HOPPER_SERVE
    config = EngineConfig(max_model_len=40960, **serve)
    engine = Engine.build(case.gpu, case.model, config, random.Random(seed))
    arrivals = random_arrivals(
        engine, case.num_requests, prompt_len=case.prompt_len, output_len=case.output_len, seed=seed
    )
    result = simulate(engine, arrivals, max_concurrency=case.max_concurrency)
    return result.summary()[case.metric]


def report() -> list[tuple[Case, float, float]]:
    """(case, emulated, relative error) for every case."""
    rows = []
    for case in CASES:
        value = run_case(case)
        rows.append((case, value, value / case.published - 1.0))
    return rows


if __name__ == "__main__":
    for case, value, error in report():
        mark = "fit " if case.fitted else "check"
        figures = f"published {case.published:10.4f} emulated {value:10.4f} {error:+.1%}"
        print(f"{mark} {case.name:28s} {case.metric:22s} {figures}")
