"""The experiment framework: arms, improvements, the JSON and PNG, the `flotilla experiment` command."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flotilla.cli import app
from flotilla.sim import experiments
from flotilla.sim.experiments import ExperimentOptions
from flotilla.sim.experiments.base import Arm, ExperimentResult, improvement, write_result


def result() -> ExperimentResult:
    return ExperimentResult.from_runs(
        experiment="toy",
        metric="mean_jct_s",
        unit="s",
        baseline=Arm.of("whole GPUs", [100.0, 110.0, 90.0]),
        treatment=Arm.of("MIG slices", [60.0, 70.0, 65.0]),
        study_improvement_pct=36.0,
        study_claim="mean JCT -36%",
        seeds=[1, 2, 3],
        assumptions=["toy numbers"],
    )


def test_arms_and_improvements() -> None:
    arm = Arm.of("a", [1.0, 2.0, 3.0, 4.0])
    assert (arm.mean, arm.p50, arm.min, arm.max) == (2.5, 2.5, 1.0, 4.0)
    assert math.isclose(arm.stdev, 1.2909944, rel_tol=1e-6)
    assert Arm.of("one", [5.0]).stdev == 0.0
    assert improvement(100.0, 85.0) == 15.0 and improvement(100.0, 85.0, lower_is_better=False) == -15.0
    r = result()
    assert math.isclose(r.improvement_pct, 35.0) and r.improvement_pct_per_seed == pytest.approx(
        [40.0, 36.3636, 27.7778], rel=1e-4
    )
    with pytest.raises(ValueError, match="one value per seed"):
        ExperimentResult.from_runs(
            experiment="x",
            metric="m",
            unit="s",
            baseline=Arm.of("a", [1.0]),
            treatment=Arm.of("b", [1.0, 2.0]),
            study_improvement_pct=1.0,
            seeds=[1],
            assumptions=[],
        )


def test_the_json_carries_what_the_issue_asks_and_the_png_is_drawn(tmp_path: Path) -> None:
    json_path, png_path = write_result(result(), tmp_path)
    doc = json.loads(json_path.read_text())
    for key in ("experiment", "metric", "baseline", "treatment", "improvement_pct", "study_improvement_pct"):
        assert key in doc
    assert doc["baseline"]["values"] == [100.0, 110.0, 90.0] and doc["assumptions"] == ["toy numbers"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 5000


def test_the_command_runs_an_experiment_and_writes_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("toy_experiment")
    seen: list[ExperimentOptions] = []

    def run(options: ExperimentOptions) -> ExperimentResult:
        seen.append(options)
        return result()

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "toy_experiment", module)
    monkeypatch.setattr(experiments, "EXPERIMENTS", {"toy": "toy_experiment"})
    from flotilla.sim import cli as sim_cli

    monkeypatch.setattr(sim_cli, "EXPERIMENTS", {"toy": "toy_experiment"})
    outcome = CliRunner().invoke(app, ["experiment", "toy", "--out", str(tmp_path), "--seeds", "3", "--quick"])
    assert outcome.exit_code == 0, outcome.output
    assert seen == [ExperimentOptions(seeds=[1, 2, 3], live=False, quick=True)]
    assert "+35.0%" in outcome.output and "study: +36%" in outcome.output and "toy numbers" in outcome.output
    assert (tmp_path / "toy.json").is_file() and (tmp_path / "toy.png").is_file()
    assert json.loads((tmp_path / "toy.json").read_text())["wall_seconds"] >= 0
    outcome = CliRunner().invoke(app, ["experiment", "nope"])
    assert outcome.exit_code == 2 and "unknown experiment 'nope'" in outcome.output
