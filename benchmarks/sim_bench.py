"""The discrete-event simulator: how fast it runs.

    .venv/bin/python benchmarks/sim_bench.py [--part events|kueue|cluster|experiments|all] [--quick]

(a) events: the engine alone (flotilla/sim/engine.py): 1,000 self-rescheduling processes with
    exponential gaps (seeded) until N events have run; simulated events per second of wall time.
(b) kueue: Kueue's scheduler-performance baseline scenario (15,000 workloads, 10 cohorts x 5
    ClusterQueues, from ../shared/reference/kueue/perf/) through the simulator's admission driver
    and the same admission policy as `flotilla up`, end to end; goal < 15 s of wall time.
(c) cluster: 24 simulated hours of a 4,000-GPU cluster (500 nodes x 8 A100-80GB) with >= 100,000
    batch jobs (flotilla.sim.planning.vela_day), without and with Kueue; goal < 60 s.
(d) experiments: each experiment of `flotilla experiment all` (5 seeds); goal < 2 minutes each.

Prints a table per part and writes benchmarks/results/sim_bench.json (parts not run keep their last
result). Everything runs in this process on the 2-core machine; nothing is compared against another
system except the goals above (the issue's) and, for (b), Kueue's own published wall time for the same
scenario in real time, which is a different kind of run (the table says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flotilla.runs.stats import finite_json

ROOT = Path(__file__).resolve().parents[1]
PERF_DIR = ROOT.parent / "shared" / "reference" / "kueue" / "perf"
RESULTS = ROOT / "benchmarks" / "results" / "sim_bench.json"
GOALS = {"kueue_wall_s": 15.0, "cluster_wall_s": 60.0, "experiment_wall_s": 120.0}
console = Console(width=120)


# -- (a) events per second -------------------------------------------------------------------------------
def run_events(quick: bool) -> dict[str, Any]:
    from flotilla.sim.engine import Engine

    target = 200_000 if quick else 2_000_000
    engine = Engine(seed=1)
    rng = random.Random(1)

    def process(i: int) -> Callable[[], None]:
        def tick() -> None:
            if engine.events_run < target:
                engine.after(rng.expovariate(1.0), tick, priority=i % 3)

        return tick

    for i in range(1000):
        engine.at(rng.random(), process(i))
    started = time.perf_counter()
    engine.run()
    wall = time.perf_counter() - started
    result = {"events": engine.events_run, "wall_s": wall, "events_per_s": engine.events_run / wall}
    table = Table(title="(a) the event engine alone: 1,000 self-rescheduling processes")
    for column in ("events", "wall", "events/s"):
        table.add_column(column, justify="right")
    table.add_row(f"{result['events']:,}", f"{wall:.2f} s", f"{result['events_per_s']:,.0f}")
    console.print(table)
    return result


# -- (b) Kueue's baseline scenario ------------------------------------------------------------------------
def run_kueue(quick: bool) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from queue_kueue_perf import KUEUE_MEANS, run_sim  # the same runner as benchmarks/queue_kueue_perf.py

    result = run_sim(PERF_DIR, "baseline")
    result["goal_wall_s"] = GOALS["kueue_wall_s"]
    result["verdict"] = "PASS" if result["wall_s"] < GOALS["kueue_wall_s"] and not result["unfinished"] else "MISS"
    table = Table(title="(b) Kueue's baseline scenario in the simulator (same admission policy as flotilla up)")
    for column in ("workloads", "cycles", "simulated makespan", "wall", "goal < 15 s", "Kueue real time"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{result['workloads']:,}",
        f"{result['cycles']:,}",
        f"{result['makespan_s']:.0f} s",
        f"{result['wall_s']:.1f} s",
        result["verdict"],
        f"{KUEUE_MEANS['baseline']['wall_s']:.0f} s (a real-time run, not comparable)",
    )
    console.print(table)
    return result


# -- (c) a 4,000-GPU day --------------------------------------------------------------------------------
def run_cluster(quick: bool) -> dict[str, Any]:
    """flotilla.sim.planning.vela_day: 500 nodes x 8 A100-80GB, 24 h, ~100,000 jobs of three tenants, GPU
    faults: once with the jobs straight to the scheduler (no quotas; the goal's row), once with the tenants'
    jobs through Kueue (the same admission policy as `flotilla up`), which costs more per job."""
    from flotilla.sim.planning import vela_day

    rows = []
    nodes = 50 if quick else 500
    runs = [("no queue (kube-scheduler only)", nodes, False), ("Kueue: 3 tenants' ClusterQueues", nodes, True)]
    for label, nodes, kueue in runs:
        started = time.perf_counter()
        outcome = vela_day(nodes=nodes, gpus_per_node=8, hours=24.0, seed=1, kueue=kueue)
        wall = time.perf_counter() - started
        row = dict(outcome) | {"label": label, "nodes": nodes, "kueue": kueue, "wall_s": wall}
        rows.append(row)
    goal = rows[0]
    verdict = "PASS" if goal["wall_s"] < GOALS["cluster_wall_s"] and goal["jobs"] >= 100_000 else "MISS"
    table = Table(title="(c) 24 simulated hours of a Vela-like cluster (flotilla.sim.planning.vela_day)")
    for column in ("run", "GPUs", "jobs", "finished", "utilization", "events", "wall", "goal < 60 s, >= 100,000 jobs"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["label"],
            f"{row['gpus']:,}",
            f"{row['jobs']:,}",
            f"{row['jobs_finished']:,}",
            f"{row['utilization']:.0%}",
            f"{row['events']:,}",
            f"{row['wall_s']:.1f} s",
            verdict if row is goal else "",
        )
    console.print(table)
    return {"runs": rows, "verdict": verdict, "goal_wall_s": GOALS["cluster_wall_s"]}


# -- (d) the experiments -------------------------------------------------------------------------------
def run_experiments(quick: bool) -> dict[str, Any]:
    from flotilla.sim.experiments import EXPERIMENTS, ExperimentOptions, runner

    out: dict[str, Any] = {}
    table = Table(title="(d) `flotilla experiment` wall time, 5 seeds each")
    for column in ("experiment", "metric", "improvement", "study", "wall", "goal < 2 min"):
        table.add_column(column, justify="right")
    for name in EXPERIMENTS:
        started = time.perf_counter()
        try:
            result = runner(name)(ExperimentOptions(seeds=[1, 2, 3, 4, 5], quick=quick))
        except ImportError as exc:
            out[name] = {"skipped": str(exc)}
            table.add_row(name, "-", "-", "-", "-", f"not built: {exc}")
            continue
        wall = time.perf_counter() - started
        verdict = "PASS" if wall < GOALS["experiment_wall_s"] else "MISS"
        out[name] = {
            "metric": result.metric,
            "improvement_pct": result.improvement_pct,
            "study_improvement_pct": result.study_improvement_pct,
            "wall_s": wall,
            "verdict": verdict,
        }
        table.add_row(
            name,
            result.metric,
            f"{result.improvement_pct:+.1f}%",
            f"{result.study_improvement_pct:+.0f}%",
            f"{wall:.1f} s",
            verdict,
        )
    console.print(table)
    return out


PARTS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "events": run_events,
    "kueue": run_kueue,
    "cluster": run_cluster,
    "experiments": run_experiments,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="all", choices=[*PARTS, "all"])
    parser.add_argument("--quick", action="store_true", help="smaller runs (not judged against the goals)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    if args.output.exists():
        results = json.loads(args.output.read_text()).get("results", {})
    started = time.monotonic()
    for name, part in PARTS.items():
        if args.part in (name, "all"):
            results[name] = part(args.quick) | {
                "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "quick": args.quick,
            }
    payload = {
        "benchmark": "sim_bench",
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "goals": GOALS,
        "compared_against": "the issue's wall-time goals; for (b) Kueue's real-time run of the same scenario",
        "wall_s": time.monotonic() - started,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(finite_json(payload), indent=2) + "\n")
    console.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
