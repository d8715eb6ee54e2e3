"""Render a run directory's report: read every record first, draw the plots, write report.html and report.md.

Imports matplotlib (through plots.py): the CLI imports this module inside its command only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flotilla import __version__
from flotilla.reports import plots, stats
from flotilla.reports.document import Document
from flotilla.reports.html import render_html
from flotilla.reports.markdown import render_markdown
from flotilla.reports.rundata import RunData, load_run
from flotilla.reports.sections import build_sections
from flotilla.runs.records import atomic_write

FORMATS = ("html", "md")
PLOTS_DIR = "plots"
PLOT_NAMES = ("job_timeline", "queue_length", "ttft_distribution", "replica_load")
RENDERERS: dict[str, tuple[str, Callable[[Document], str]]] = {
    "html": ("report.html", render_html),
    "md": ("report.md", render_markdown),
}


@dataclass(frozen=True)
class ReportFiles:
    reports: list[Path]  # report.html and/or report.md, in the order asked
    plots: list[Path]  # the PNGs the reports link to


def parse_formats(value: str) -> list[str]:
    """ "html,md" -> ["html", "md"]; raises ValueError naming a format that is not one of FORMATS."""
    aliases = {"markdown": "md", "htm": "html"}
    names = list(dict.fromkeys(aliases.get(n, n) for n in (f.strip().lower() for f in value.split(",")) if n))
    unknown = [n for n in names if n not in RENDERERS]
    if unknown or not names:
        raise ValueError(f"--format {value!r}: expected a comma-separated list of {', '.join(FORMATS)}")
    return names


def draw_plots(run: RunData, plots_dir: Path) -> dict[str, str]:
    """Draw every plot the run has data for into `plots_dir`; remove a stale PNG of a plot that has none now.
    Returns plot name -> path relative to the report ("plots/NAME.png")."""
    bars = stats.gantt_bars(run.jobs, stats.horizon(run.jobs, run.queue, run.requests, run.replicas))
    drawers: dict[str, Callable[[Path], bool]] = {
        "job_timeline": lambda p: plots.job_timeline(bars, p),
        "queue_length": lambda p: plots.queue_length(run.queue, p),
        "ttft_distribution": lambda p: plots.ttft_distribution(run.requests, p),
        "replica_load": lambda p: plots.replica_load(run.requests, run.replicas, p),
    }
    drawn: dict[str, str] = {}
    for name in PLOT_NAMES:
        path = plots_dir / f"{name}.png"
        if drawers[name](path):
            drawn[name] = f"{PLOTS_DIR}/{name}.png"
        else:
            path.unlink(missing_ok=True)
    return drawn


def build_document(run: RunData, plot_paths: dict[str, str], rendered_at: str) -> Document:
    return Document(
        title=f"Flotilla run report: {run.info.name}",
        sections=build_sections(run, plot_paths),
        footer=f"Rendered at {rendered_at} by flotilla {__version__} from {run.path}.",
    )


def write_report(
    run_dir: Path,
    output: Path | None = None,
    formats: Sequence[str] = FORMATS,
    rendered_at: str | None = None,
) -> ReportFiles:
    """Render the run at `run_dir` into `output` (default: the run directory): report.html, report.md (as
    `formats` asks) and plots/*.png. Raises RunFormatError before writing anything when the run cannot be read.
    `rendered_at` is the footer's time (default: now, UTC); everything else depends on the run alone."""
    run = load_run(run_dir)
    out = output if output is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    plot_paths = draw_plots(run, out / PLOTS_DIR)
    when = rendered_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = build_document(run, plot_paths, when)
    written = []
    for fmt in formats:
        name, render = RENDERERS[fmt]
        written.append(_write(out / name, render(doc)))
    return ReportFiles(reports=written, plots=[out / p for p in plot_paths.values()])


def _write(path: Path, text: str) -> Path:
    """Replace `path` atomically, so a reader (a browser reloading) never sees half a report."""
    atomic_write(path, text)
    return path
