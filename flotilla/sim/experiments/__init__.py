"""The study's three comparisons as simulator experiments (`flotilla experiment kueue|das|gaie|all`).

Each experiment module has `run(options: ExperimentOptions) -> ExperimentResult` (base.py). The
registry maps names to modules, imported when run, so `flotilla --help` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from flotilla.sim.experiments.base import ExperimentResult

EXPERIMENTS: dict[str, str] = {
    "kueue": "flotilla.sim.experiments.kueue",  # makespan without/with Kueue (the study: -15%)
    "das": "flotilla.sim.experiments.das",  # mean JCT on whole GPUs/MIG slices (-36%)
    "gaie": "flotilla.sim.experiments.gaie",  # TTFT with round-robin/the endpoint picker (-82%)
}


@dataclass(frozen=True)
class ExperimentOptions:
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    live: bool = False  # also run the scaled-down scenario on the embedded platform (fidelity)
    quick: bool = False  # a smaller scenario (tests, smoke runs); the result says so in `details`


Runner = Callable[[ExperimentOptions], ExperimentResult]


def runner(name: str) -> Runner:
    """The `run` function of experiment `name` (KeyError naming the known ones)."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    module = importlib.import_module(EXPERIMENTS[name])
    return cast("Runner", module.run)
