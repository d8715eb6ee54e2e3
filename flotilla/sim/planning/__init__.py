"""Cluster planning: `flotilla simulate CLUSTER.yaml WORKLOAD.yaml` (spec.py: the files; run.py: the
simulation; cli.py: the command, tables and plots; docs/simulator.md)."""

from __future__ import annotations

from typing import Any


def vela_scenario(
    nodes: int = 500, gpus_per_node: int = 8, hours: float = 24.0, seed: int = 1, kueue: bool = True
) -> tuple[Any, Any]:
    """A Vela-like cluster (`nodes` x `gpus_per_node` A100-80GB) and a day of three tenants' batch jobs
    (about 100,000 jobs for 4,000 GPUs, demand ~2,900 GPUs on average: busy, not overloaded), with GPU faults
    at 0.002 per GPU-day; `kueue=False` sends the jobs straight to the scheduler (no quotas)."""
    from flotilla.sim.planning.spec import ClusterSpec, WorkloadSpec

    total = nodes * gpus_per_node
    cluster = ClusterSpec.model_validate(
        {
            "nodes": [{"name": "vela", "count": nodes, "gpus": gpus_per_node, "model": "A100-80GB"}],
            "health": {"gpuFailuresPerGpuDay": 0.002, "detectionSeconds": 300, "repairHours": 24},
            "queueing": {"kueue": kueue},
        }
    )
    per_hour = 100_000 / 24 * total / 4000  # ~4,170 jobs an hour on 4,000 GPUs
    workload = WorkloadSpec.model_validate(
        {
            "hours": hours,
            "seed": seed,
            "tenants": [
                {
                    "name": "research",
                    "nominalGPUs": total // 2,
                    "jobs": {
                        "perHour": per_hour * 0.6,
                        "gpus": {1: 0.8, 2: 0.15, 8: 0.05},
                        "minutes": {"median": 15, "sigma": 1.0},
                    },
                },
                {
                    "name": "training",
                    "nominalGPUs": total * 3 // 10,
                    "priority": 10,
                    "jobs": {"perHour": per_hour * 0.05, "gpus": {8: 1.0}, "minutes": {"median": 30, "sigma": 0.5}},
                },
                {
                    "name": "batch-inference",
                    "nominalGPUs": total // 5,
                    "priority": 5,
                    "jobs": {"perHour": per_hour * 0.35, "gpus": {1: 1.0}, "minutes": {"median": 10}},
                },
            ],
        }
    )
    return cluster, workload


def vela_day(
    nodes: int = 500, gpus_per_node: int = 8, hours: float = 24.0, seed: int = 1, kueue: bool = True
) -> dict[str, Any]:
    """`vela_scenario` simulated; the cluster metrics (gpus, jobs, events, utilization, ...)."""
    from flotilla.sim.planning.run import plan

    cluster, workload = vela_scenario(nodes, gpus_per_node, hours, seed, kueue)
    return dict(plan(cluster, workload, slo_window_s=0.0).cluster)
