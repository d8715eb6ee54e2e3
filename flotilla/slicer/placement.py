"""The contract between MIG placement policies and their drivers, and the registry of policies.

Drivers (the emulated GPU backend, the simulator, `benchmarks/slicer_bench.py`) hold GPUs as
immutable `GPUState` snapshots, and for each `PlacementRequest` call a `BoundPolicy` (a registered
policy with validated params, chosen by `PlacementConfig`) with a `PlacementContext`. The answer is
a `Placement` (GPU, start, size) or a `NoPlacement` that says why: `NoCapacity` (retry when capacity
frees up) or `UnsupportedProfile` (no GPU model in the snapshot has the profile: it can never fit).
Policies never do I/O, never read the clock and never choose an unhealthy GPU (the bound policy
checks every choice).

GPUs are considered in the order the driver passes them; drivers pass a stable order
(`stable_order`: by node, then GPU UUID, as the Dynamic Accelerator Slicer sorts them).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from flotilla.api.errors import issues_from_validation
from flotilla.slicer.profiles import ProfileCatalog
from flotilla.slicer.slots import MAX_SLOTS, range_mask


# -- snapshot --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SlotRange:
    """An occupied range of slots: a MIG instance of `profile` that `owner` (a pod, a job) holds."""

    start: int
    size: int
    owner: str
    profile: str


@dataclass(frozen=True, slots=True)
class GPUState:
    """One GPU as a policy sees it. `occupied` (derived) is the bitmask of its taken slots."""

    uuid: str
    node: str
    model: str  # a catalog key, e.g. "A100-40GB"
    allocations: tuple[SlotRange, ...] = ()
    healthy: bool = True
    occupied: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        occupied = 0
        for a in self.allocations:
            if a.start < 0 or a.size < 1 or a.start + a.size > MAX_SLOTS:
                raise ValueError(
                    f"GPU {self.uuid}: {a.owner} at {a.start}:{a.size} is outside slots 0..{MAX_SLOTS - 1}"
                )
            mask = range_mask(a.start, a.size)
            if mask & occupied:
                raise ValueError(f"GPU {self.uuid}: {a.owner} at {a.start}:{a.size} overlaps another allocation")
            occupied |= mask
        object.__setattr__(self, "occupied", occupied)

    def with_allocation(self, allocation: SlotRange) -> GPUState:
        """A copy of this GPU with one more allocation (ValueError if it overlaps)."""
        return replace(self, allocations=(*self.allocations, allocation))

    def without_owner(self, owner: str) -> GPUState:
        """A copy of this GPU with `owner`'s allocations released."""
        return replace(self, allocations=tuple(a for a in self.allocations if a.owner != owner))

    def count(self, profile: str) -> int:
        """How many instances of `profile` this GPU holds."""
        return sum(1 for a in self.allocations if a.profile == profile)


def stable_order(gpus: Iterable[GPUState]) -> tuple[GPUState, ...]:
    """GPUs by node, then UUID: the order policies scan and break ties in."""
    return tuple(sorted(gpus, key=lambda g: (g.node, g.uuid)))


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """Place one MIG instance of `profile` (a profile name: `3g.20gb`) for `owner`."""

    profile: str
    owner: str


# -- config and context -----------------------------------------------------------------------------
class PlacementConfig(BaseModel):
    """Which registered placement policy to use, and its params (validated by the policy's model)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    policy: str = "first-fit"  # what the Dynamic Accelerator Slicer does
    params: Mapping[str, Any] = {}


@dataclass(frozen=True)
class PlacementContext:
    """What a decision is made under: a seeded generator, the profile tables, the placement config.

    Drivers bind `config` once (`registry.bind(ctx.config)`) and call the bound policy per request;
    the bound policy refuses a context whose config names another policy.
    """

    rng: random.Random
    catalog: ProfileCatalog
    config: PlacementConfig = field(default_factory=PlacementConfig)


# -- result ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Placement:
    gpu: str  # GPU UUID
    node: str
    start: int
    size: int
    profile: str
    owner: str

    def allocation(self) -> SlotRange:
        return SlotRange(self.start, self.size, self.owner, self.profile)


@dataclass(frozen=True, slots=True)
class NoPlacement:
    """Why a request was not placed; `retry` says whether waiting can help."""

    profile: str
    owner: str
    reason: Literal["NoCapacity", "UnsupportedProfile"]
    message: str

    @property
    def retry(self) -> Literal["on-capacity", "never"]:
        return "never" if self.reason == "UnsupportedProfile" else "on-capacity"


PlacementDecision = Placement | NoPlacement


@dataclass(frozen=True, slots=True)
class Choice:
    """What a policy returns: the index of the chosen GPU in the sequence it was given, and the start."""

    index: int
    start: int


PolicyFn = Callable[[PlacementContext, PlacementRequest, Sequence[GPUState], Any], Choice | None]


# -- registry --------------------------------------------------------------------------------------
class UnknownPolicyError(LookupError):
    """A config names a placement policy nobody registered; the message lists the known ones."""


class PolicyParamsError(ValueError):
    """A policy's params are invalid; the message names the field."""


class PolicyViolation(RuntimeError):
    """A policy chose an unhealthy GPU or slots that are not free: a bug in the policy."""


@dataclass(frozen=True)
class PlacementPlugin:
    name: str
    params_model: type[BaseModel]
    fn: PolicyFn

    @property
    def doc(self) -> str:
        return self.fn.__doc__ or ""


class PlacementRegistry:
    """Maps policy names to plugins. Each plugin module calls `register(...)` on the registry it is given."""

    def __init__(self) -> None:
        self._plugins: dict[str, PlacementPlugin] = {}

    def register(self, name: str, params_model: type[BaseModel], fn: PolicyFn) -> None:
        if name in self._plugins:
            raise ValueError(f"placement policy {name!r} is already registered")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"placement policy {name!r}: the function needs a docstring stating its formula")
        self._plugins[name] = PlacementPlugin(name, params_model, fn)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._plugins))

    def plugin(self, name: str) -> PlacementPlugin:
        try:
            return self._plugins[name]
        except KeyError:
            raise UnknownPolicyError(
                f"unknown placement policy {name!r}; known policies: {', '.join(self.names) or '(none)'}"
            ) from None

    def bind(self, config: PlacementConfig) -> BoundPolicy:
        """The policy `config` names, with its params validated (UnknownPolicyError, PolicyParamsError)."""
        plugin = self.plugin(config.policy)
        try:
            params = plugin.params_model.model_validate(dict(config.params))
        except ValidationError as exc:
            issues = "; ".join(
                f"params.{i}" if i.path else f"params: {i}" for i in issues_from_validation(plugin.params_model, exc)
            )
            raise PolicyParamsError(f"placement policy {config.policy!r}: {issues}") from None
        return BoundPolicy(plugin, params)

    def decide(self, ctx: PlacementContext, request: PlacementRequest, gpus: Sequence[GPUState]) -> PlacementDecision:
        """One decision under `ctx.config` (binds each call; drivers placing many requests bind once)."""
        return self.bind(ctx.config).place(ctx, request, gpus)


@dataclass(frozen=True)
class BoundPolicy:
    """A registered policy with validated params: what drivers call for each request."""

    plugin: PlacementPlugin
    params: BaseModel

    @property
    def name(self) -> str:
        return self.plugin.name

    def place(self, ctx: PlacementContext, request: PlacementRequest, gpus: Sequence[GPUState]) -> PlacementDecision:
        """Place `request` on one of `gpus` (in their given order), or say why not."""
        if ctx.config.policy != self.name:
            raise ValueError(f"context config names placement policy {ctx.config.policy!r}, not {self.name!r}")
        choice = self.plugin.fn(ctx, request, gpus, self.params)
        if choice is None:
            return _no_placement(ctx.catalog, request, gpus)
        gpu = gpus[choice.index]
        slots = ctx.catalog.slots(gpu.model, request.profile)
        if (
            slots is None
            or not gpu.healthy
            or choice.start not in slots.free_starts(gpu.occupied)
            or (slots.limited and gpu.count(request.profile) >= slots.profile.max_instances)
        ):
            raise PolicyViolation(
                f"placement policy {self.name!r} chose GPU {gpu.uuid} start {choice.start} for {request.profile}, "
                f"which is not a free placement on a healthy {gpu.model} GPU"
            )
        return Placement(gpu.uuid, gpu.node, choice.start, slots.size, request.profile, request.owner)


def _no_placement(catalog: ProfileCatalog, request: PlacementRequest, gpus: Sequence[GPUState]) -> NoPlacement:
    offering = set(catalog.models_offering(request.profile))
    if any(g.model in offering for g in gpus):
        return NoPlacement(
            request.profile,
            request.owner,
            "NoCapacity",
            f"no healthy GPU has a free placement for {request.profile} now",
        )
    present = sorted({g.model for g in gpus})
    offered = "; ".join(f"{m}: {', '.join(catalog.models[m].profile_names)}" for m in present if m in catalog.models)
    return NoPlacement(
        request.profile,
        request.owner,
        "UnsupportedProfile",
        f"no GPU model in the cluster has MIG profile {request.profile!r}, so it can never be placed"
        + (f"; profiles offered: {offered}" if offered else "; the cluster has no GPUs with a profile table"),
    )
