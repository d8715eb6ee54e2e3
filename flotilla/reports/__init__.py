"""Run reports: `flotilla report RUN_DIR` turns a run directory (flotilla/runs/records.py) into report.html,
report.md and PNG plots; see docs/reports.md.

    stats.py      pure aggregations: percentiles, job and request statistics, Gantt lanes
    document.py   the format-neutral report (sections of paragraphs, tables, figures) and cell formatting
    rundata.py    a run directory read in full
    sections.py   the sections built from a run
    plots.py      the PNGs (matplotlib, Agg canvas)
    html.py, markdown.py   the two renderings
    report.py     write_report(): read, draw, render, write
    cli.py        the typer command

Nothing here imports matplotlib at import time but plots.py (and report.py, which uses it).
"""
