"""The report's plots: PNGs drawn with matplotlib on the Agg canvas.

Figures are built with matplotlib's object API (`Figure` on a `FigureCanvasAgg`), never through pyplot, so
no global backend is switched and no figure stays registered after it is saved. Every plot function takes
records and a path, writes one PNG and returns True, or returns False (writing nothing) without data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from flotilla.reports.stats import GanttBar, endpoint_load, is_ok, item_groups
from flotilla.runs import QueueSample, ReplicaSample, RequestRecord

DPI = 100
MAX_GROUPS = 6  # TTFT series per item group up to this many groups; one series beyond
MAX_LEGEND = 12
PALETTE = [f"C{i}" for i in range(10)]
TIME_AXIS = "seconds since the run's start"


def text(s: str, limit: int = 40) -> str:
    """A run's string made safe for matplotlib: `$` would start mathtext; long names are cut."""
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    fig.clear()
    return True


def _legend(ax: Axes, outside: bool = False) -> None:
    """At most MAX_LEGEND entries; `outside` puts the legend right of the axes, clear of the lines."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if outside:
        ax.legend(
            handles[:MAX_LEGEND], labels[:MAX_LEGEND], fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1)
        )
    else:
        ax.legend(handles[:MAX_LEGEND], labels[:MAX_LEGEND], fontsize="small", loc="best")


def job_timeline(bars: Sequence[GanttBar], path: Path) -> bool:
    """Gantt chart: a row per (node, GPU, slice) lane and sub-row; a light segment for the queue wait, a solid
    bar for the run, coloured by queue; failed jobs hatched with a red edge; unfinished runs dashed."""
    if not bars:
        return False
    rows = list(dict.fromkeys((b.lane, b.row) for b in bars))  # bars come sorted by lane, then sub-row
    y_of = {lr: i for i, lr in enumerate(rows)}
    queues = sorted({b.job.queue or b.job.cluster_queue or "(no queue)" for b in bars})
    colour = {q: PALETTE[i % len(PALETTE)] for i, q in enumerate(queues)}
    fig = _figure(10, min(2.0 + 0.4 * len(rows), 30))
    ax = fig.add_subplot()
    for b in bars:
        y = y_of[(b.lane, b.row)]
        c = colour[b.job.queue or b.job.cluster_queue or "(no queue)"]
        wait_end = b.admitted if b.admitted is not None else b.end
        if wait_end > b.created:
            ax.barh(y, wait_end - b.created, left=b.created, height=0.35, color=c, alpha=0.25, linewidth=0)
        if b.run_start is not None and b.end >= b.run_start:
            failed = b.job.status == "failed"
            ax.barh(
                y,
                max(b.end - b.run_start, 0.0),
                left=b.run_start,
                height=0.7,
                color=c,
                edgecolor="red" if failed else ("black" if b.open else c),
                linestyle="--" if b.open else "-",
                linewidth=1.5 if failed or b.open else 0.5,
                hatch="//" if failed else None,
            )
    ax.set_yticks(range(len(rows)), [text(lane) if row == 0 else "" for lane, row in rows], fontsize="small")
    for i in range(1, len(rows)):
        if rows[i][0] != rows[i - 1][0]:
            ax.axhline(i - 0.5, color="0.85", linewidth=0.8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first lane on top
    ax.set_xlim(left=0)
    ax.set_xlabel(TIME_AXIS)
    ax.set_title("Job timeline per GPU / slice")
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)
    handles = [Patch(color=colour[q], label=text(q)) for q in queues[: MAX_LEGEND - 3]]
    handles.append(Patch(color="0.5", alpha=0.25, label="queue wait"))
    if any(b.job.status == "failed" for b in bars):
        handles.append(Patch(facecolor="white", edgecolor="red", hatch="//", label="failed"))
    if any(b.open for b in bars):
        handles.append(Patch(facecolor="white", edgecolor="black", linestyle="--", label="not finished"))
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def queue_length(samples: Sequence[QueueSample], path: Path) -> bool:
    """Pending (solid) and admitted (dashed) workloads per ClusterQueue over time, as step lines."""
    if not samples:
        return False
    by_queue: dict[str, list[QueueSample]] = {}
    for s in sorted(samples, key=lambda s: s.t):
        by_queue.setdefault(s.queue, []).append(s)
    fig = _figure(10, 4)
    ax = fig.add_subplot()
    for i, (queue, series) in enumerate(sorted(by_queue.items())):
        c = PALETTE[i % len(PALETTE)]
        ts = [s.t for s in series]
        ax.step(ts, [s.pending for s in series], where="post", color=c, label=f"{text(queue)} pending")
        ax.step(
            ts, [s.admitted for s in series], where="post", color=c, linestyle="--", label=f"{text(queue)} admitted"
        )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.set_xlabel(TIME_AXIS)
    ax.set_ylabel("workloads")
    ax.set_title("Queue length per ClusterQueue")
    ax.grid(color="0.9")
    _legend(ax, outside=True)
    return _save(fig, path)


def ttft_distribution(requests: Sequence[RequestRecord], path: Path) -> bool:
    """TTFT of successful requests: histogram (left) and empirical CDF (right), a series per item group when
    there are 2..MAX_GROUPS of them (e.g. one per benchmark), else one series."""
    ok = [r for r in requests if is_ok(r) and r.ttft is not None]
    if not ok:
        return False
    groups = item_groups(ok, MAX_GROUPS) or {"all requests": ok}
    series = {name: sorted(r.ttft for r in rs if r.ttft is not None) for name, rs in groups.items()}
    every = [x for xs in series.values() for x in xs]
    every_max = max(every)
    bins = np.histogram_bin_edges(every, bins=min(40, max(5, int(len(every) ** 0.5))))
    fig = _figure(11, 4)
    hist, cdf = fig.subplots(1, 2)
    single = len(series) == 1
    for i, (name, xs) in enumerate(series.items()):
        c = PALETTE[i % len(PALETTE)]
        label = text(name or "(no item)")
        hist.hist(xs, bins=bins, color=c, alpha=0.8 if single else 0.35, histtype="stepfilled", label=label)
        # from 0 at the smallest value up to 1 at the largest, held to the right edge of every series
        ys = [0.0, *(np.arange(1, len(xs) + 1) / len(xs)), 1.0]
        cdf.step([xs[0], *xs, every_max], ys, where="post", color=c, label=f"{label} (n={len(xs)})")
    hist.set_xlabel("TTFT (s)")
    hist.set_ylabel("requests")
    hist.set_title("TTFT histogram")
    for q in (0.5, 0.9, 0.99):
        cdf.axhline(q, color="0.8", linewidth=0.8, linestyle=":")
    cdf.set_ylim(0, 1.02)
    cdf.set_xlabel("TTFT (s)")
    cdf.set_ylabel("fraction of requests at or below")
    cdf.set_title("TTFT empirical CDF")
    for ax in (hist, cdf):
        ax.grid(color="0.9")
    _legend(cdf)
    return _save(fig, path)


def replica_load(requests: Sequence[RequestRecord], replicas: Sequence[ReplicaSample], path: Path) -> bool:
    """Requests per endpoint (bars: successful, errors stacked in red) and, from replicas.jsonl, each endpoint's
    waiting and running requests and KV-cache usage over time."""
    if not requests and not replicas:
        return False
    fig = _figure(11, 7 if replicas else 4)
    axes = fig.subplots(2, 2).flatten() if replicas else [fig.add_subplot()]
    bars = axes[0]
    load = endpoint_load(requests)
    if load:
        xs = range(len(load))
        ok = [e.requests - e.errors for e in load]
        bars.bar(xs, ok, color="C0", label="successful")
        bars.bar(xs, [e.errors for e in load], bottom=ok, color="C3", label="errors")
        bars.set_xticks(xs, [text(e.endpoint or "(unknown)", 28) for e in load], rotation=30, ha="right")
        bars.yaxis.set_major_locator(MaxNLocator(integer=True))
        _legend(bars)
    else:
        bars.text(0.5, 0.5, "no requests", ha="center", va="center", transform=bars.transAxes)
    bars.set_ylabel("requests")
    bars.set_title("Requests per endpoint")
    if replicas:
        by_endpoint: dict[str, list[ReplicaSample]] = {}
        for s in sorted(replicas, key=lambda s: s.t):
            by_endpoint.setdefault(s.endpoint, []).append(s)
        gauges = (
            ("waiting", "waiting requests"),
            ("running", "running requests"),
            ("kv_cache_usage", "KV-cache usage"),
        )
        for ax, (field, title) in zip(axes[1:], gauges, strict=True):
            for i, (endpoint, series) in enumerate(sorted(by_endpoint.items())):
                values = [float(getattr(s, field)) for s in series]
                ax.step(
                    [s.t for s in series], values, where="post", color=PALETTE[i % len(PALETTE)], label=text(endpoint)
                )
            ax.set_title(title)
            ax.set_xlabel(TIME_AXIS)
            ax.set_ylim(bottom=0)
            ax.grid(color="0.9")
        axes[3].set_ylabel("fraction of KV blocks in use")
        _legend(axes[1])
    return _save(fig, path)
