"""MIG profile tables: the data files in `profiles/`, their models, the loader and the lookups.

One YAML file per GPU model (`profiles/a100-40gb.yaml`, ...), each citing where every number comes
from. A GPU has `slots` placement slots (its memory slices, 8 on every MIG GPU here); a profile
occupies `size` contiguous slots starting at one of its `starts`, as `nvidia-smi mig -lgipp` prints
them (`{0,4}:4` is starts 0 and 4, size 4). The loader validates every placement (inside the GPU,
aligned to its size) and names the file and field of anything wrong.

Lookups: by the product name NVML or GPU feature discovery reports (`NVIDIA A100-SXM4-40GB`,
`NVIDIA-A100-SXM4-40GB`, `NVIDIA-A100-SXM4-40GB-MIG-1g.5gb`), and by the extended resource name the
NVIDIA device plugin advertises (`nvidia.com/mig-3g.20gb`; a `+me` profile is `...gb.me`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flotilla.api.errors import FieldIssue, issues_from_validation
from flotilla.slicer.slots import MAX_SLOTS, ProfileSlots, SlotGeometry

RESOURCE_PREFIX = "nvidia.com/mig-"
_PROFILE_NAME = r"^[1-8]g\.\d+gb([+-][a-z.]+)?$"  # 1g.5gb, 1g.5gb+me, 1g.24gb-me, 2g.48gb+me.all
_FIELD_PATH = re.compile(r"[A-Za-z_]\w*(\[\d+\])*(\.[A-Za-z_]\w*(\[\d+\])*)*")
_MIG_SUFFIX = re.compile(r"-MIG-[1-8]g\.\d+gb.*$", re.IGNORECASE)

PositiveInt = Annotated[int, Field(gt=0)]


class MigProfile(BaseModel):
    """One GPU instance profile of one GPU model, as `nvidia-smi mig -lgip` / `-lgipp` list it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_PROFILE_NAME, description="e.g. 3g.20gb or 1g.5gb+me")
    profile_id: int = Field(ge=0, description="the ID column of nvidia-smi mig -lgip (GPU instance profile id)")
    nvml_profile: str = Field(pattern=r"^NVML_GPU_INSTANCE_PROFILE_\w+$")
    size: int = Field(ge=1, le=MAX_SLOTS, description="placement slots (memory slices) occupied")
    starts: tuple[int, ...] = Field(min_length=1, description="allowed first slots, ascending")
    memory_mib: PositiveInt
    compute_slices: int = Field(ge=1, le=MAX_SLOTS, description="SM slices (the N of Ng)")
    multiprocessors: PositiveInt
    max_instances: PositiveInt

    @field_validator("starts")
    @classmethod
    def _ascending(cls, starts: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 0 for s in starts):
            raise ValueError(f"starts must be slot numbers >= 0, got {list(starts)}")
        if list(starts) != sorted(set(starts)):
            raise ValueError(f"starts must be ascending without repeats, got {list(starts)}")
        return starts

    @model_validator(mode="after")
    def _consistent(self) -> MigProfile:
        for start in self.starts:
            if start % self.size:
                raise ValueError(
                    f"starts: start {start} is not aligned to size {self.size} (a start must be a multiple of the size)"
                )
        if self.compute_slices != int(self.name.split("g", 1)[0]):
            raise ValueError(f"compute_slices: {self.compute_slices} does not match the profile name {self.name}")
        if self.max_instances > len(self.starts):
            raise ValueError(
                f"max_instances: {self.max_instances} is more than the {len(self.starts)} placements in starts"
            )
        return self

    @property
    def resource_name(self) -> str:
        """The device plugin's extended resource: `nvidia.com/mig-3g.20gb`, `nvidia.com/mig-1g.5gb.me`."""
        return RESOURCE_PREFIX + self.name.replace("+", ".")


class GPUModel(BaseModel):
    """One GPU model's MIG geometry: its slots, compute slices and profiles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$", description="catalog key, e.g. A100-40GB")
    product_names: tuple[str, ...] = Field(min_length=1)
    memory_mib: PositiveInt
    slots: int = Field(ge=1, le=MAX_SLOTS)
    compute_slices: int = Field(ge=1, le=MAX_SLOTS)
    profiles: tuple[MigProfile, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _placements_fit(self) -> GPUModel:
        problems: list[str] = []
        names: dict[str, int] = {}
        ids: dict[int, int] = {}
        for i, p in enumerate(self.profiles):
            where = f"profiles[{i}]"
            if p.name in names:
                problems.append(f"{where}.name: {p.name} repeats profiles[{names[p.name]}]")
            names.setdefault(p.name, i)
            if p.profile_id in ids:
                problems.append(f"{where}.profile_id: {p.profile_id} repeats profiles[{ids[p.profile_id]}]")
            ids.setdefault(p.profile_id, i)
            for start in p.starts:
                if start + p.size > self.slots:
                    problems.append(
                        f"{where}.starts: start {start} + size {p.size} = {start + p.size} "
                        f"goes past the GPU's {self.slots} slots"
                    )
            if p.compute_slices > self.compute_slices:
                problems.append(f"{where}.compute_slices: {p.compute_slices} > the GPU's {self.compute_slices}")
            if p.memory_mib > self.memory_mib:
                problems.append(f"{where}.memory_mib: {p.memory_mib} > the GPU's {self.memory_mib}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def profile(self, name: str) -> MigProfile:
        """The profile called `name` (`3g.20gb`); UnknownProfileError lists the ones this model has."""
        for p in self.profiles:
            if p.name == name:
                return p
        raise UnknownProfileError(f"GPU model {self.model} has no MIG profile {name!r}; it has {self.profile_names}")

    @property
    def profile_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.profiles)


class ProfileDataError(ValueError):
    """A profile data file is invalid: every issue names the file and the field."""

    def __init__(self, file: str, issues: Iterable[FieldIssue]) -> None:
        self.file = file
        self.issues = tuple(issues)
        super().__init__("\n".join(f"{file}: {issue}" for issue in self.issues))


class UnknownGPUModelError(LookupError):
    """No GPU model in the catalog matches a product name or model key."""


class UnknownProfileError(LookupError):
    """A profile or resource name that the GPU model (or the catalog) does not have."""


def normalize_product(name: str) -> str:
    """One spelling for NVML and GPU-feature-discovery names: case-folded, spaces as dashes, no MIG suffix.

    `NVIDIA A100-SXM4-40GB`, `NVIDIA-A100-SXM4-40GB` and `NVIDIA-A100-SXM4-40GB-MIG-1g.5gb` (the label
    GFD writes under the `single` MIG strategy) are the same product.
    """
    dashed = "-".join(name.split())
    return _MIG_SUFFIX.sub("", dashed).casefold()


def profile_name_for_resource(resource: str) -> str:
    """`nvidia.com/mig-3g.20gb` -> `3g.20gb`; `nvidia.com/mig-1g.5gb.me` -> `1g.5gb+me`."""
    if not resource.startswith(RESOURCE_PREFIX):
        raise UnknownProfileError(f"{resource!r} is not a MIG resource name (expected {RESOURCE_PREFIX}<profile>)")
    name = resource.removeprefix(RESOURCE_PREFIX)
    head, sep, tail = name.partition("gb.")
    return f"{head}gb+{tail}" if sep else name


@dataclass(frozen=True)
class ProfileCatalog:
    """Every GPU model that was loaded, with lookups by model key, product name and resource name."""

    models: Mapping[str, GPUModel]
    geometry: Mapping[str, SlotGeometry] = field(repr=False)  # per model: bitmask tables (slots.py)
    _by_product: Mapping[str, str] = field(repr=False)

    @classmethod
    def of(cls, models: Iterable[GPUModel], sources: Sequence[str] = ()) -> ProfileCatalog:
        """A catalog of validated models; model keys and product names must be unique across them.

        `sources` (one per model: its file) name the file in a ProfileDataError.
        """
        by_key: dict[str, tuple[GPUModel, str]] = {}
        by_product: dict[str, str] = {}
        for i, m in enumerate(models):
            source = sources[i] if i < len(sources) else f"<model {m.model}>"
            if m.model in by_key:
                raise ProfileDataError(
                    source, [FieldIssue("model", f"{m.model} is already defined in {by_key[m.model][1]}")]
                )
            by_key[m.model] = (m, source)
            for j, product in enumerate(m.product_names):
                other = by_product.setdefault(normalize_product(product), m.model)
                if other != m.model:
                    issue = FieldIssue(
                        f"product_names[{j}]", f"{product!r} is already a product of {other} ({by_key[other][1]})"
                    )
                    raise ProfileDataError(source, [issue])
        ordered = {key: by_key[key][0] for key in sorted(by_key)}
        return cls(ordered, {key: SlotGeometry.of(m) for key, m in ordered.items()}, by_product)

    def model(self, key: str) -> GPUModel:
        try:
            return self.models[key]
        except KeyError:
            raise UnknownGPUModelError(f"no GPU model {key!r}; known models: {sorted(self.models)}") from None

    def for_product(self, product_name: str) -> GPUModel:
        """The model of a GPU by the name NVML or GPU feature discovery reports."""
        key = self._by_product.get(normalize_product(product_name))
        if key is None:
            raise UnknownGPUModelError(
                f"no MIG profile table for product {product_name!r}; known products: "
                + ", ".join(p for m in self.models.values() for p in m.product_names)
            )
        return self.models[key]

    def profile(self, model: str, name: str) -> MigProfile:
        return self.model(model).profile(name)

    def profile_for_resource(self, resource: str, model: str) -> MigProfile:
        """`nvidia.com/mig-3g.20gb` on `A100-40GB` -> that model's 3g.20gb profile."""
        return self.model(model).profile(profile_name_for_resource(resource))

    def slots(self, model: str, profile: str) -> ProfileSlots | None:
        """The placement tables of `profile` on `model`; None when the model lacks it (or is unknown)."""
        geometry = self.geometry.get(model)
        return geometry.profiles.get(profile) if geometry is not None else None

    def models_offering(self, profile: str) -> tuple[str, ...]:
        """The keys of the models that have a profile called `profile` (sizes may differ between them)."""
        return tuple(key for key, m in self.models.items() if profile in m.profile_names)


def _issues(exc: ValidationError) -> list[FieldIssue]:
    """Field issues. A whole-object check writes `field: problem; field: problem`: each becomes its own issue."""
    out: list[FieldIssue] = []
    for issue in issues_from_validation(GPUModel, exc):
        parts = [_split_path(part) for part in issue.message.split("; ")]
        if all(head for head, _ in parts):
            out.extend(FieldIssue(f"{issue.path}.{head}" if issue.path else head, text) for head, text in parts)
        else:
            out.append(issue)
    return out


def _split_path(message: str) -> tuple[str, str]:
    """`profiles[2].starts: start 6 ...` -> (`profiles[2].starts`, `start 6 ...`); ("", message) otherwise."""
    head, sep, rest = message.partition(": ")
    if sep and _FIELD_PATH.fullmatch(head):
        return head, rest
    return "", message


def load_profile_file(path: Path | Traversable) -> GPUModel:
    """Load and validate one profile data file."""
    name = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileDataError(name, [FieldIssue("", f"not valid YAML: {exc}")]) from None
    if not isinstance(raw, dict):
        raise ProfileDataError(name, [FieldIssue("", "expected a mapping with model, product_names, ...")])
    try:
        return GPUModel.model_validate(raw)
    except ValidationError as exc:
        raise ProfileDataError(name, _issues(exc)) from None


def load_catalog(directory: Path | None = None) -> ProfileCatalog:
    """Load every `*.yaml` in `directory` (default: the tables shipped in flotilla/slicer/profiles/)."""
    root: Path | Traversable = directory if directory is not None else resources.files("flotilla.slicer") / "profiles"
    files = sorted((f for f in root.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    if not files:
        raise ProfileDataError(str(root), [FieldIssue("", "no *.yaml profile files found")])
    return ProfileCatalog.of([load_profile_file(f) for f in files], [str(f) for f in files])
