"""MIG placement policies on 1,000 emulated A100-40GB GPUs at saturation.

    .venv/bin/python benchmarks/slicer_bench.py [--gpus 1000] [--seed 7] [--loads 0.8,1.0,1.25] [--quick]

A seeded stream of arrivals and departures of MIG requests (Poisson arrivals, exponential holding
times, mean 1 time unit) runs through each placement policy (flotilla.slicer.plugins) on the same
emulated cluster; every policy sees the same stream. A request that cannot be placed on arrival is
rejected (a loss system: no queue, so acceptance measures what the placement itself achieves).

Mix (the study's): 1g.5gb (whisper-medium) 45%, 3g.20gb (whisper-large) 35%, and 20% random others
drawn uniformly from 1g.10gb, 2g.10gb, 4g.20gb and 7g.40gb.

Offered load rho = arrival rate x mean holding time x mean slots per request / total slots.
Saturation is rho = 1.0: the mix asks, on average, for every slot of the cluster, so any slot a
policy strands costs a rejection. Acceptance is counted after a warm-up of 3 mean holding times.

Reported per policy and load: acceptance rate (requests; and slot-weighted) and its ceiling (a
fluid bound no policy can beat: perfect packing, smallest profiles first until the slots run out;
it is 100% at saturation, so no policy can accept more than 1 / acceptance_first-fit times what
first-fit accepts there), mean utilisation, fragmentation (free slots that no profile of the mix
can use, sampled every 500 arrivals, as a share of all slots), free slots at the moments a request
was rejected, and the decision time p50/p99 (the bound policy's `place` call over all 1,000 GPUs).
Goals: packing accepts >= 10% more requests than first-fit at saturation (relative:
acceptance_packing / acceptance_first-fit >= 1.10), p99 decision < 1 ms.
Writes benchmarks/results/slicer_bench.json.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flotilla.slicer import (
    GPUState,
    Placement,
    PlacementConfig,
    PlacementContext,
    PlacementRequest,
    default_registry,
    fragmentation,
    load_catalog,
    stable_order,
)

RESULTS = Path(__file__).resolve().parent / "results" / "slicer_bench.json"
MODEL = "A100-40GB"
STUDY_MIX = {"1g.5gb": 0.45, "3g.20gb": 0.35}  # whisper-medium, whisper-large
OTHERS = ("1g.10gb", "2g.10gb", "4g.20gb", "7g.40gb")  # the rest: 20%, uniformly
OTHERS_SHARE = 0.20
GPUS_PER_NODE = 8
SATURATION = 1.0
WARMUP_HOLDING_TIMES = 3.0
FRAGMENTATION_EVERY = 500
GOAL_GAIN = 1.10
GOAL_P99_MS = 1.0

Runs = dict[str, dict[str, dict[str, Any]]]  # load -> policy -> result


@dataclass(frozen=True)
class Arrival:
    at: float
    profile: str
    duration: float


def mix() -> dict[str, float]:
    shares = dict(STUDY_MIX)
    for name in OTHERS:
        shares[name] = OTHERS_SHARE / len(OTHERS)
    return shares


def arrivals(seed: int, load: float, gpus: int, sizes: dict[str, int], count: int) -> list[Arrival]:
    """`count` arrivals at offered load `load` (see the module docstring), seeded."""
    rng = random.Random(seed)
    shares = mix()
    names, weights = list(shares), list(shares.values())
    mean_size = sum(shares[n] * sizes[n] for n in names)
    rate = load * gpus * 8 / mean_size  # mean holding time is 1
    out: list[Arrival] = []
    t = 0.0
    for _ in range(count):
        t += rng.expovariate(rate)
        out.append(Arrival(t, rng.choices(names, weights)[0], rng.expovariate(1.0)))
    return out


def acceptance_ceiling(load: float, sizes: dict[str, int]) -> float:
    """The most requests any policy could accept at `load`: a fluid bound that packs perfectly and takes
    the smallest profiles first until the slots run out (what no placement policy can beat)."""
    shares = mix()
    mean_size = sum(shares[n] * sizes[n] for n in shares)
    room, accepted = 1.0, 0.0  # in shares of the cluster's slots
    for name in sorted(shares, key=lambda n: sizes[n]):
        demand = load * shares[name] * sizes[name] / mean_size
        taken = min(room, demand)
        accepted += shares[name] * taken / demand
        room -= taken
    return accepted


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def run(policy_name: str, stream: list[Arrival], gpu_count: int, warmup_until: float) -> dict[str, Any]:
    catalog = load_catalog()
    policy = default_registry().bind(PlacementConfig(policy=policy_name))
    ctx = PlacementContext(random.Random(0), catalog, PlacementConfig(policy=policy_name))
    gpus = list(
        stable_order(GPUState(f"GPU-{i:04d}", f"node-{i // GPUS_PER_NODE:03d}", MODEL) for i in range(gpu_count))
    )
    index = {g.uuid: i for i, g in enumerate(gpus)}
    sizes = {p.name: p.size for p in catalog.model(MODEL).profiles}
    pending = tuple(mix())
    total_slots = gpu_count * 8
    used = 0
    departures: list[tuple[float, str, int]] = []
    offered: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    times_ns: list[int] = []
    utilisation: list[float] = []
    free_at_reject: list[float] = []
    stranded: list[float] = []
    measured = 0
    for n, arrival in enumerate(stream):
        while departures and departures[0][0] <= arrival.at:
            _, owner, i = heapq.heappop(departures)
            gpu = gpus[i]
            used -= sum(a.size for a in gpu.allocations if a.owner == owner)
            gpus[i] = gpu.without_owner(owner)
        request = PlacementRequest(arrival.profile, f"req-{n}")
        start = time.perf_counter_ns()
        decision = policy.place(ctx, request, gpus)
        elapsed = time.perf_counter_ns() - start
        counted = arrival.at >= warmup_until
        if isinstance(decision, Placement):
            i = index[decision.gpu]
            gpus[i] = gpus[i].with_allocation(decision.allocation())
            used += decision.size
            heapq.heappush(departures, (arrival.at + arrival.duration, request.owner, i))
        if not counted:
            continue
        measured += 1
        times_ns.append(elapsed)
        offered[arrival.profile] += 1
        utilisation.append(used / total_slots)
        if isinstance(decision, Placement):
            accepted[arrival.profile] += 1
        else:
            free_at_reject.append(1 - used / total_slots)
        if measured % FRAGMENTATION_EVERY == 0:
            stranded.append(fragmentation(catalog, gpus, pending).stranded_share_of_total)
    offered_n, accepted_n = sum(offered.values()), sum(accepted.values())
    offered_slots = sum(sizes[p] * c for p, c in offered.items())
    accepted_slots = sum(sizes[p] * c for p, c in accepted.items())
    ms = [t / 1e6 for t in times_ns]
    return {
        "policy": policy_name,
        "requests": offered_n,
        "acceptance": accepted_n / offered_n,
        "slot_acceptance": accepted_slots / offered_slots,
        "acceptance_by_profile": {p: accepted[p] / offered[p] for p in sorted(offered)},
        "utilisation": statistics.fmean(utilisation),
        "stranded_share_of_slots": statistics.fmean(stranded) if stranded else 0.0,
        "free_share_at_reject": statistics.fmean(free_at_reject) if free_at_reject else 0.0,
        "decision_p50_ms": percentile(ms, 50),
        "decision_p99_ms": percentile(ms, 99),
        "decision_max_ms": max(ms),
    }


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
    }


def run_all(args: argparse.Namespace, loads: list[float], sizes: dict[str, int], console: Console) -> Runs:
    """Every policy on the same seeded stream at each load; result dicts keyed by load, then policy."""
    runs: Runs = {}
    mean_size = sum(share * sizes[n] for n, share in mix().items())
    for load in loads:
        count = round(load * args.gpus * 8 / mean_size * (WARMUP_HOLDING_TIMES + args.holding_times))
        stream = arrivals(args.seed, load, args.gpus, sizes, count)
        for name in args.policies.split(","):
            start = time.perf_counter()
            result = run(name, stream, args.gpus, WARMUP_HOLDING_TIMES)
            result["wall_s"] = time.perf_counter() - start
            result["ceiling"] = acceptance_ceiling(load, sizes)
            runs.setdefault(f"{load:g}", {})[name] = result
            console.print(f"load {load:g} {name}: {result['acceptance']:.4f} accepted ({result['wall_s']:.1f}s)")
    return runs


def summarize(runs: Runs) -> dict[str, Any]:
    """The goal figures: packing's gain over first-fit at saturation, the ceiling, the worst p99."""
    at_saturation = runs[f"{SATURATION:g}"]
    first_fit = at_saturation.get("first-fit")
    packing = at_saturation.get("packing")
    gain = packing["acceptance"] / first_fit["acceptance"] if first_fit and packing else None
    worst_p99 = max(r["decision_p99_ms"] for by_policy in runs.values() for r in by_policy.values())
    return {
        "packing_gain_at_saturation": gain,
        "ceiling_gain_at_saturation": first_fit["ceiling"] / first_fit["acceptance"] if first_fit else None,
        "worst_decision_p99_ms": worst_p99,
        "verdicts": {
            "packing_gain_at_saturation": "n/a" if gain is None else ("PASS" if gain >= GOAL_GAIN else "MISS"),
            "decision_p99_ms": "PASS" if worst_p99 < GOAL_P99_MS else "MISS",
        },
    }


def print_tables(console: Console, runs: Runs, summary: dict[str, Any], gpus: int, seed: int) -> None:
    table = Table(title=f"MIG placement on {gpus} emulated {MODEL} GPUs (seed {seed})")
    columns = ("load", "policy", "accepted", "ceiling", "slot-weighted", "3g.20gb", "7g.40gb", "util", "stranded")
    for column in (*columns, "free@reject", "decision p50/p99 ms"):
        table.add_column(column, justify="right")
    for load, by_policy in runs.items():
        for name, r in by_policy.items():
            table.add_row(
                load,
                name,
                f"{r['acceptance']:.1%}",
                f"{r['ceiling']:.1%}",
                f"{r['slot_acceptance']:.1%}",
                f"{r['acceptance_by_profile'].get('3g.20gb', 0):.1%}",
                f"{r['acceptance_by_profile'].get('7g.40gb', 0):.1%}",
                f"{r['utilisation']:.1%}",
                f"{r['stranded_share_of_slots']:.1%}",
                f"{r['free_share_at_reject']:.1%}",
                f"{r['decision_p50_ms']:.3f} / {r['decision_p99_ms']:.3f}",
            )
    console.print(table)
    goals = Table(title="Goals")
    for column in ("goal", "measured", "verdict"):
        goals.add_column(column)
    gain, ceiling = summary["packing_gain_at_saturation"], summary["ceiling_gain_at_saturation"]
    verdicts = summary["verdicts"]
    goals.add_row(
        f"packing acceptance >= {GOAL_GAIN:.2f} x first-fit at load {SATURATION:g}",
        "n/a" if gain is None else f"{gain:.3f} x",
        verdicts["packing_gain_at_saturation"],
    )
    goals.add_row(
        "  the most any policy could gain there (ceiling / first-fit)",
        "n/a" if ceiling is None else f"{ceiling:.3f} x",
        "",
    )
    goals.add_row(
        f"p99 decision < {GOAL_P99_MS:g} ms (worst policy, any load)",
        f"{summary['worst_decision_p99_ms']:.3f} ms",
        verdicts["decision_p99_ms"],
    )
    console.print(goals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--loads", default="0.8,1.0,1.25", help="offered loads to run (1.0 is saturation)")
    parser.add_argument("--holding-times", type=float, default=10.0, help="measured span, in mean holding times")
    parser.add_argument("--policies", default="first-fit,best-fit,packing")
    parser.add_argument("--quick", action="store_true", help="100 GPUs, shorter run (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.gpus, args.holding_times = 100, 4.0
    loads = sorted({float(x) for x in args.loads.split(",")} | {SATURATION})
    sizes = {p.name: p.size for p in load_catalog().model(MODEL).profiles}
    console = Console(width=180)
    runs = run_all(args, loads, sizes, console)
    summary = summarize(runs)
    print_tables(console, runs, summary, args.gpus, args.seed)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "slicer_bench",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "params": {
            "gpus": args.gpus,
            "model": MODEL,
            "seed": args.seed,
            "loads": loads,
            "saturation_load": SATURATION,
            "saturation_definition": "offered load (arrival rate x mean holding time x mean slots per request) "
            "equal to the cluster's slots; loss system, no queue",
            "mix": mix(),
            "warmup_holding_times": WARMUP_HOLDING_TIMES,
            "measured_holding_times": args.holding_times,
        },
        "goals": {"packing_gain_at_saturation": f">= {GOAL_GAIN}", "decision_p99_ms": f"< {GOAL_P99_MS}"},
        "verdicts": summary.pop("verdicts"),
        "results": {**summary, "runs": runs},
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
