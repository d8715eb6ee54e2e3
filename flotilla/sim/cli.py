"""`flotilla experiment kueue|das|gaie|all`: the study's three comparisons in the simulator.

    flotilla experiment all --out results/ --seeds 5        # every experiment, 5 seeds each
    flotilla experiment das --live                           # plus the scaled-down run on the embedded platform

Each writes DIR/<experiment>.json and DIR/<experiment>.png and prints both arms (mean and spread
over the seeds), the improvement, the study's figure and every assumption (docs/simulator.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from flotilla.sim.experiments import EXPERIMENTS


def experiment(
    name: Annotated[str, typer.Argument(help="kueue, das, gaie or all.")],
    out: Annotated[Path, typer.Option(help="Folder for <experiment>.json and .png.")] = Path("experiments"),
    seeds: Annotated[int, typer.Option(help="Seeds per arm (1, 2, ... N).", min=1, max=100)] = 5,
    live: Annotated[
        bool, typer.Option(help="Also run the scaled-down scenario on the embedded platform (fidelity).")
    ] = False,
    quick: Annotated[bool, typer.Option(help="A smaller scenario (a smoke run; the JSON says so).")] = False,
) -> None:
    """Run the study's comparisons in the discrete-event simulator, on the same policies as the platform."""
    from rich.console import Console

    from flotilla.sim.experiments import ExperimentOptions, runner
    from flotilla.sim.experiments.base import print_result, write_result

    console = Console()
    names = list(EXPERIMENTS) if name == "all" else [name]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        typer.echo(f"error: unknown experiment {unknown[0]!r}; known: {', '.join(EXPERIMENTS)}, all", err=True)
        raise typer.Exit(2)
    options = ExperimentOptions(seeds=list(range(1, seeds + 1)), live=live, quick=quick)
    for each in names:
        console.rule(f"experiment {each}")
        started = time.monotonic()
        with console.status(f"running {each} ({seeds} seeds{', live' if live else ''})"):
            result = runner(each)(options)
        result.wall_seconds = time.monotonic() - started
        print_result(result, console)
        json_path, png_path = write_result(result, out)
        console.print(f"wrote {json_path} and {png_path} in {result.wall_seconds:.1f} s")
