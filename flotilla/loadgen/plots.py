"""Plots of a serve run (matplotlib, Agg backend; PNGs under RUN_DIR/plots/).

- ttft.png: the TTFT distribution of each benchmark, as an empirical CDF (a histogram when there is
  one benchmark, beside its CDF);
- latency_vs_rate.png (runs of two or more benchmarks, e.g. sweeps): TTFT p50/p90 and e2e p50 against
  the achieved request rate, one point per benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flotilla.loadgen.stats import succeeded
from flotilla.runs.records import RequestRecord


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ttft_plot(records_by_benchmark: dict[str, Sequence[RequestRecord]], path: Path) -> Path | None:
    """ECDF of TTFT per benchmark (plus a histogram for a single benchmark); None when no TTFT at all."""
    series = {
        name: sorted(t for r in records if succeeded(r) and (t := r.ttft) is not None)
        for name, records in records_by_benchmark.items()
    }
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    plt = _pyplot()
    single = len(series) == 1
    fig, axes = plt.subplots(1, 2 if single else 1, figsize=(11 if single else 7, 4.5), squeeze=False)
    cdf = axes[0][-1]
    for name, values in series.items():
        n = len(values)
        cdf.step(values, [(i + 1) / n for i in range(n)], where="post", label=f"{name} (n={n})")
    cdf.set(xlabel="TTFT (s)", ylabel="fraction of requests", title="TTFT, cumulative distribution", ylim=(0, 1.02))
    cdf.grid(alpha=0.3)
    cdf.legend(fontsize="small", loc="lower right")
    if single:
        ((name, values),) = series.items()
        hist = axes[0][0]
        hist.hist(values, bins=min(50, max(5, len(values) // 4)), color="tab:blue", alpha=0.8)
        hist.set(xlabel="TTFT (s)", ylabel="requests", title=f"TTFT histogram: {name}")
        hist.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_vs_rate_plot(benchmarks: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """TTFT p50, TTFT p90 and e2e p50 against achieved req/s (benchmark summaries from stats)."""
    points = sorted(
        (b for b in benchmarks if b["ttft"]["p50"] is not None),
        key=lambda b: float(b["rate"]["achieved"]),
    )
    if len(points) < 2:
        return None
    plt = _pyplot()
    rates = [b["rate"]["achieved"] for b in points]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(rates, [b["ttft"]["p50"] for b in points], "o-", label="TTFT p50")
    ax.plot(rates, [b["ttft"]["p90"] for b in points], "s--", label="TTFT p90")
    ax.plot(rates, [b["e2e"]["p50"] for b in points], "^-", label="e2e latency p50")
    for b, x in zip(points, rates, strict=True):
        ax.annotate(b["name"], (x, b["e2e"]["p50"]), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="achieved request rate (req/s)", ylabel="latency (s)", title="Latency vs request rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def serve_plots(
    run_dir: Path, records_by_benchmark: dict[str, Sequence[RequestRecord]], benchmarks: Sequence[dict[str, Any]]
) -> list[Path]:
    """Every plot of a serve run that has data; the paths written."""
    plots = run_dir / "plots"
    written = [
        ttft_plot(records_by_benchmark, plots / "ttft.png"),
        latency_vs_rate_plot(benchmarks, plots / "latency_vs_rate.png"),
    ]
    return [p for p in written if p is not None]
