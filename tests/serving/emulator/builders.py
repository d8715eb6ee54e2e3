"""Small builders for emulator tests: engines with chosen settings, prompts, and a run-to-completion loop."""

from __future__ import annotations

import random
from typing import Any

from flotilla.serving.emulator.engine import Engine, EngineConfig, StepResult
from flotilla.serving.emulator.simulate import Arrival, SimResult, simulate


def engine(gpu: str = "A100-80GB", model: str = "qwen3-8b", seed: int = 0, **config: Any) -> Engine:
    """An engine with EngineConfig(**config) (e.g. num_gpu_blocks_override=40, max_model_len=256)."""
    return Engine.build(gpu, model, EngineConfig(**config), random.Random(seed))


def prompt(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(256, 150_000) for _ in range(n)]


def arrivals(*specs: tuple[float, list[int], int], lora: str | None = None) -> list[Arrival]:
    """(time, prompt, output tokens) triples -> Arrivals r0, r1, ... that stop at exactly that length."""
    return [Arrival(t, f"r{i}", p, max_tokens=n, output_len=n, lora=lora) for i, (t, p, n) in enumerate(specs)]


def run(e: Engine, items: list[Arrival], **kwargs: Any) -> tuple[SimResult, list[StepResult]]:
    """Simulate to completion; also return every step."""
    steps: list[StepResult] = []
    result = simulate(e, items, on_step=steps.append, **kwargs)
    return result, steps


def by_id(result: SimResult) -> dict[str, Any]:
    return {r.request_id: r for r in result.finished}
