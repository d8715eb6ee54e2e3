"""The two files of `flotilla simulate CLUSTER.yaml WORKLOAD.yaml`: what the cluster is, what runs on it.

    # cluster.yaml: Vela-like, 500 nodes x 8 A100-80GB
    kind: SimulatedCluster
    nodes:
    - {name: a100, count: 500, gpus: 8, model: A100-80GB, cpu: 96, memory: 1152Gi}
    health:
      gpuFailuresPerGpuDay: 0.002     # faults an Autopilot-style check catches (row remaps, XID errors)
      detectionSeconds: 300           # the periodic health check's interval: a fault is found within it
      repairHours: 24                 # the GPU is out of service this long, then back
    queueing: {fairSharing: false, preemption: true}

    # workload.yaml: tenants with quotas and priorities, and online services
    kind: SimulatedWorkload
    hours: 24
    seed: 1
    tenants:
    - name: research
      nominalGPUs: 2000               # the tenant's ClusterQueue quota in nvidia.com/gpu (one cohort for all)
      priority: 0
      jobs:
        perHour: 3000                 # Poisson arrivals
        gpus: {1: 0.6, 2: 0.2, 4: 0.1, 8: 0.1}      # GPUs per job: weights
        minutes: {median: 20, sigma: 1.0, max: 1440}  # lognormal run time on a healthy GPU
    services:
    - name: chat
      replicas: 64                    # one GPU each, held for the whole run (kept off the batch quota)
      model: qwen3-8b
      gpu: A100-80GB
      requestsPerSecond: 40
      promptTokens: 1500
      outputTokens: 256
      slo: {ttftSeconds: 1.0}         # a request meets its SLO when its TTFT is at most this

Every field is checked before anything runs: unknown fields, negative rates and quotas, weights that
do not sum to more than 0, a GPU model the performance data does not know: the error names the file,
the field path and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from flotilla.api.configfile import read_rows, read_yaml, validate_model


class SpecError(ValueError):
    """A cluster or workload file that cannot be simulated; the message names file, field and fix."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeGroup(_Spec):
    name: str = "node"
    count: int = Field(ge=1, le=100_000)
    gpus: int = Field(ge=0, le=16)
    model: str = "A100-80GB"
    cpu: int = Field(default=96, ge=1)
    memory: str = "1152Gi"


class Health(_Spec):
    gpuFailuresPerGpuDay: float = Field(default=0.0, ge=0.0, le=10.0)
    detectionSeconds: float = Field(default=300.0, ge=0.0)
    repairHours: float = Field(default=24.0, gt=0.0)


class Queueing(_Spec):
    kueue: bool = True  # false: no quotas, every job's pod goes straight to the scheduler (the study's baseline)
    fairSharing: bool = False  # Kueue's fair sharing between the tenants' ClusterQueues in the cohort
    preemption: bool = True  # reclaim within the cohort, and lower priority within a ClusterQueue


class ClusterSpec(_Spec):
    kind: Literal["SimulatedCluster"] = "SimulatedCluster"
    nodes: list[NodeGroup] = Field(min_length=1)
    health: Health = Field(default_factory=Health)
    queueing: Queueing = Field(default_factory=Queueing)

    @property
    def total_gpus(self) -> int:
        return sum(g.count * g.gpus for g in self.nodes)


class Runtime(_Spec):
    median: float = Field(gt=0.0)  # minutes
    sigma: float = Field(default=1.0, ge=0.0, le=5.0)
    max: float = Field(default=24 * 60, gt=0.0)


class JobStream(_Spec):
    perHour: float = Field(ge=0.0)
    gpus: dict[int, float] = Field(default_factory=lambda: {1: 1.0})
    minutes: Runtime = Field(default_factory=lambda: Runtime(median=30.0))

    @field_validator("gpus")
    @classmethod
    def _weights(cls, value: dict[int, float]) -> dict[int, float]:
        if any(k < 1 or k > 64 for k in value):
            raise ValueError("GPUs per job must be 1..64 (e.g. {1: 0.7, 8: 0.3})")
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("weights must be >= 0 and not all 0 (e.g. {1: 0.7, 8: 0.3})")
        return value


class Tenant(_Spec):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    nominalGPUs: int = Field(ge=0)
    borrowingLimit: int | None = Field(default=None, ge=0)  # None: may borrow every unused GPU of the cohort
    priority: int = 0
    jobs: JobStream | None = None  # a Poisson stream ...
    trace: str | None = None  # ... or a CSV/JSONL of the tenant's own jobs (at, gpus, minutes); relative to the file

    @field_validator("trace")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("base")
        if value is None or base is None or Path(value).is_absolute():
            return value
        return str(Path(base) / value)

    @model_validator(mode="after")
    def _one_source(self) -> Tenant:
        if (self.jobs is None) == (self.trace is None):
            raise ValueError(
                "give the tenant's jobs either as `jobs` (a Poisson stream) or as `trace` (a file): one, not both"
            )
        return self

    @property
    def widest_job(self) -> int:
        if self.jobs is not None:
            return max(self.jobs.gpus)
        return max((gpus for _, gpus, _ in read_trace(Path(str(self.trace)))), default=1)


class TraceError(SpecError):
    """A job trace that cannot be read; the message names the file, the line and the field."""


def read_trace(path: Path) -> list[tuple[float, int, float]]:
    """(at seconds, GPUs, minutes) per job of a CSV (header: at,gpus,minutes) or JSONL trace, sorted by `at`."""
    try:
        _, rows = read_rows(path, TraceError, json_hint="`at`, `gpus` and `minutes`", kind="job trace")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the job trace: {exc.strerror or exc}") from None
    out = []
    for n, row in rows:
        values = []
        for key, kind, low in (("at", float, 0.0), ("gpus", int, 1), ("minutes", float, 1e-9)):
            try:
                value = kind(str(row[key]))
            except KeyError:
                raise TraceError(f"{path}:{n}: no `{key}` (columns: at, gpus, minutes)") from None
            except (TypeError, ValueError):
                raise TraceError(f"{path}:{n}: {key}: {row[key]!r} is not a number") from None
            if value < low:
                raise TraceError(f"{path}:{n}: {key}: {value} is below {low:g}")
            values.append(value)
        out.append((float(values[0]), int(values[1]), float(values[2])))
    return sorted(out)


class Slo(_Spec):
    ttftSeconds: float = Field(gt=0.0)


class Service(_Spec):
    name: str
    replicas: int = Field(ge=1)
    model: str = "qwen3-8b"
    gpu: str = "A100-80GB"
    requestsPerSecond: float = Field(gt=0.0)
    promptTokens: int = Field(default=1500, ge=1)
    outputTokens: int = Field(default=256, ge=1)
    profile: str = "default"  # the gateway's scheduling profile
    slo: Slo


class WorkloadSpec(_Spec):
    kind: Literal["SimulatedWorkload"] = "SimulatedWorkload"
    hours: float = Field(default=24.0, gt=0.0, le=24 * 31)
    seed: int = 1
    tenants: list[Tenant] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> WorkloadSpec:
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError("tenants: every tenant needs its own name")
        if not self.tenants and not self.services:
            raise ValueError("give at least one tenant (batch jobs) or service (online traffic)")
        return self


def load_cluster(path: Path | str) -> ClusterSpec:
    return validate_model(ClusterSpec, read_yaml(path, "cluster file", SpecError), str(path), SpecError)


def load_workload(path: Path | str) -> WorkloadSpec:
    """The workload file; a tenant's relative `trace` path is taken relative to the file's folder."""
    raw = read_yaml(path, "workload file", SpecError)
    return validate_model(WorkloadSpec, raw, str(path), SpecError, base=str(Path(path).parent))


def check_fits(cluster: ClusterSpec, workload: WorkloadSpec, source: str = "workload") -> None:
    """Cross-file checks: the services' GPUs and the tenants' quotas against what the cluster has."""
    total = cluster.total_gpus
    held = sum(s.replicas for s in workload.services)
    if held > total:
        raise SpecError(f"{source}: services hold {held} GPUs; the cluster has {total} (fewer replicas, or more nodes)")
    quota = sum(t.nominalGPUs for t in workload.tenants)
    if quota > total - held:
        raise SpecError(
            f"{source}: tenants' nominalGPUs add up to {quota}; the cluster has {total - held} GPUs besides the "
            "services (Kueue would admit more than fits: lower the quotas)"
        )
    widest = max((g.gpus for g in cluster.nodes), default=0)
    for i, t in enumerate(workload.tenants):
        if t.widest_job > widest:
            raise SpecError(
                f"{source}: tenants[{i}].jobs.gpus ({t.name}) asks for more GPUs per job than any node has "
                f"({widest}); jobs run on one node"
            )
