"""What every experiment of `flotilla experiment` returns, and how it is printed, saved and plotted.

An experiment runs both arms of one of the study's comparisons (without/with Kueue; whole GPUs/MIG
slices; round-robin/endpoint picker) over several seeds and reports one metric per arm:

    result = ExperimentResult.from_runs(
        experiment="das", metric="mean_jct_s", unit="s", study_improvement_pct=36.0,
        baseline=Arm.of("whole GPUs", [1710.2, 1698.0, ...]),      # one value per seed
        treatment=Arm.of("MIG slices", [1102.5, 1120.3, ...]),
        seeds=[1, 2, 3], assumptions=["...", ...], details={...})
    print_result(result); write_result(result, out_dir)           # DIR/das.json and DIR/das.png

`improvement_pct` is (baseline mean - treatment mean) / baseline mean x 100 for a metric where lower
is better (a makespan, a JCT, a TTFT), the other way round otherwise. A `--live` run adds `live`:
the same comparison, scaled down, on the embedded platform, beside the simulator's figures for the
same scaled-down scenario (fidelity).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flotilla.runs.stats import finite_json, percentile


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Arm(_Model):
    """One side of a comparison: its name, what it is, and the metric per seed."""

    name: str
    description: str = ""
    values: list[float]
    mean: float
    stdev: float  # sample standard deviation over the seeds (0 for one seed)
    min: float
    max: float
    p50: float

    @classmethod
    def of(cls, name: str, values: Sequence[float], description: str = "") -> Arm:
        if not values:
            raise ValueError(f"arm {name!r}: no values")
        xs = [float(v) for v in values]
        return cls(
            name=name,
            description=description,
            values=xs,
            mean=statistics.fmean(xs),
            stdev=statistics.stdev(xs) if len(xs) > 1 else 0.0,
            min=min(xs),
            max=max(xs),
            p50=percentile(xs, 50),
        )


class Fidelity(_Model):
    """A `--live` run: the scaled-down scenario on the embedded platform and in the simulator."""

    scenario: str  # what was scaled down, and how
    metrics: dict[str, dict[str, float]]  # metric -> {"simulated": x, "live": y, "error_pct": e}
    notes: list[str] = Field(default_factory=list)


class ExperimentResult(_Model):
    experiment: str
    metric: str
    unit: str
    lower_is_better: bool = True
    baseline: Arm
    treatment: Arm
    improvement_pct: float
    improvement_pct_per_seed: list[float]
    study_improvement_pct: float
    study_claim: str = ""  # the study's sentence, e.g. "mean job completion time -36%"
    seeds: list[int]
    assumptions: list[str]
    details: dict[str, Any] = Field(default_factory=dict)  # other metrics, per-arm breakdowns, the setup
    live: Fidelity | None = None
    wall_seconds: float | None = None

    @classmethod
    def from_runs(
        cls,
        *,
        experiment: str,
        metric: str,
        unit: str,
        baseline: Arm,
        treatment: Arm,
        study_improvement_pct: float,
        seeds: Sequence[int],
        assumptions: Sequence[str],
        study_claim: str = "",
        lower_is_better: bool = True,
        details: dict[str, Any] | None = None,
    ) -> ExperimentResult:
        if len(baseline.values) != len(treatment.values):
            raise ValueError("both arms need one value per seed")
        per_seed = [improvement(b, t, lower_is_better) for b, t in zip(baseline.values, treatment.values, strict=True)]
        return cls(
            experiment=experiment,
            metric=metric,
            unit=unit,
            lower_is_better=lower_is_better,
            baseline=baseline,
            treatment=treatment,
            improvement_pct=improvement(baseline.mean, treatment.mean, lower_is_better),
            improvement_pct_per_seed=per_seed,
            study_improvement_pct=study_improvement_pct,
            study_claim=study_claim,
            seeds=list(seeds),
            assumptions=list(assumptions),
            details=details or {},
        )


def improvement(baseline: float, treatment: float, lower_is_better: bool = True) -> float:
    """Percent improvement of treatment over baseline (positive: better)."""
    if baseline == 0 or math.isnan(baseline):
        return 0.0 if treatment == baseline else math.nan
    change = (baseline - treatment) / abs(baseline) * 100.0
    return change if lower_is_better else -change


def fidelity_error(simulated: float, live: float) -> float:
    """|simulated - live| / live x 100."""
    return abs(simulated - live) / abs(live) * 100.0 if live else math.nan


def print_result(result: ExperimentResult, console: Any | None = None) -> None:
    """The experiment as a table: both arms (mean, spread over seeds), the improvement, the study's figure."""
    from rich.console import Console
    from rich.table import Table

    out = console or Console()
    unit = result.unit
    table = Table(title=f"experiment {result.experiment}: {result.metric} ({len(result.seeds)} seeds)")
    for column in ("arm", "mean", "stdev", "min", "max"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for arm in (result.baseline, result.treatment):
        table.add_row(arm.name, f"{arm.mean:.3g} {unit}", f"{arm.stdev:.2g}", f"{arm.min:.3g}", f"{arm.max:.3g}")
    out.print(table)
    spread = result.improvement_pct_per_seed
    claim = f" ({result.study_claim})" if result.study_claim else ""
    out.print(
        f"improvement {result.improvement_pct:+.1f}% (per seed {min(spread):+.1f}% .. {max(spread):+.1f}%); "
        f"the study: {result.study_improvement_pct:+.0f}%{claim}"
    )
    if result.live is not None:
        table = Table(title=f"fidelity (--live): {result.live.scenario}")
        for column in ("metric", "simulated", "live", "error"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for name, m in result.live.metrics.items():
            table.add_row(name, f"{m['simulated']:.3g}", f"{m['live']:.3g}", f"{m['error_pct']:.1f}%")
        out.print(table)
    out.print("assumptions:")
    for line in result.assumptions:
        out.print(f"  - {line}", markup=False, highlight=False)


def write_result(result: ExperimentResult, out_dir: Path) -> tuple[Path, Path]:
    """DIR/<experiment>.json and DIR/<experiment>.png (both arms per seed, means, the study's figure)."""
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{result.experiment}.json"
    json_path.write_text(json.dumps(finite_json(result.model_dump()), indent=2) + "\n")
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    arms = (result.baseline, result.treatment)
    ax.bar([0, 1], [a.mean for a in arms], yerr=[a.stdev for a in arms], color=["#9aa5b1", "#2b7bba"], capsize=6)
    for i, arm in enumerate(arms):
        ax.scatter([i] * len(arm.values), arm.values, color="black", s=12, zorder=3)
    ax.set_xticks([0, 1], [a.name for a in arms])
    ax.set_ylabel(f"{result.metric} ({result.unit})")
    ax.set_title(
        f"{result.experiment}: {result.improvement_pct:+.1f}% (study {result.study_improvement_pct:+.0f}%), "
        f"{len(result.seeds)} seeds"
    )
    ax.grid(axis="y", alpha=0.3)
    png_path = out_dir / f"{result.experiment}.png"
    fig.savefig(png_path, bbox_inches="tight")
    fig.clear()
    return json_path, png_path
