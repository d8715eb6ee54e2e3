"""The scheduling framework (kube-scheduler's, reduced): a registry of plugins and the cycle.

    framework = default_registry().bind(ctx.config)      # unknown plugins and bad args fail here
    result = framework.schedule(ctx, pod, nodes)          # Bound | Unschedulable

A cycle for one pod, in phases:

1. prefilter: each enabled filter's cluster-wide check (GPUFit: is every MIG profile offered by some
   GPU model here?). A rejection ends the cycle: `0/N nodes are available: <message>.`, not retryable.
2. filter: per node (by name), the enabled filters in config order; the first rejection gives the
   node's reasons. Later filters still run on a rejected node only to learn whether it could ever
   hold the pod (any `retryable=False` status).
3. score: each enabled scorer gives every feasible node a score in [0, 1];
   total(node) = sum over scorers s of weight_s * score_s(node).
4. select: the highest total; ties (within 1e-9) broken by reservoir sampling with `ctx.rng`, as
   kube-scheduler's selectHost does (the k-th tied node replaces the choice with probability 1/k),
   so a seeded rng makes the choice reproducible.
5. reserve: the chosen node's device plan (devices.py) becomes `Bound.devices`.

No feasible node: `Unschedulable` with kube-scheduler's message (FitError.Error): for each distinct
reason the count of nodes that gave it, formatted `"<count> <reason>"`, sorted as strings, joined
by ", ": `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {gpu: bad}.`
`retryable` is False when every node said it could never hold the pod.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flotilla.api.errors import issues_from_validation
from flotilla.runtime.scheduling.devices import DeviceShortfall, plan_devices
from flotilla.runtime.scheduling.types import (
    Bound,
    FilterStatus,
    NodeInfo,
    PodInfo,
    SchedulerConfig,
    ScheduleResult,
    SchedulingContext,
    Unschedulable,
)

FilterFn = Callable[[SchedulingContext, PodInfo, NodeInfo, Any], FilterStatus | None]
PreFilterFn = Callable[[SchedulingContext, PodInfo, Sequence[NodeInfo], Any], str | None]
ScoreFn = Callable[[SchedulingContext, PodInfo, Sequence[NodeInfo], Any], Sequence[float]]

_P = TypeVar("_P", "FilterPlugin", "ScorePlugin")
NO_NODES = "no nodes available to schedule pods"  # kube-scheduler's ErrNoNodesAvailable
_TIE = 1e-9


class UnknownPluginError(LookupError):
    """A config names a plugin nobody registered (or a scorer as a filter); the message lists the known ones."""


class PluginArgsError(ValueError):
    """A plugin's args are invalid; the message names the plugin and the field."""


@dataclass(frozen=True)
class FilterPlugin:
    name: str
    params_model: type[BaseModel]
    fn: FilterFn
    prefilter: PreFilterFn | None = None


@dataclass(frozen=True)
class ScorePlugin:
    name: str
    params_model: type[BaseModel]
    fn: ScoreFn


class SchedulerRegistry:
    """Maps plugin names to filter and score plugins. Each plugin module calls `register(registry)`."""

    def __init__(self) -> None:
        self._filters: dict[str, FilterPlugin] = {}
        self._scorers: dict[str, ScorePlugin] = {}

    def _check_new(self, name: str, fn: Callable[..., Any]) -> None:
        if name in self._filters or name in self._scorers:
            raise ValueError(f"scheduler plugin {name!r} is already registered")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"scheduler plugin {name!r}: the function needs a docstring stating its rule")

    def register_filter(
        self, name: str, params_model: type[BaseModel], fn: FilterFn, prefilter: PreFilterFn | None = None
    ) -> None:
        self._check_new(name, fn)
        self._filters[name] = FilterPlugin(name, params_model, fn, prefilter)

    def register_scorer(self, name: str, params_model: type[BaseModel], fn: ScoreFn) -> None:
        self._check_new(name, fn)
        self._scorers[name] = ScorePlugin(name, params_model, fn)

    @property
    def filter_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._filters))

    @property
    def scorer_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._scorers))

    def filter(self, name: str) -> FilterPlugin:
        return _lookup(self._filters, name, "filter")

    def scorer(self, name: str) -> ScorePlugin:
        return _lookup(self._scorers, name, "scorer")

    def bind(self, config: SchedulerConfig) -> Framework:
        """The plugins `config` enables, with their args validated (UnknownPluginError, PluginArgsError)."""
        known = set(self._filters) | set(self._scorers)
        for name in config.args:
            if name not in known:
                raise UnknownPluginError(
                    f"args for unknown scheduler plugin {name!r}; known plugins: {', '.join(sorted(known))}"
                )
        filters = tuple((p, _params(p.name, p.params_model, config)) for p in map(self.filter, config.filters))
        scorers = tuple(
            (self.scorer(s.name), _params(s.name, self.scorer(s.name).params_model, config), s.weight)
            for s in config.scorers
        )
        return Framework(config, filters, scorers)

    def schedule(self, ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo]) -> ScheduleResult:
        """One cycle under `ctx.config` (binds each call; drivers scheduling many pods bind once)."""
        return self.bind(ctx.config).schedule(ctx, pod, nodes)


def _lookup(plugins: Mapping[str, _P], name: str, kind: str) -> _P:
    try:
        return plugins[name]
    except KeyError:
        raise UnknownPluginError(
            f"unknown scheduler {kind} {name!r}; known {kind}s: {', '.join(sorted(plugins)) or '(none)'}"
        ) from None


def _params(name: str, model: type[BaseModel], config: SchedulerConfig) -> BaseModel:
    try:
        return model.model_validate(dict(config.args.get(name, {})))
    except ValidationError as exc:
        issues = "; ".join(f"args.{i}" if i.path else f"args: {i}" for i in issues_from_validation(model, exc))
        raise PluginArgsError(f"scheduler plugin {name!r}: {issues}") from None


@dataclass(frozen=True)
class Framework:
    """Enabled plugins with validated params: what drivers call for each pod."""

    config: SchedulerConfig
    filters: tuple[tuple[FilterPlugin, BaseModel], ...]
    scorers: tuple[tuple[ScorePlugin, BaseModel, float], ...]

    def schedule(self, ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo]) -> ScheduleResult:
        """Choose a node and devices for `pod`, or say why none fits (see the module docstring)."""
        if ctx.config != self.config:
            raise ValueError("the context's scheduler config is not the one this framework was bound to")
        ordered = sorted(nodes, key=lambda n: n.name)
        if not ordered:
            return Unschedulable(NO_NODES, {}, retryable=True)
        rejected = self.prefilter(ctx, pod, ordered)
        if rejected is not None:
            return rejected
        feasible, statuses = self.filter(ctx, pod, ordered)
        if not feasible:
            return unschedulable(len(ordered), statuses)
        totals = self.score(ctx, pod, feasible)
        chosen, total = select(ctx, feasible, totals)
        return self.reserve(ctx, pod, chosen, total)

    def prefilter(self, ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Unschedulable | None:
        for plugin, params in self.filters:
            message = plugin.prefilter(ctx, pod, nodes, params) if plugin.prefilter else None
            if message is not None:
                return Unschedulable(
                    f"0/{len(nodes)} nodes are available: {message}.",
                    {n.name: (message,) for n in nodes},
                    retryable=False,
                )
        return None

    def filter(
        self, ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[list[NodeInfo], dict[str, FilterStatus]]:
        """The feasible nodes, and for each rejected one: the first rejection's reasons, and
        retryable=False if any filter said it never fits."""
        feasible: list[NodeInfo] = []
        statuses: dict[str, FilterStatus] = {}
        for node in nodes:
            first: FilterStatus | None = None
            for plugin, params in self.filters:
                status = plugin.fn(ctx, pod, node, params)
                if status is None:
                    continue
                first = first or status
                if not status.retryable:
                    first = FilterStatus(first.reasons, retryable=False)
                    break
            if first is None:
                feasible.append(node)
            else:
                statuses[node.name] = first
        return feasible, statuses

    def score(self, ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[float]:
        """total(node) = sum over enabled scorers of weight * score, each score checked to be in [0, 1]."""
        totals = [0.0] * len(nodes)
        for plugin, params, weight in self.scorers:
            scores = plugin.fn(ctx, pod, nodes, params)
            if len(scores) != len(nodes) or any(not (0.0 <= s <= 1.0) or math.isnan(s) for s in scores):
                raise ValueError(f"scorer {plugin.name!r} must return one score in [0, 1] per node, got {scores}")
            totals = [t + weight * s for t, s in zip(totals, scores, strict=True)]
        return totals

    def reserve(self, ctx: SchedulingContext, pod: PodInfo, node: NodeInfo, total: float) -> ScheduleResult:
        if not pod.wants_gpus:
            return Bound(node.name, (), total)
        plan = plan_devices(ctx, pod, node)
        if isinstance(plan, DeviceShortfall):  # GPUFit disabled in the config: the devices decide anyway
            return unschedulable(1, {node.name: FilterStatus((plan.reason,), plan.retryable)})
        return Bound(node.name, plan.devices, total)


def select(ctx: SchedulingContext, nodes: Sequence[NodeInfo], totals: Sequence[float]) -> tuple[NodeInfo, float]:
    """The node with the highest total; ties by reservoir sampling with ctx.rng (kube's selectHost)."""
    best_i, best, tied = 0, totals[0], 1
    for i in range(1, len(nodes)):
        if totals[i] > best + _TIE:
            best_i, best, tied = i, totals[i], 1
        elif totals[i] >= best - _TIE:
            tied += 1
            if ctx.rng.randrange(tied) == 0:
                best_i = i
    return nodes[best_i], totals[best_i]


def unschedulable(node_count: int, statuses: Mapping[str, FilterStatus]) -> Unschedulable:
    """kube-scheduler's FitError message over the rejected nodes' reasons."""
    histogram = Counter(r for s in statuses.values() for r in s.reasons)
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    return Unschedulable(
        f"0/{node_count} nodes are available: {', '.join(parts)}.",
        {name: s.reasons for name, s in statuses.items()},
        retryable=any(s.retryable for s in statuses.values()),
    )
