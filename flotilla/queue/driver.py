"""The driver's plumbing around the controller: the queue config file (`flotilla up
--queue-config FILE`), the default policy, the kinds a pass reads, and the records of a pass
(parked workloads, what it did).

The config file holds QueueConfig's fields (Kueue's Configuration, the parts admission uses).
Durations are seconds, or Go durations as Kueue writes them (`5m`, `1h30m`, `90s`). Errors name
the file, the field path and what is wrong.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.api.configfile import read_yaml, validate_model
from flotilla.queue.types import CycleContext, CycleResult, PendingDecision, QueueConfig, Snapshot

JSON = dict[str, Any]
Policy = Callable[[Snapshot, CycleContext], CycleResult]
log = logging.getLogger("flotilla.queue")

# The fields Kueue writes as durations.
DURATION_FIELDS = (
    ("waitForPodsReady", "timeout"),
    ("admissionFairSharing", "usageHalfLifeTime"),
    ("admissionFairSharing", "usageSamplingInterval"),
)
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class QueueConfigError(ValueError):
    """A queue config file that cannot be used; the message names the file and every bad field."""


def parse_duration(value: Any) -> Any:
    """`5m` -> 300.0, `1h30m` -> 5400.0; anything else is returned as is for validation to judge."""
    if not isinstance(value, str):
        return value
    parts = _PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return value
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_queue_config(raw: Any, source: str) -> QueueConfig:
    """Validate a loaded document; QueueConfigError lists every problem as `source: path: message`."""
    if raw is None:
        return QueueConfig()
    if not isinstance(raw, dict):
        raise QueueConfigError(f"{source}: expected a mapping of QueueConfig fields, got {type(raw).__name__}")
    for section, name in DURATION_FIELDS:
        if isinstance(raw.get(section), dict) and name in raw[section]:
            raw[section][name] = parse_duration(raw[section][name])
    return validate_model(QueueConfig, raw, source, QueueConfigError)


def load_queue_config(path: Path | str) -> QueueConfig:
    """Read and validate a YAML queue config file."""
    return parse_queue_config(read_yaml(path, "queue config", QueueConfigError), str(path))


# The kinds a pass reads, with the resource names the registry resolves.
KINDS = {
    "Job": "jobs",
    "Workload": "workloads",
    "ClusterQueue": "clusterqueues",
    "LocalQueue": "localqueues",
    "Cohort": "cohorts",
    "ResourceFlavor": "resourceflavors",
    "WorkloadPriorityClass": "workloadpriorityclasses",
    "Namespace": "namespaces",
}
MAX_CYCLES = 1000  # per pass; a bound, not a goal: a pass stops cycling once nothing changes


def default_policy() -> Policy:
    """flotilla.queue.cycle.schedule. Without it nothing is admitted and pending workloads say why."""
    try:
        schedule: Policy = importlib.import_module("flotilla.queue.cycle").schedule
    except (ImportError, AttributeError) as exc:
        log.error("the admission policy flotilla.queue.cycle.schedule is unavailable (%s): nothing is admitted", exc)
        message = f"no admission policy is installed (flotilla.queue.cycle: {exc})"

        def nothing(snapshot: Snapshot, ctx: CycleContext) -> CycleResult:
            pending = [k for k, w in snapshot.workloads.items() if w.admission is None]
            return CycleResult(pending=tuple(PendingDecision(k, message, "never") for k in pending))

        return nothing
    return schedule


@dataclass(frozen=True)
class Park:
    """A workload set aside until a capacity event (BestEffortFIFO), or a timed retry."""

    since: float
    timed: bool


@dataclass
class PassReport:
    """What one pass did (for tests, logs and the simulator)."""

    admitted: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    writes: int = 0
    conflicts: int = 0
    next_wakeup: float | None = None
