"""`pod_info()`: a Pod JSON dict -> the scheduler's `PodInfo`, with Kubernetes' request arithmetic.

Pod requests, as kube-scheduler computes them (k8s.io/component-helpers resource.PodRequests):

    effective(c)  = c.resources.limits overlaid by c.resources.requests   (limits stand in for missing requests)
    pod[r]        = max( sum over containers and sidecar init containers of effective(c)[r],
                         max over init containers i of effective(i)[r] + sidecars started before i )
                    + spec.overhead[r]

GPUs and MIG slices come out of the sum as `gpus` and `mig` (one entry per slice: a limit of
`nvidia.com/mig-1g.5gb: 2` is two entries). One container may hold either whole GPUs or one MIG
slice (the Dynamic Accelerator Slicer gives one slice per container); anything else is a
`PodSpecError` naming the field path. The Pod is read as a plain dict, so a real cluster's pods
(with fields Flotilla does not model) parse too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from flotilla.api.base import Toleration
from flotilla.api.errors import issues_from_validation
from flotilla.api.quantity import Quantity, QuantityError
from flotilla.runtime.scheduling.types import (
    GPU_RESOURCE,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodInfo,
    canonical_amount,
)
from flotilla.slicer.profiles import RESOURCE_PREFIX, profile_name_for_resource

_AFFINITY = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


class PodSpecError(ValueError):
    """A pod the scheduler cannot place as written: `path` is the field, the message says the fix."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    """The scheduler's view of `pod` (a Pod as a JSON dict); PodSpecError for what cannot be scheduled."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    containers = _containers(spec, "containers")
    inits = _containers(spec, "initContainers")
    if not containers:
        raise PodSpecError("spec.containers", "a pod needs at least one container")
    totals = _pod_requests(containers, inits, _quantities(spec.get("overhead"), "spec.overhead"))
    gpus = totals.pop(GPU_RESOURCE, Decimal(0))
    mig: list[str] = []
    for resource in _mig_order(containers, inits):
        count = totals.pop(resource)
        mig.extend([profile_name_for_resource(resource)] * int(count))
    return PodInfo(
        key=f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}",
        uid=str(meta.get("uid") or ""),
        requests={r: canonical_amount(r, Quantity(v)) for r, v in sorted(totals.items()) if v > 0},
        gpus=int(gpus),
        mig=tuple(mig),
        node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
        required_affinity=_required_affinity(spec),
        tolerations=_tolerations(spec.get("tolerations") or []),
        node_name=spec.get("nodeName") or None,
    )


# -- requests -------------------------------------------------------------------------------------
Amounts = dict[str, Decimal]


def _containers(spec: Mapping[str, Any], group: str) -> list[tuple[str, Mapping[str, Any]]]:
    return [(f"spec.{group}[{i}]", c) for i, c in enumerate(spec.get(group) or [])]


def _quantities(section: Any, path: str) -> Amounts:
    out: Amounts = {}
    for name, raw in (section or {}).items():
        try:
            q = Quantity.parse(raw)
        except QuantityError as exc:
            raise PodSpecError(f"{path}[{name}]", f"{exc} (a quantity looks like 2, 500m, 36Gi or 1e3)") from None
        if q.value < 0:
            raise PodSpecError(f"{path}[{name}]", f'"{q}" must be greater than or equal to 0')
        out[str(name)] = q.value
    return out


def _effective(path: str, container: Mapping[str, Any]) -> Amounts:
    """Limits overlaid by requests; checks the one-device-kind, one-slice rule of this container."""
    res = container.get("resources") or {}
    out = _quantities(res.get("limits"), f"{path}.resources.limits")
    out.update(_quantities(res.get("requests"), f"{path}.resources.requests"))
    where = f"{path}.resources.limits"
    for name, v in out.items():
        if (name == GPU_RESOURCE or name.startswith(RESOURCE_PREFIX)) and v != v.to_integral_value():
            raise PodSpecError(where, f"{name}: {v} is not a whole number of devices")
    slices = {n: int(v) for n, v in out.items() if n.startswith(RESOURCE_PREFIX) and v > 0}
    asked = ", ".join(f"{n}: {v}" for n, v in sorted(slices.items()))
    if slices and out.get(GPU_RESOURCE, 0) > 0:
        raise PodSpecError(
            where,
            f"asks for both {GPU_RESOURCE} and a MIG slice ({asked}); a container gets either whole GPUs "
            "or one MIG slice: put them in separate containers",
        )
    if sum(slices.values()) > 1:
        raise PodSpecError(
            where,
            f"asks for {sum(slices.values())} MIG slices ({asked}); the Dynamic Accelerator Slicer gives one "
            "slice per container: use one larger profile, or one container per slice",
        )
    return out


def _add(into: Amounts, amounts: Mapping[str, Decimal]) -> None:
    for name, v in amounts.items():
        into[name] = into.get(name, Decimal(0)) + v


def _pod_requests(
    containers: Sequence[tuple[str, Mapping[str, Any]]],
    inits: Sequence[tuple[str, Mapping[str, Any]]],
    overhead: Amounts,
) -> Amounts:
    total: Amounts = {}
    for path, c in containers:
        _add(total, _effective(path, c))
    sidecars: Amounts = {}
    init_peak: Amounts = {}
    for path, c in inits:
        amounts = _effective(path, c)
        if c.get("restartPolicy") == "Always":  # a sidecar runs alongside the app containers
            _add(total, amounts)
            _add(sidecars, amounts)
            during = dict(sidecars)
        else:
            during = dict(sidecars)
            _add(during, amounts)
        for name, v in during.items():
            init_peak[name] = max(init_peak.get(name, Decimal(0)), v)
    for name, v in init_peak.items():
        total[name] = max(total.get(name, Decimal(0)), v)
    _add(total, overhead)
    return total


def _mig_order(
    containers: Sequence[tuple[str, Mapping[str, Any]]], inits: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[str]:
    """MIG resources in order of first appearance: app containers, then init containers."""
    seen: list[str] = []
    for _, c in (*containers, *inits):
        res = c.get("resources") or {}
        for section in ("limits", "requests"):
            for name in res.get(section) or {}:
                if str(name).startswith(RESOURCE_PREFIX) and name not in seen:
                    seen.append(str(name))
    return seen


# -- placement constraints -----------------------------------------------------------------------
def _tolerations(raw: Sequence[Any]) -> tuple[Toleration, ...]:
    out = []
    for i, t in enumerate(raw):
        try:
            out.append(Toleration.model_validate(t))
        except ValidationError as exc:
            issue = issues_from_validation(Toleration, exc)[0]
            raise PodSpecError(
                f"spec.tolerations[{i}]" + (f".{issue.path}" if issue.path else ""), issue.message
            ) from None
    return tuple(out)


def _required_affinity(spec: Mapping[str, Any]) -> tuple[NodeSelectorTerm, ...] | None:
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return None
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        raise PodSpecError(f"{_AFFINITY}.nodeSelectorTerms", "must have at least one node selector term")
    return tuple(_term(t, f"{_AFFINITY}.nodeSelectorTerms[{i}]") for i, t in enumerate(terms))


def _term(raw: Mapping[str, Any], path: str) -> NodeSelectorTerm:
    expressions = tuple(
        _requirement(r, f"{path}.matchExpressions[{j}]") for j, r in enumerate(raw.get("matchExpressions") or [])
    )
    fields = tuple(_requirement(r, f"{path}.matchFields[{j}]") for j, r in enumerate(raw.get("matchFields") or []))
    for j, f in enumerate(fields):
        if f.key != "metadata.name" or f.operator not in ("In", "NotIn"):
            raise PodSpecError(
                f"{path}.matchFields[{j}]", "only key metadata.name with operator In or NotIn is supported"
            )
    return NodeSelectorTerm(expressions, fields)


def _requirement(raw: Mapping[str, Any], path: str) -> NodeSelectorRequirement:
    key, op, values = raw.get("key"), raw.get("operator"), tuple(str(v) for v in raw.get("values") or [])
    if not key:
        raise PodSpecError(f"{path}.key", "required")
    if op not in _OPERATORS:
        raise PodSpecError(f"{path}.operator", f"{op!r} is not one of {', '.join(_OPERATORS)}")
    if op in ("In", "NotIn") and not values:
        raise PodSpecError(f"{path}.values", f"must be non-empty when operator is {op}")
    if op in ("Exists", "DoesNotExist") and values:
        raise PodSpecError(f"{path}.values", f"must be empty when operator is {op}")
    if op in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
        raise PodSpecError(f"{path}.values", f"must be a single integer when operator is {op}")
    return NodeSelectorRequirement(str(key), op, values)
