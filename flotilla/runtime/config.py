"""The runtime's config file (`flotilla up --runtime-config FILE`): placement, scheduling, back-offs.

placement: {policy: packing}          # MIG placement plugin: first-fit (DAS's) or packing
scheduler:                            # node scheduler plugins (kube-scheduler's shape)
  scorers: [{name: NodeResourcesMostAllocated, weight: 2}, {name: GPUPacking}]
jobBackoffSeconds: 10                 # Job pod-failure back-off base (doubles, max 6 min)
restartBackoffSeconds: 10             # container restart back-off base (CrashLoopBackOff)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flotilla.api.configfile import read_yaml, validate_model
from flotilla.runtime.scheduling import SchedulerConfig
from flotilla.slicer import PlacementConfig


class RuntimeConfigError(ValueError):
    """A runtime config that cannot be used; the message names the file and every bad field."""


class RuntimeConfig(BaseModel):
    """How admitted work runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    placement: PlacementConfig = PlacementConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    jobBackoffSeconds: float = Field(default=10.0, ge=0)  # Kubernetes: 10 s, doubling, at most 6 min
    restartBackoffSeconds: float = Field(default=10.0, ge=0)  # kubelet's CrashLoopBackOff base
    pollSeconds: float = Field(default=0.2, gt=0)  # how often running processes are polled


def parse_runtime_config(raw: Any, source: str) -> RuntimeConfig:
    if raw is None:
        return RuntimeConfig()
    if not isinstance(raw, dict):
        raise RuntimeConfigError(f"{source}: expected a mapping of RuntimeConfig fields, got {type(raw).__name__}")
    return validate_model(RuntimeConfig, raw, source, RuntimeConfigError)


def load_runtime_config(path: Path | str) -> RuntimeConfig:
    """Read and validate a YAML runtime config file."""
    return parse_runtime_config(read_yaml(path, "runtime config", RuntimeConfigError), str(path))
