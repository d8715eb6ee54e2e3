"""`flotilla report RUN_DIR`: render a run directory's report (report.html, report.md, plots/*.png).

Register it in flotilla/cli/__init__.py:

    from flotilla.reports.cli import report
    app.command()(report)

matplotlib is imported inside the command, so `flotilla --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    run_dir: Annotated[
        Path,
        typer.Argument(metavar="RUN_DIR", help="A run directory: the folder holding run.json.", show_default=False),
    ],
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: html, md.")] = "html,md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder to write into (default: RUN_DIR).")
    ] = None,
) -> None:
    """Render a run's report: report.html and report.md with plots/*.png (works while the run is going)."""
    from flotilla.reports.report import parse_formats, write_report
    from flotilla.runs import RunFormatError

    try:
        chosen = parse_formats(formats)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not run_dir.is_dir():
        typer.echo(f"error: {run_dir}: not a directory; give the directory a run wrote", err=True)
        raise typer.Exit(2)
    try:
        files = write_report(run_dir, output, chosen)
    except RunFormatError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot write the report: {exc}", err=True)
        raise typer.Exit(1) from None
    for path in files.reports:
        typer.echo(f"wrote {path}")
    if files.plots:
        names = ", ".join(p.name for p in files.plots)
        typer.echo(f"plots in {files.plots[0].parent}: {names}")
    else:
        typer.echo("no plots: the run has no jobs, queue samples, requests or replica samples yet")
