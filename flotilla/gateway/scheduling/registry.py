"""The registry of endpoint-picker plugins: filters, scorers and pickers by their GAIE / llm-d type name.

Each plugin module defines a frozen pydantic params model (fields spelt as users write them in the
EndpointPickerConfig, camelCase) and a pure function, and calls `registry.filter(...)`,
`registry.scorer(...)` or `registry.picker(...)` from its `register(registry)`. The shapes:

    filter  (ctx, request, endpoints, params) -> list[EndpointSnapshot]     a subset of `endpoints`
    scorer  (ctx, request, endpoints, params) -> list[float]                one score in [0, 1] each
    picker  (ctx, scored, params) -> list[EndpointSnapshot]                 the candidates ranked, best first

`bind(type, parameters)` validates the parameters against the plugin's model and returns a
`BoundPlugin` that a `Profile` calls.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from flotilla.api.errors import FieldIssue, issues_from_validation
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, SchedulingContext

PluginKind = Literal["filter", "scorer", "picker"]
FilterFn = Callable[[SchedulingContext, InferenceRequest, Sequence[EndpointSnapshot], Any], list[EndpointSnapshot]]
ScorerFn = Callable[[SchedulingContext, InferenceRequest, Sequence[EndpointSnapshot], Any], list[float]]
PickerFn = Callable[[SchedulingContext, Sequence[tuple[EndpointSnapshot, float]], Any], list[EndpointSnapshot]]


class PluginParams(BaseModel):
    """Base of every plugin's params: frozen, unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class UnknownPluginError(LookupError):
    """A config names a plugin type nobody registered; the message lists the known ones."""


class PluginParamsError(ValueError):
    """A plugin's parameters are invalid; `issues` name each field (relative to `parameters`)."""

    def __init__(self, plugin_type: str, issues: Sequence[FieldIssue]) -> None:
        self.plugin_type = plugin_type
        self.issues = tuple(issues)
        super().__init__(f"plugin {plugin_type!r}: " + "; ".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class PluginSpec:
    type: str
    kind: PluginKind
    params_model: builtins.type[BaseModel]
    fn: Callable[..., Any]

    @property
    def doc(self) -> str:
        return self.fn.__doc__ or ""


@dataclass(frozen=True)
class BoundPlugin:
    """A plugin instance: its name in the config (defaults to its type), the plugin and validated params."""

    name: str
    spec: PluginSpec
    params: BaseModel

    @property
    def kind(self) -> PluginKind:
        return self.spec.kind

    @property
    def type(self) -> str:
        return self.spec.type


class SchedulerRegistry:
    """Maps plugin type names to plugins. No singleton: `default_registry()` builds a new one each call."""

    def __init__(self) -> None:
        self._plugins: dict[str, PluginSpec] = {}

    def register(self, kind: PluginKind, type_: str, params_model: type[BaseModel], fn: Callable[..., Any]) -> None:
        if type_ in self._plugins:
            raise ValueError(f"plugin type {type_!r} is already registered")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"plugin {type_!r}: the function needs a docstring stating its formula and tie-breaking")
        self._plugins[type_] = PluginSpec(type_, kind, params_model, fn)

    def filter(self, type_: str, params_model: type[BaseModel], fn: FilterFn) -> None:
        self.register("filter", type_, params_model, fn)

    def scorer(self, type_: str, params_model: type[BaseModel], fn: ScorerFn) -> None:
        self.register("scorer", type_, params_model, fn)

    def picker(self, type_: str, params_model: type[BaseModel], fn: PickerFn) -> None:
        self.register("picker", type_, params_model, fn)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._plugins))

    def names_of(self, kind: PluginKind) -> tuple[str, ...]:
        return tuple(sorted(n for n, p in self._plugins.items() if p.kind == kind))

    def plugin(self, type_: str) -> PluginSpec:
        try:
            return self._plugins[type_]
        except KeyError:
            raise UnknownPluginError(
                f"unknown plugin type {type_!r}; known types: {', '.join(self.names) or '(none)'}"
            ) from None

    def bind(self, type_: str, parameters: Mapping[str, Any] | None = None, name: str | None = None) -> BoundPlugin:
        """The plugin `type_` with `parameters` validated (UnknownPluginError, PluginParamsError)."""
        spec = self.plugin(type_)
        try:
            params = spec.params_model.model_validate(dict(parameters or {}))
        except ValidationError as exc:
            raise PluginParamsError(type_, issues_from_validation(spec.params_model, exc)) from None
        return BoundPlugin(name or type_, spec, params)
