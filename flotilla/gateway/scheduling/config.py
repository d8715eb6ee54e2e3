"""Loading scheduling profiles from GAIE's EndpointPickerConfig, strictly.

    apiVersion: inference.networking.x-k8s.io/v1alpha1
    kind: EndpointPickerConfig
    plugins:                          # plugin instances: a registered type, a unique name (default: the type)
    - type: prefix-cache-scorer
      parameters: {blockSize: 64}     # validated by the plugin's params model
    - type: max-score-picker
    schedulingProfiles:
    - name: default
      plugins:                        # filters run in the order listed; scorers are summed with their weight
      - pluginRef: prefix-cache-scorer
        weight: 3                     # scorers only; default 1 (GAIE's default)
      - pluginRef: max-score-picker   # at most one picker; none -> max-score-picker

Every problem is reported, each as `file: field.path: message` (`ProfileConfigError`). GAIE's
`single-profile-handler` may be listed under `plugins` (GAIE configs carry one) and is ignored: with
one profile per request there is nothing to handle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flotilla.api.configfile import read_yaml
from flotilla.api.errors import issues_from_validation
from flotilla.gateway.scheduling.plugins import default_registry
from flotilla.gateway.scheduling.profile import Profile
from flotilla.gateway.scheduling.registry import (
    BoundPlugin,
    PluginParamsError,
    SchedulerRegistry,
    UnknownPluginError,
)

API_VERSION = "inference.networking.x-k8s.io/v1alpha1"
KIND = "EndpointPickerConfig"
DEFAULT_PICKER = "max-score-picker"
PROFILE_HANDLERS = frozenset({"single-profile-handler"})


class ProfileConfigError(ValueError):
    """An EndpointPickerConfig is invalid; one line per problem: `file: field.path: message`."""

    def __init__(self, issues: str | Iterable[str]) -> None:
        self.issues = (issues,) if isinstance(issues, str) else tuple(issues)
        super().__init__("\n".join(self.issues))


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PluginSpecEntry(_Strict):
    type: str = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1)
    parameters: dict[str, Any] | None = None


class PluginRef(_Strict):
    pluginRef: str = Field(min_length=1)
    weight: float | None = Field(default=None, ge=0)


class SchedulingProfileSpec(_Strict):
    name: str = Field(min_length=1)
    plugins: list[PluginRef] = Field(min_length=1)


class EndpointPickerConfig(_Strict):
    apiVersion: Literal["inference.networking.x-k8s.io/v1alpha1"]
    kind: Literal["EndpointPickerConfig"]
    plugins: list[PluginSpecEntry] = Field(min_length=1)
    schedulingProfiles: list[SchedulingProfileSpec] = Field(min_length=1)


def _bind_plugins(
    config: EndpointPickerConfig, registry: SchedulerRegistry, issues: list[str], src: str
) -> dict[str, BoundPlugin | None]:
    """Plugin instances by name: None for a profile handler (ignored) or a plugin with errors (reported)."""
    bound: dict[str, BoundPlugin | None] = {}
    for i, entry in enumerate(config.plugins):
        name = entry.name or entry.type
        where = f"{src}: plugins[{i}]"
        if name in bound:
            issues.append(f"{where}.name: {name!r} is already the name of another plugin; give each a unique name")
            continue
        if entry.type in PROFILE_HANDLERS:
            bound[name] = None
            continue
        try:
            bound[name] = registry.bind(entry.type, entry.parameters, name)
        except UnknownPluginError as exc:
            issues.append(f"{where}.type: {exc}")
            bound[name] = None
        except PluginParamsError as exc:
            issues.extend(
                f"{where}.parameters.{i.path}: {i.message}" if i.path else f"{where}.parameters: {i.message}"
                for i in exc.issues
            )
            bound[name] = None
    return bound


def _build_profile(
    j: int,
    spec: SchedulingProfileSpec,
    bound: Mapping[str, BoundPlugin | None],
    handlers: Mapping[str, bool],
    registry: SchedulerRegistry,
    issues: list[str],
    src: str,
) -> Profile | None:
    filters: list[BoundPlugin] = []
    scorers: list[tuple[BoundPlugin, float]] = []
    pickers: list[BoundPlugin] = []
    ok = True
    seen: set[str] = set()
    for k, ref in enumerate(spec.plugins):
        where = f"{src}: schedulingProfiles[{j}].plugins[{k}]"
        if ref.pluginRef not in bound:
            issues.append(f"{where}.pluginRef: no plugin named {ref.pluginRef!r}; plugins: {', '.join(bound)}")
            ok = False
            continue
        if ref.pluginRef in seen:
            issues.append(f"{where}.pluginRef: {ref.pluginRef!r} is already in this profile")
            ok = False
            continue
        seen.add(ref.pluginRef)
        plugin = bound[ref.pluginRef]
        if plugin is None:
            if handlers.get(ref.pluginRef, False):
                issues.append(f"{where}.pluginRef: {ref.pluginRef!r} is a profile handler, not a profile plugin")
            ok = False  # otherwise its error is already reported
            continue
        if ref.weight is not None and plugin.kind != "scorer":
            issues.append(f"{where}.weight: only scorers take a weight; {ref.pluginRef!r} is a {plugin.kind}")
            ok = False
        elif plugin.kind == "filter":
            filters.append(plugin)
        elif plugin.kind == "scorer":
            scorers.append((plugin, 1.0 if ref.weight is None else ref.weight))
        else:
            pickers.append(plugin)
    if len(pickers) > 1:
        names = ", ".join(p.name for p in pickers)
        issues.append(f"{src}: schedulingProfiles[{j}].plugins: at most one picker per profile, got {names}")
        ok = False
    if not ok:
        return None
    picker = pickers[0] if pickers else registry.bind(DEFAULT_PICKER)
    return Profile(spec.name, tuple(filters), tuple(scorers), picker)


def profiles_from_document(raw: Any, source: str, registry: SchedulerRegistry | None = None) -> dict[str, Profile]:
    """The profiles an EndpointPickerConfig document (already parsed YAML) defines; ProfileConfigError otherwise."""
    registry = registry or default_registry()
    if not isinstance(raw, dict):
        raise ProfileConfigError([f"{source}: expected an EndpointPickerConfig (a mapping), got {type(raw).__name__}"])
    try:
        config = EndpointPickerConfig.model_validate(raw)
    except ValidationError as exc:
        raise ProfileConfigError(
            f"{source}: {issue}" for issue in issues_from_validation(EndpointPickerConfig, exc)
        ) from None
    issues: list[str] = []
    bound = _bind_plugins(config, registry, issues, source)
    handlers = {(e.name or e.type): e.type in PROFILE_HANDLERS for e in config.plugins}
    profiles: dict[str, Profile] = {}
    for j, spec in enumerate(config.schedulingProfiles):
        if spec.name in profiles:
            issues.append(f"{source}: schedulingProfiles[{j}].name: profile {spec.name!r} is defined twice")
            continue
        profile = _build_profile(j, spec, bound, handlers, registry, issues, source)
        if profile is not None:
            profiles[spec.name] = profile
    if issues:
        raise ProfileConfigError(issues)
    return profiles


def builtin_profiles_dir() -> Traversable:
    return resources.files("flotilla.gateway.scheduling") / "profiles"


def load_profiles(
    path: Path | None = None, registry: SchedulerRegistry | None = None, builtins: bool = True
) -> dict[str, Profile]:
    """Profiles by name. None: the built-ins (`default`, `precise-prefix`, `llm-d`, `random`, `round-robin`,
    shipped in scheduling/profiles/). A path (an EndpointPickerConfig file, or a folder: every
    `*.yaml` in it): its profiles on top of the built-ins (one of the same name replaces the built-in),
    or alone with `builtins=False`. A name defined twice within `path` is an error. Each call builds
    new profiles (with their own round-robin counters)."""
    registry = registry or default_registry()
    profiles = _load_from(builtin_profiles_dir(), registry) if path is None or builtins else {}
    if path is not None:
        profiles.update(_load_from(Path(path), registry))
    return profiles


def _load_from(root: Path | Traversable, registry: SchedulerRegistry) -> dict[str, Profile]:
    files: list[Path | Traversable] = (
        sorted((f for f in root.iterdir() if f.name.endswith((".yaml", ".yml"))), key=lambda f: f.name)
        if root.is_dir()
        else [root]
    )
    if not files:
        raise ProfileConfigError([f"{root}: no *.yaml EndpointPickerConfig files found"])
    profiles: dict[str, Profile] = {}
    origin: dict[str, str] = {}
    issues: list[str] = []
    for f in files:
        source = str(f)
        try:
            raw = read_yaml(f, "EndpointPickerConfig", ProfileConfigError) if isinstance(f, Path) else _read(f)
            found = profiles_from_document(raw, source, registry)
        except ProfileConfigError as exc:
            issues.extend(exc.issues)
            continue
        for name, profile in found.items():
            if name in profiles:
                issues.append(f"{source}: schedulingProfiles: profile {name!r} is already defined in {origin[name]}")
                continue
            profiles[name], origin[name] = profile, source
    if issues:
        raise ProfileConfigError(issues)
    return profiles


def _read(f: Traversable) -> Any:
    try:
        return yaml.safe_load(f.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileConfigError([f"{f}: malformed YAML: {exc}"]) from None
