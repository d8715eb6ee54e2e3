"""The batch simulator's data (flotilla/sim/data/whisper.yaml): Whisper's speed on GPUs and MIG slices, the
study's audio and node, platform latencies and kube-scheduler's queue parameters.

    data = load_whisper_data()
    device = data.device(catalog, "A100-40GB", "1g.5gb")            # compute fraction 14/108, 4864 MiB
    plan = data.run_plan("medium", audio_s=3427, device=device)      # RunPlan, or a reason it cannot run

The speed model is stated in the data file's header: a job spends `setup_s` with its device idle, then
transcribes for audio x seconds_per_audio_second(model, GPU) x slowdown(f) on a slice of compute fraction f,
where slowdown(f) = (1 - kernel_active) + kernel_active x max(1, sm_occupancy / f); its SM work (GPU-seconds
busy) is the same on any device.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flotilla.api.configfile import read_yaml, validate_model
from flotilla.slicer.profiles import ProfileCatalog

WHOLE_GPU = "gpu"
Fraction = Annotated[float, Field(gt=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


class PerfDataError(ValueError):
    """The data file is invalid; names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuFacts(_Model):
    multiprocessors: int = Field(gt=0)


class WhisperModel(_Model):
    parameters_m: int = Field(gt=0)
    memory_mib: int = Field(gt=0)
    setup_s: float = Field(ge=0)
    kernel_active: Fraction
    sm_occupancy: Fraction
    seconds_per_audio_second: dict[str, Positive]

    def slowdown(self, compute_fraction: float) -> float:
        """(1 - kernel_active) + kernel_active x max(1, sm_occupancy / f); 1 on a whole GPU (f = 1)."""
        return (1 - self.kernel_active) + self.kernel_active * max(1.0, self.sm_occupancy / compute_fraction)


class AudioSpec(_Model):
    dataset: str
    files: int = Field(gt=0)
    mean_s: Positive
    cv: float = Field(ge=0)
    min_s: float = Field(ge=0)
    max_s: Positive

    def sample(self, rng: random.Random) -> float:
        """One recording's length (s): lognormal with this mean and coefficient of variation, clipped."""
        if self.cv == 0:
            return self.mean_s
        sigma = math.sqrt(math.log(1 + self.cv**2))
        mu = math.log(self.mean_s) - sigma**2 / 2
        return min(self.max_s, max(self.min_s, rng.lognormvariate(mu, sigma)))


class StudyNode(_Model):
    instance: str
    gpus: int = Field(gt=0)
    gpu_model: str
    cpu: int = Field(gt=0)
    memory: str
    allocatable_cpu: str
    allocatable_memory: str
    daemon_cpu: str
    daemon_memory: str


class Latencies(_Model):
    pod_startup_s: float = Field(ge=0)
    mig_slice_create_s: float = Field(ge=0)
    job_to_pod_s: float = Field(ge=0)


class KubeSchedulerParams(_Model):
    """kube-scheduler's scheduling-queue timings (v1.31 defaults; see the data file's [sched])."""

    pod_initial_backoff_s: float = Field(default=1.0, ge=0)
    pod_max_backoff_s: float = Field(default=10.0, ge=0)
    max_in_unschedulable_s: float = Field(default=300.0, gt=0)
    unschedulable_flush_period_s: float = Field(default=30.0, gt=0)
    backoff_flush_period_s: float = Field(default=1.0, gt=0)

    def backoff(self, attempts: int) -> float:
        """kube's calculateBackoffDuration: initial x 2^(attempts - 1), at most max (attempts >= 1)."""
        duration = self.pod_initial_backoff_s
        for _ in range(1, attempts):
            if duration > self.pod_max_backoff_s - duration:
                return self.pod_max_backoff_s
            duration += duration
        return min(duration, self.pod_max_backoff_s)


@dataclass(frozen=True)
class Device:
    """Where a job runs: a whole GPU (profile "gpu") or a MIG slice, with its share of the GPU's SMs."""

    gpu_model: str
    profile: str
    compute_fraction: float
    memory_mib: int


@dataclass(frozen=True)
class RunPlan:
    """How a job runs on its device: `setup_s` holding it idle, then `busy_s` working; `sm_seconds` is the
    GPU-seconds of SM time it keeps busy (for utilization)."""

    setup_s: float
    busy_s: float
    sm_seconds: float = 0.0

    @property
    def duration(self) -> float:
        return self.setup_s + self.busy_s


class WhisperData(_Model):
    gpus: dict[str, GpuFacts]
    models: dict[str, WhisperModel]
    aliases: dict[str, str] = Field(default_factory=dict)
    audio: AudioSpec
    study_node: StudyNode
    latencies: Latencies
    kube_scheduler: KubeSchedulerParams

    @model_validator(mode="after")
    def _complete(self) -> WhisperData:
        problems = []
        for name, m in self.models.items():
            missing = sorted(set(self.gpus) - set(m.seconds_per_audio_second))
            extra = sorted(set(m.seconds_per_audio_second) - set(self.gpus))
            if missing:
                problems.append(f"models.{name}.seconds_per_audio_second: missing {', '.join(missing)}")
            if extra:
                problems.append(f"models.{name}.seconds_per_audio_second: {', '.join(extra)} not in gpus")
        for alias, target in self.aliases.items():
            if target not in self.models:
                problems.append(f"aliases.{alias}: {target!r} is not a model ({', '.join(self.models)})")
        if self.study_node.gpu_model not in self.gpus:
            problems.append(f"study_node.gpu_model: {self.study_node.gpu_model!r} is not in gpus")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def model(self, name: str) -> WhisperModel:
        """A model by name or alias (`large` -> `large-v3`); KeyError listing the known ones."""
        key = self.aliases.get(name, name)
        if key not in self.models:
            raise KeyError(f"no Whisper model {name!r}; known: {', '.join([*self.models, *self.aliases])}")
        return self.models[key]

    def device(self, catalog: ProfileCatalog, gpu_model: str, profile: str = WHOLE_GPU) -> Device:
        """A whole GPU (profile "gpu") or a MIG slice: compute fraction = slice SMs / GPU SMs (the
        slicer's profile table and `gpus`), memory from the profile table."""
        if gpu_model not in self.gpus:
            raise KeyError(f"no speed data for GPU {gpu_model!r}; known: {', '.join(self.gpus)}")
        if profile == WHOLE_GPU:
            return Device(gpu_model, profile, 1.0, catalog.model(gpu_model).memory_mib)
        p = catalog.profile(gpu_model, profile)
        return Device(
            gpu_model, profile, min(1.0, p.multiprocessors / self.gpus[gpu_model].multiprocessors), p.memory_mib
        )

    def run_plan(self, model: str, audio_s: float, device: Device) -> RunPlan | str:
        """How long `model` takes to transcribe `audio_s` seconds on `device`, or why it cannot run there."""
        m = self.model(model)
        if m.memory_mib > device.memory_mib:
            return (
                f"out of memory: whisper {model} needs {m.memory_mib} MiB, "
                f"{device.profile} on {device.gpu_model} has {device.memory_mib} MiB"
            )
        whole = audio_s * m.seconds_per_audio_second[device.gpu_model]
        return RunPlan(
            setup_s=m.setup_s,
            busy_s=whole * m.slowdown(device.compute_fraction),
            sm_seconds=whole * m.kernel_active * m.sm_occupancy,
        )


def _parse(raw: Any, source: str) -> WhisperData:
    if not isinstance(raw, dict):
        raise PerfDataError(f"{source}: expected a mapping with gpus, models, audio, ...")
    return validate_model(WhisperData, raw, source, PerfDataError)


def load_whisper_file(path: Path | str) -> WhisperData:
    return _parse(read_yaml(path, "Whisper performance data", PerfDataError), str(path))


@functools.cache
def load_whisper_data() -> WhisperData:
    """The shipped data file (flotilla/sim/data/whisper.yaml), read once."""
    file = resources.files("flotilla.sim") / "data" / "whisper.yaml"
    return _parse(yaml.safe_load(file.read_text(encoding="utf-8")), "flotilla/sim/data/whisper.yaml")
