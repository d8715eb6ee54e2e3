"""Health checks as pure plugins, their registry and config, and how verdicts combine.

A GPU check judges one `GPUReadings`; a node check judges one `NodeReadings`. Each returns a
`CheckResult(check, verdict, message)`, with verdict PASS when it finds nothing (including when
what it needs is not available). Verdicts are Autopilot's, ordered by severity:

    PASS < WARN < TESTING < EVICT < ERR

WARN: degraded, keep running; EVICT: stop what runs on the device and place nothing new there;
ERR: the device (or node) cannot be used at all; TESTING: a deeper diagnostic is under way
(set by whoever runs one, never by these checks). A GPU's verdict is the worst of its checks,
a node's the worst of its GPUs' and its node checks'.

Checks live in `flotilla.telemetry.plugins`, one per module (frozen params model, docstring stating
the rule, `register(registry)`); `HealthConfig` says which run and with what params, and
`CheckRegistry.bind(config)` validates both once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flotilla.api.core import GPUHealth
from flotilla.api.errors import issues_from_validation
from flotilla.telemetry.readings import GPUReadings

Verdict = GPUHealth
SEVERITY: Mapping[Verdict, int] = MappingProxyType({"PASS": 0, "WARN": 1, "TESTING": 2, "EVICT": 3, "ERR": 4})
Scope = Literal["gpu", "node"]
GPU_CHECKS = ("reachable", "pciebw", "remapped", "ecc", "power", "temperature", "xid")
NODE_CHECKS = ("ping",)
ALL_CHECKS = GPU_CHECKS + NODE_CHECKS


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe verdict (PASS for none)."""
    return max(verdicts, key=SEVERITY.__getitem__, default="PASS")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict and why, e.g. `remapped: row remapping failure on GPU-1 (...)`."""

    check: str
    verdict: Verdict
    message: str

    @property
    def failed(self) -> bool:
        return self.verdict != "PASS"


@dataclass(frozen=True, slots=True)
class NodeReadings:
    """What node checks judge: the ping probe's target ("host:port") and latency (None: no answer)."""

    node: str
    ping_target: str | None = None
    ping_latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class GPUVerdict:
    """A GPU's verdict, its failing checks (worst first, then in config order) and every result."""

    verdict: Verdict
    failing: tuple[CheckResult, ...] = ()
    results: tuple[CheckResult, ...] = ()

    @property
    def message(self) -> str | None:
        """The first failing check's message: what `status.gpus[i].healthMessage` shows."""
        return self.failing[0].message if self.failing else None


def combine(results: Iterable[CheckResult]) -> GPUVerdict:
    """The verdict of a set of results: the worst, with the failing ones worst first (stable)."""
    results = tuple(results)
    failing = sorted((r for r in results if r.failed), key=lambda r: -SEVERITY[r.verdict])
    return GPUVerdict(worst(r.verdict for r in results), tuple(failing), results)


def node_verdict(gpus: Iterable[GPUVerdict], node_results: Iterable[CheckResult] = ()) -> Verdict:
    """A node's verdict: the worst of its GPUs' verdicts and its node checks'."""
    return worst([*(g.verdict for g in gpus), *(r.verdict for r in node_results)])


# -- config --------------------------------------------------------------------------------------
class HealthConfig(BaseModel):
    """Which checks run, their params (thresholds) by check name, and how often (seconds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    checks: tuple[str, ...] = ALL_CHECKS
    params: Mapping[str, Mapping[str, Any]] = {}
    interval: float = Field(10.0, gt=0)


class HealthConfigError(ValueError):
    """A HealthConfig names an unknown check or gives a check params it does not accept."""


# -- registry ------------------------------------------------------------------------------------
GPUCheckFn = Callable[[GPUReadings, Any], CheckResult]
NodeCheckFn = Callable[[NodeReadings, Any], CheckResult]


@dataclass(frozen=True)
class CheckPlugin:
    name: str
    scope: Scope
    params_model: type[BaseModel]
    fn: Callable[[Any, Any], CheckResult]

    @property
    def doc(self) -> str:
        return self.fn.__doc__ or ""


class CheckRegistry:
    """Maps check names to plugins. Each plugin module calls `register(...)` on the registry it is given."""

    def __init__(self) -> None:
        self._plugins: dict[str, CheckPlugin] = {}

    def register(
        self, name: str, params_model: type[BaseModel], fn: Callable[[Any, Any], CheckResult], scope: Scope = "gpu"
    ) -> None:
        """Add a check; `scope` "gpu" takes `GPUReadings`, "node" takes `NodeReadings`."""
        if name in self._plugins:
            raise ValueError(f"health check {name!r} is already registered")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"health check {name!r}: the function needs a docstring stating its rule")
        self._plugins[name] = CheckPlugin(name, scope, params_model, fn)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._plugins))

    def plugin(self, name: str) -> CheckPlugin:
        try:
            return self._plugins[name]
        except KeyError:
            raise HealthConfigError(
                f"unknown health check {name!r}; known checks: {', '.join(self.names) or '(none)'}"
            ) from None

    def bind(self, config: HealthConfig) -> BoundChecks:
        """The checks `config` enables, with params validated (HealthConfigError names the field)."""
        for name in config.params:
            self.plugin(name)
            if name not in config.checks:
                raise HealthConfigError(f"params.{name}: check {name!r} is not enabled in checks")
        bound: list[tuple[CheckPlugin, BaseModel]] = []
        for name in dict.fromkeys(config.checks):
            plugin = self.plugin(name)
            try:
                params = plugin.params_model.model_validate(dict(config.params.get(name, {})))
            except ValidationError as exc:
                issues = "; ".join(
                    f"params.{name}.{i}" if i.path else f"params.{name}: {i}"
                    for i in issues_from_validation(plugin.params_model, exc)
                )
                raise HealthConfigError(f"health check {name!r}: {issues}") from None
            bound.append((plugin, params))
        return BoundChecks(
            tuple(b for b in bound if b[0].scope == "gpu"), tuple(b for b in bound if b[0].scope == "node")
        )


@dataclass(frozen=True)
class BoundChecks:
    """The enabled checks with validated params: what drivers call per GPU and per node."""

    gpu: tuple[tuple[CheckPlugin, BaseModel], ...]
    node: tuple[tuple[CheckPlugin, BaseModel], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p, _ in (*self.gpu, *self.node))

    def evaluate_gpu(self, readings: GPUReadings) -> GPUVerdict:
        """Run every enabled GPU check on `readings`."""
        return combine(plugin.fn(readings, params) for plugin, params in self.gpu)

    def evaluate_node(self, readings: NodeReadings) -> tuple[CheckResult, ...]:
        """Run every enabled node check on `readings`."""
        return tuple(plugin.fn(readings, params) for plugin, params in self.node)


def evaluate_gpu(
    readings: GPUReadings, config: HealthConfig | None = None, registry: CheckRegistry | None = None
) -> GPUVerdict:
    """One GPU's verdict under `config` (default: every built-in check with default params).
    Drivers evaluating many GPUs bind once (`registry.bind(config)`) instead."""
    if registry is None:
        from flotilla.telemetry.plugins import default_registry  # plugins import this module

        registry = default_registry()
    return registry.bind(config or HealthConfig()).evaluate_gpu(readings)


def default_registry() -> CheckRegistry:
    """A new registry with every built-in check (see `flotilla.telemetry.plugins`)."""
    from flotilla.telemetry.plugins import default_registry as make

    return make()


def gpu_label(uuid: str) -> str:
    """How messages name a GPU: its UUID (`GPU-...`), or "the GPU" when it has none."""
    return uuid or "the GPU"
