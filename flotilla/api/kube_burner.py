"""kube-burner configs: render every object template of every job iteration, ready to load.

The study drives its batch scenario with kube-burner (16 iterations x whisper-medium +
whisper-large Jobs); `render_kube_burner_config` produces the same documents for Flotilla.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flotilla.api.errors import issues_from_validation
from flotilla.api.templates import Template, TemplateError, render_template


class KubeBurnerConfigError(ValueError):
    """A kube-burner config that is not valid YAML or lacks what rendering needs."""


class _KubeBurnerModel(BaseModel):
    # kube-burner configs carry many settings Flotilla does not act on (qps, measurements, ...);
    # read the ones rendering needs and ignore the rest rather than rejecting real configs.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _KubeBurnerObject(_KubeBurnerModel):
    objectTemplate: str = Field(min_length=1)
    replicas: int = Field(ge=0)
    inputVars: dict[str, Any] | None = None


class _KubeBurnerJob(_KubeBurnerModel):
    name: str = Field(min_length=1)
    jobType: str = "create"
    jobIterations: int | None = Field(default=None, ge=0)
    namespace: str | None = None
    namespacedIterations: bool = True
    inputVars: dict[str, Any] | None = None
    objects: list[dict[str, Any]] | None = None  # YAML `objects:` with nothing under it, as in Go, is empty


class _KubeBurnerConfig(_KubeBurnerModel):
    jobs: list[_KubeBurnerJob] = Field(min_length=1)


@dataclass(frozen=True)
class RenderedObject:
    """One rendered object template: its YAML text and where it came from."""

    source: str  # e.g. "whisper-job-medium.yml[iteration=3]"
    text: str
    job: str
    iteration: int
    replica: int
    namespace: str | None  # the namespace kube-burner would create it in, if the job names one


@dataclass(frozen=True)
class MissingTemplate:
    """An objectTemplate whose file does not exist; rendering skipped it."""

    job: str
    template: str
    path: Path

    def __str__(self) -> str:
        return f'job "{self.job}": objectTemplate {self.template} not found at {self.path}; skipped'


@dataclass(frozen=True)
class KubeBurnerRender:
    """What a kube-burner config renders to, in kube-burner's creation order."""

    documents: tuple[RenderedObject, ...]
    missing: tuple[MissingTemplate, ...] = field(default=())

    def sources(self) -> list[tuple[str, str]]:
        """(source name, text) pairs, ready for `loader.load_sources`."""
        return [(d.source, d.text) for d in self.documents]


DEFAULT_UUID = "flotilla"


def _read_config(config_path: Path, vars: Mapping[str, Any]) -> _KubeBurnerConfig:
    try:
        rendered = render_template(config_path.read_text(encoding="utf-8"), vars, config_path.name)
    except TemplateError as exc:
        raise TemplateError(f"{exc}; pass config variables in vars") from None
    try:
        raw = yaml.safe_load(rendered)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise KubeBurnerConfigError(f"{config_path.name}: malformed YAML{where} after rendering") from None
    if not isinstance(raw, dict):
        raise KubeBurnerConfigError(f"{config_path.name}: expected a kube-burner config with jobs:")
    try:
        return _KubeBurnerConfig.model_validate(raw)
    except ValidationError as exc:
        issues = "; ".join(str(i) for i in issues_from_validation(_KubeBurnerConfig, exc))
        raise KubeBurnerConfigError(f"{config_path.name}: {issues}") from None


def _objects(job: _KubeBurnerJob, index: int, config: str) -> list[_KubeBurnerObject]:
    objects: list[_KubeBurnerObject] = []
    for i, raw in enumerate(job.objects or []):
        try:
            objects.append(_KubeBurnerObject.model_validate(raw))
        except ValidationError as exc:
            where = f"jobs[{index}].objects[{i}]"
            issues = "; ".join(f"{where}.{issue}" for issue in issues_from_validation(_KubeBurnerObject, exc))
            raise KubeBurnerConfigError(f"{config}: {issues}") from None
    return objects


def _job_templates(
    job: _KubeBurnerJob, index: int, config: Path, cache: dict[Path, Template], missing: list[MissingTemplate]
) -> list[tuple[_KubeBurnerObject, Template]]:
    """The job's objects with their parsed templates; missing files are recorded and skipped."""
    present: list[tuple[_KubeBurnerObject, Template]] = []
    for obj in _objects(job, index, config.name):
        file = config.parent / obj.objectTemplate
        if not file.is_file():
            missing.append(MissingTemplate(job.name, obj.objectTemplate, file))
            continue
        if file not in cache:
            cache[file] = Template(file.read_text(encoding="utf-8"), obj.objectTemplate)
        present.append((obj, cache[file]))
    return present


def _render_job(
    job: _KubeBurnerJob, iterations: int, objects: list[tuple[_KubeBurnerObject, Template]], uuid: Any
) -> list[RenderedObject]:
    """Every object of one job, in kube-burner's order: iteration, then object, then replica."""
    out: list[RenderedObject] = []
    for iteration in range(iterations):
        namespace = job.namespace
        if namespace and job.namespacedIterations:
            namespace = f"{namespace}-{iteration}"
        for obj, template in objects:
            for replica in range(1, obj.replicas + 1):
                values = {"Iteration": iteration, "Replica": replica, "JobName": job.name, "UUID": uuid}
                values |= (job.inputVars or {}) | (obj.inputVars or {})
                try:
                    text = template.render(values)
                except TemplateError as exc:
                    raise TemplateError(
                        f'{exc}; rendering job "{job.name}" iteration {iteration}: '
                        "set template variables in the job's or the object's inputVars"
                    ) from None
                label = f"iteration={iteration}" + (f",replica={replica}" if obj.replicas > 1 else "")
                out.append(
                    RenderedObject(f"{obj.objectTemplate}[{label}]", text, job.name, iteration, replica, namespace)
                )
    return out


def render_kube_burner_config(config_path: str | Path, vars: Mapping[str, Any] | None = None) -> KubeBurnerRender:
    """Render every object a kube-burner config creates, as kube-burner would.

    The config is itself a template, rendered with `vars` (plus `UUID`, default "flotilla").
    For each create job, each iteration `0..jobIterations-1`, each object and each replica
    `1..replicas`, the objectTemplate (a path relative to the config) is rendered with
    `Iteration`, `Replica`, `JobName`, `UUID`, the job's inputVars and the object's inputVars
    (later ones win). Templates whose file is missing are skipped and listed in `missing`.
    Jobs of other types (delete, patch, read) create nothing and are skipped.
    """
    path = Path(config_path)
    config_vars = {"UUID": DEFAULT_UUID, **(vars or {})}
    config = _read_config(path, config_vars)
    documents: list[RenderedObject] = []
    missing: list[MissingTemplate] = []
    cache: dict[Path, Template] = {}
    for index, job in enumerate(config.jobs):
        if job.jobType != "create":
            continue
        if job.jobIterations is None:
            raise KubeBurnerConfigError(f"{path.name}: jobs[{index}].jobIterations: required for a create job; set it")
        objects = _job_templates(job, index, path, cache, missing)
        documents += _render_job(job, job.jobIterations, objects, config_vars["UUID"])
    return KubeBurnerRender(tuple(documents), tuple(missing))
