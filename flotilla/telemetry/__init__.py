"""GPU telemetry and health checks with IBM Autopilot's semantics.

    readings   one GPU's readings (`GPUReadings`) and the readers that take them: `EmulatedReader`
               (derived from an emulated GPU's injected faults and load) and `NvmlReader` (a real GPU)
    checks     the pure health checks (plugins in `plugins/`, one per module) and their registry,
               `HealthConfig`, `evaluate_gpu` and the verdict order PASS < WARN < TESTING < EVICT < ERR
    ping       `tcp_ping`: the node-level reachability probe the `ping` check judges
    monitor    `HealthMonitor`: reads every Node's GPUs, evaluates, writes `status.gpus[i].health`
               and the node label `autopilot.ibm.com/gpuhealth`, and keeps the metrics snapshot
    dcgm       a Prometheus collector exporting that snapshot under dcgm-exporter's and
               Autopilot's metric names

Checks never do I/O: readers and the ping probe measure, checks judge, the monitor writes.
"""

from flotilla.telemetry.checks import (
    SEVERITY,
    BoundChecks,
    CheckRegistry,
    CheckResult,
    GPUVerdict,
    HealthConfig,
    HealthConfigError,
    NodeReadings,
    Verdict,
    default_registry,
    evaluate_gpu,
    node_verdict,
    worst,
)
from flotilla.telemetry.readings import EmulatedReader, GPUReadings, Reader

__all__ = [
    "SEVERITY",
    "BoundChecks",
    "CheckRegistry",
    "CheckResult",
    "EmulatedReader",
    "GPUReadings",
    "GPUVerdict",
    "HealthConfig",
    "HealthConfigError",
    "NodeReadings",
    "Reader",
    "Verdict",
    "default_registry",
    "evaluate_gpu",
    "node_verdict",
    "worst",
]
