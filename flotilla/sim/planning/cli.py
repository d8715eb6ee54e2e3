"""`flotilla simulate CLUSTER.yaml WORKLOAD.yaml`: plan a cluster before buying or reconfiguring it.

Prints the cluster's utilization, GPU faults and evictions, per-tenant queueing delay, job completion
times and fair share, and each online service's SLO attainment; writes DIR/plan.json and PNG plots
(GPUs in use per tenant over time, queue waits per tenant), and with `--records` the jobs as a run
directory that `flotilla report` renders.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from flotilla.sim.planning.run import PlanResult


def simulate(
    cluster_file: Annotated[Path, typer.Argument(metavar="CLUSTER.yaml", help="The nodes, GPUs and health rates.")],
    workload_file: Annotated[Path, typer.Argument(metavar="WORKLOAD.yaml", help="Tenants' jobs and online services.")],
    out: Annotated[Path, typer.Option(help="Folder for plan.json and the plots.")] = Path("plan"),
    slo_window: Annotated[
        float, typer.Option("--slo-window", help="Simulated seconds of each service's traffic for its SLO.")
    ] = 60.0,
    records: Annotated[bool, typer.Option(help="Also write every job as a run directory (OUT/run).")] = False,
) -> None:
    """Simulate a day (or any span) of a multi-tenant GPU cluster: utilization, queueing, fair share, SLOs."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flotilla.sim.planning.run import plan
    from flotilla.sim.planning.spec import SpecError, check_fits, load_cluster, load_workload

    console = Console(width=max(140, Console().width))
    try:
        cluster, workload = load_cluster(cluster_file), load_workload(workload_file)
        check_fits(cluster, workload, str(workload_file))
    except SpecError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    started = time.monotonic()
    with Progress(
        TextColumn("simulating"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("sim", total=1.0)
        result = plan(
            cluster,
            workload,
            progress=lambda f: bar.update(task, completed=f),
            slo_window_s=slo_window,
            keep_records=records,
        )
    wall = time.monotonic() - started
    print_plan(result, console)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "cluster_file": str(cluster_file),
        "workload_file": str(workload_file),
        "wall_s": wall,
        "cluster": result.cluster,
        "tenants": result.tenants,
        "services": result.services,
        "timeline": result.timeline,
        "assumptions": result.assumptions,
    }
    (out / "plan.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    plots = draw_plan(result, out)
    if records:
        write_records(result, out / "run", cluster_file, workload_file)
    console.print(f"wrote {out / 'plan.json'} and {', '.join(p.name for p in plots)} in {wall:.1f} s")


def _f(value: Any, unit: str = "", digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def print_plan(result: PlanResult, console: Any) -> None:
    from rich.table import Table

    c = result.cluster
    console.print(
        f"{c['gpus']:,} GPUs ({c['service_gpus']} held by services), {c['hours']:g} h: {c['jobs']:,} jobs, "
        f"{c['jobs_finished']:,} finished; utilization {c['utilization']:.1%} (batch {c['batch_utilization']:.1%}); "
        f"{c['gpu_failures']} GPU faults, {c['gpu_hours_down']:.0f} GPU-hours down, "
        f"{c['health_evictions']} pods evicted by health checks; {c['events']:,} events"
    )
    table = Table(title="tenants")
    columns = (
        "tenant",
        "quota",
        "prio",
        "jobs",
        "done",
        "waiting",
        "restarts",
        "wait p50",
        "wait p90",
        "JCT p50",
        "JCT p90",
        "GPUs avg",
        "use/quota share",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for name, t in result.tenants.items():
        table.add_row(
            name,
            str(t["nominal_gpus"]),
            str(t["priority"]),
            f"{t['jobs_submitted']:,}",
            f"{t['jobs_finished']:,}",
            f"{t['jobs_waiting_at_end']:,}",
            f"{t['restarts']:,}",
            _f(t["queue_wait_s"]["p50"], " s"),
            _f(t["queue_wait_s"]["p90"], " s"),
            _f(t["jct_s"]["p50"], " s"),
            _f(t["jct_s"]["p90"], " s"),
            _f(t["mean_gpus_in_use"], "", 1),
            _f(t["fair_share_ratio"], "", 2),
        )
    console.print(table)
    if result.services:
        table = Table(title="online services (SLO: TTFT)")
        for column in ("service", "replicas", "requests", "TTFT p50", "TTFT p99", "SLO", "attainment", "keeps up"):
            table.add_column(column, justify="left" if column == "service" else "right")
        for name, s in result.services.items():
            table.add_row(
                name,
                str(s["replicas"]),
                f"{s['requests']:,}",
                _f(s["ttft_s"]["p50"], " s", 3),
                _f(s["ttft_s"]["p99"], " s", 3),
                f"{s['slo_ttft_s']:g} s",
                "-" if s["slo_attainment"] is None else f"{s['slo_attainment']:.1%}",
                "yes" if s["keeps_up"] else "no",
            )
        console.print(table)
    console.print("assumptions:")
    for line in result.assumptions:
        console.print(f"  - {line}", markup=False, highlight=False)


def draw_plan(result: PlanResult, out: Path) -> list[Path]:
    """plan_gpus.png (GPUs in use per tenant over time, stacked, and GPUs down) and plan_waits.png (queue
    wait percentiles per tenant)."""
    from matplotlib.figure import Figure

    paths = []
    tenants = list(result.tenants)
    hours = [s["t"] / 3600 for s in result.timeline]
    fig = Figure(figsize=(9, 4), dpi=100)
    ax = fig.add_subplot()
    if hours and tenants:
        stacks = [[s["gpus_in_use"].get(t, 0) for s in result.timeline] for t in tenants]
        ax.stackplot(hours, stacks, labels=tenants, alpha=0.8)
        ax.plot(hours, [s["gpus_down"] for s in result.timeline], color="red", label="GPUs down")
    ax.axhline(
        result.cluster["gpus"] - result.cluster["service_gpus"], color="black", linestyle="--", label="batch GPUs"
    )
    ax.set_xlabel("hours")
    ax.set_ylabel("GPUs")
    ax.set_title("GPUs in use per tenant")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(out / "plan_gpus.png")
    fig.savefig(paths[-1], bbox_inches="tight")
    fig.clear()
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    for i, name in enumerate(tenants):
        w = result.tenants[name]["queue_wait_s"]
        values = [(w.get(k) or 0.0) / 60 for k in ("p50", "p90", "p99")]
        ax.bar([i - 0.25, i, i + 0.25], values, width=0.25, color=["#9ecae1", "#4292c6", "#08519c"])
    ax.set_xticks(range(len(tenants)), tenants)
    ax.set_ylabel("queue wait (minutes): p50, p90, p99")
    ax.set_title("queueing delay per tenant")
    ax.grid(axis="y", alpha=0.3)
    paths.append(out / "plan_waits.png")
    fig.savefig(paths[-1], bbox_inches="tight")
    fig.clear()
    return paths


def write_records(result: PlanResult, path: Path, cluster_file: Path, workload_file: Path) -> None:
    """The simulated jobs as a run directory (`flotilla report` renders it)."""
    from flotilla.runs import JobRecord, RunDir, RunInfo, utc_now

    run = RunDir(path)
    config = {"simulated": True, "cluster": str(cluster_file), "workload": str(workload_file)}
    run.start(
        RunInfo(kind="simulation", name="flotilla simulate", started_at=utc_now(), stages=["batch"], config=config)
    )
    run.write_records(result.records, JobRecord)
    run.write_summary({"cluster": result.cluster, "tenants": result.tenants, "services": result.services})
    run.finish("succeeded", f"{result.cluster['jobs']} jobs simulated")
