"""Kueue's scheduler-performance scenarios, run through Flotilla's admission policy.

    .venv/bin/python benchmarks/queue_kueue_perf.py [--scenario baseline|large-scale|all] [--mode sim|live|all]

Reads Kueue's generator and range-spec files from ../shared/reference/kueue/perf/ (or
--perf-dir), creates the same ClusterQueues, cohorts, LocalQueues and workloads, mimics execution
(each workload runs `runtimeMs` after admission, then finishes) and reports what Kueue's runner
reports: wall time, ClusterQueue usage (average share of nominal quota) and the average time to
admission per workload class.

Mode `sim` runs on the simulated clock: the wall time measures pure scheduler throughput for the
whole scenario. Mode `live` runs in real time through the embedded control plane (`flotilla up` in
its own process, the store, the queue controller), creating and finishing Workloads over HTTP as
Kueue's runner does (flotilla/sim/kueue_perf_live.py); it defaults to the baseline scenario.
Mode `all` runs sim, then live. Kueue's published figures (its rangespec files, calibrated on
Kueue's CI in real time with minimalkueue) are printed beside ours for comparison; the sim run is
not the same kind of run, which the table says.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flotilla.sim.admission import AdmissionSimulation
from flotilla.sim.kueue_perf import RESOURCE, expand, load_generator, load_rangespec
from flotilla.sim.kueue_perf_live import run_live

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PERF_DIR = ROOT.parent / "shared" / "reference" / "kueue" / "perf"
RESULTS = ROOT / "benchmarks" / "results"
# Kueue's measured means, from the comments of its rangespec files (real time, minimalkueue on CI).
KUEUE_MEANS: dict[str, dict[str, Any]] = {
    "baseline": {
        "wall_s": 351.1,
        "usage_pct": 55.9,
        "admission_ms": {"large": 16501, "medium": 76768, "small": 215468},
    },
    "large-scale": {
        "wall_s": 1179.4,
        "usage_pct": 38.64,
        "admission_ms": {"large": 105604, "medium": 256413, "small": 700379},
    },
}
SIM_WALL_GOAL_S = {"baseline": 15.0, "large-scale": 120.0}
OUTPUTS = {"sim": RESULTS / "queue_kueue_perf.json", "live": RESULTS / "queue_kueue_perf_live.json"}


def run_sim(perf_dir: Path, scenario: str) -> dict[str, Any]:
    from flotilla.queue.cycle import schedule

    spec = expand(load_generator(perf_dir / f"{scenario}-generator.yaml"))
    sim = AdmissionSimulation(
        spec.cluster_queues,
        spec.cohorts,
        spec.flavors,
        spec.local_queues,
        schedule,
        namespace_labels=spec.namespace_labels,
    )
    for a in spec.arrivals:
        sim.submit(a.at, a.workload, a.runtime, workload_class=a.workload_class)
    start = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - start

    per_class: dict[str, list[float]] = {}
    unfinished = 0
    evictions = 0
    for rec in sim.records.values():
        evictions += rec.evictions
        if rec.admitted_at is None or rec.finished_at is None:
            unfinished += 1
            continue
        per_class.setdefault(rec.labels["workload_class"], []).append((rec.admitted_at - rec.created) * 1000)
    usage_by_class: dict[str, list[float]] = {}
    for cq, snap in spec.cluster_queues.items():
        nominal = sum(q.nominal for (f, r), q in snap.quotas.items() if r == RESOURCE)
        usage_by_class.setdefault(spec.queue_classes[cq], []).append(sim.average_usage(cq) * 100 / nominal)
    return {
        "scenario": scenario,
        "mode": "sim",
        "workloads": len(spec.arrivals),
        "cluster_queues": len(spec.cluster_queues),
        "wall_s": wall,
        "makespan_s": sim.last_event - (sim.first_event or 0.0),
        "cycles": sim.cycles,
        "evictions": evictions,
        "unfinished": unfinished,
        "usage_pct": {c: sum(v) / len(v) for c, v in usage_by_class.items()},
        "avg_time_to_admission_ms": {c: sum(v) / len(v) for c, v in sorted(per_class.items())},
    }


def report(console: Console, result: dict[str, Any], perf_dir: Path) -> dict[str, str]:
    scenario = result["scenario"]
    rangespec = load_rangespec(perf_dir / f"{scenario}-rangespec.yaml")
    kueue = KUEUE_MEANS[scenario]
    table = Table(
        title=f"Kueue perf scenario '{scenario}' ({result['workloads']} workloads, "
        f"{result['cluster_queues']} ClusterQueues), mode={result['mode']}"
    )
    for col in (
        "metric",
        "Flotilla (this machine)",
        "Kueue mean (its CI, real time)",
        "Kueue CI limit",
        "goal",
        "verdict",
    ):
        table.add_column(col)
    verdicts: dict[str, str] = {}
    if result["mode"] == "sim":
        goal, goal_text = SIM_WALL_GOAL_S[scenario], f"< {SIM_WALL_GOAL_S[scenario]:.0f} (simulated clock)"
    else:
        goal, goal_text = kueue["wall_s"], f"< {kueue['wall_s']:.0f} (real time)"
    verdicts["wall"] = "PASS" if result["wall_s"] < goal and not result["unfinished"] else "MISS"
    table.add_row(
        "wall time (s)",
        f"{result['wall_s']:.2f}",
        f"{kueue['wall_s']:.0f}",
        f"{rangespec.maxWallMs / 1000:.0f}",
        goal_text,
        verdicts["wall"],
    )
    for cls, pct in result["usage_pct"].items():
        limit = rangespec.clusterQueueClassesMinUsage.get(cls, 0.0)
        verdicts[f"usage:{cls}"] = "PASS" if pct >= kueue["usage_pct"] else "MISS"
        table.add_row(
            f"usage of '{cls}' queues (%)",
            f"{pct:.1f}",
            f"{kueue['usage_pct']:.1f}",
            f">= {limit}",
            f">= {kueue['usage_pct']}",
            verdicts[f"usage:{cls}"],
        )
    for cls, ms in result["avg_time_to_admission_ms"].items():
        mean = kueue["admission_ms"].get(cls)
        max_ms = rangespec.wlClassesMaxAvgTimeToAdmissionMs.get(cls)
        verdicts[f"admission:{cls}"] = "PASS" if mean is not None and ms <= mean else "MISS"
        table.add_row(
            f"avg time to admission, {cls} (ms)",
            f"{ms:,.0f}",
            f"{mean:,}" if mean else "-",
            f"<= {max_ms:,}" if max_ms else "-",
            f"<= {mean:,}" if mean else "-",
            verdicts[f"admission:{cls}"],
        )
    clock = "simulated" if result["mode"] == "sim" else "real-time"
    table.add_row(f"{clock} makespan (s)", f"{result['makespan_s']:.1f}", "-", "-", "-", "info")
    if result["mode"] == "sim":
        counted = f"{result['cycles']} / {result['evictions']} / {result['unfinished']}"
        table.add_row("cycles / evictions / unfinished", counted, "-", "-", "-", "info")
    else:
        cpu = result["control_plane_cpu_s"]
        counted = f"{result['evictions']} / {result['unfinished']} / {result['finish_conflicts']}"
        table.add_row("evictions / unfinished / finish conflicts", counted, "-", "-", "-", "info")
        table.add_row("control plane CPU (s)", "-" if cpu is None else f"{cpu:.1f}", "-", "-", "-", "info")
        for error in result["errors"]:
            console.print(f"[red]{error}[/red]")
    console.print(table)
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenario", choices=["baseline", "large-scale", "all"], help="default: all for sim, baseline for live"
    )
    parser.add_argument("--mode", choices=["sim", "live", "all"], default="sim")
    parser.add_argument("--perf-dir", type=Path, default=DEFAULT_PERF_DIR)
    parser.add_argument("--output", type=Path, default=OUTPUTS["sim"], help="JSON results of mode sim")
    parser.add_argument("--live-output", type=Path, default=OUTPUTS["live"], help="JSON results of mode live")
    parser.add_argument(
        "--limit-seconds", type=float, default=900.0, help="live: stop a run (and the control plane) after this"
    )
    parser.add_argument("--repeat", type=int, default=1, help="live: runs of each scenario (real time varies)")
    args = parser.parse_args()
    if not args.perf_dir.is_dir():
        print(f"error: Kueue perf files not found in {args.perf_dir}; pass --perf-dir", file=sys.stderr)
        return 2
    console = Console(width=150)
    for mode in ["sim", "live"] if args.mode == "all" else [args.mode]:
        chosen = args.scenario or ("all" if mode == "sim" else "baseline")
        scenarios = ["baseline", "large-scale"] if chosen == "all" else [chosen]
        out: dict[str, Any] = {
            "benchmark": "queue_kueue_perf",
            "mode": mode,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version,
                "platform": platform.platform(),
            },
            "compared_against": "Kueue's rangespec means (real-time runs of minimalkueue on Kueue's CI)",
            "runs": [],
        }
        for scenario in scenarios:
            for attempt in range(1 if mode == "sim" else args.repeat):
                console.print(f"running {scenario} ({mode}{f', run {attempt + 1}' if args.repeat > 1 else ''}) ...")
                if mode == "sim":
                    result = run_sim(args.perf_dir, scenario)
                else:
                    spec = expand(load_generator(args.perf_dir / f"{scenario}-generator.yaml"))
                    result = run_live(spec, scenario, limit_seconds=args.limit_seconds)
                result["verdicts"] = report(console, result, args.perf_dir)
                out["runs"].append(result)
        path = args.output if mode == "sim" else args.live_output
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2))
        console.print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
