"""Where the gateway's endpoints come from: static URLs, or InferencePools over the store's pods.

A source answers `await source.topology()` with a `Topology`: the pools (each with its ready
endpoints, failure mode and the model names it declares), the HTTPRoutes and the
InferenceObjectives. The gateway asks again every resync interval; a source is cheap to ask.

- `StaticEndpoints(urls)`: one pool named `static` holding one endpoint per URL (`http://host:port`;
  a path in the URL is ignored). Its models are learned from each endpoint's `/v1/models`.
- `PoolEndpoints(lister)`: every InferencePool in the store (or one namespace). A pool's endpoints
  are its ready pods: same namespace, labels matching `spec.selector.matchLabels`, phase Running,
  condition Ready=True, a `status.podIP`, not being deleted; one endpoint per (pod, target port),
  address `podIP:port`. A pool serves the models named in its annotation `flotilla.dev/models`
  (comma-separated) when set; otherwise the union of what its endpoints list at `/v1/models`.
  The annotation `flotilla.dev/scheduling-profile` picks a profile for the pool.
  The lister reads the store in process (`StoreLister`, an informer: list once, then watch) or the
  control plane over HTTP (`ClientLister`, a list per resync).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from flotilla.api import gaie, gatewayapi
from flotilla.api.gatewayapi import HTTPRoute
from flotilla.api.registry import Registry
from flotilla.client.http import ApiError, FlotillaClient
from flotilla.gateway.scheduling.types import Endpoint
from flotilla.store import Store
from flotilla.store.informer import Informer
from flotilla.store.service import resource_type

JSON = dict[str, Any]
FailureMode = Literal["FailOpen", "FailClose"]
STATIC_POOL = "static"
MODELS_ANNOTATION = "flotilla.dev/models"
PROFILE_ANNOTATION = "flotilla.dev/scheduling-profile"
POOL_KIND = (gaie.GROUP, "InferencePool")
POD_KIND = ("", "Pod")
OBJECTIVE_KIND = (gaie.X_GROUP, "InferenceObjective")
ROUTE_KIND = (gatewayapi.GROUP, "HTTPRoute")
KINDS = (POOL_KIND, POD_KIND, OBJECTIVE_KIND, ROUTE_KIND)


@dataclass(frozen=True)
class Pool:
    """An InferencePool as the gateway routes to it (or the static pool)."""

    name: str  # "namespace/name", or "static"
    endpoints: tuple[Endpoint, ...]
    failure_mode: FailureMode = "FailClose"
    models: frozenset[str] = frozenset()  # declared (annotation); empty: learned from /v1/models
    profile: str | None = None
    target_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Objective:
    """An InferenceObjective: requests naming it (header x-gateway-inference-objective) get its priority."""

    name: str
    namespace: str
    priority: int
    pool: str  # "namespace/name" of its poolRef


@dataclass(frozen=True)
class Topology:
    """What the gateway routes over, at one moment."""

    pools: Mapping[str, Pool] = field(default_factory=dict)
    routes: tuple[HTTPRoute, ...] = ()
    objectives: tuple[Objective, ...] = ()

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint of every pool, once per address (the first pool that has it)."""
        seen: dict[str, Endpoint] = {}
        for pool in self.pools.values():
            for e in pool.endpoints:
                seen.setdefault(e.address, e)
        return list(seen.values())

    def objective(self, name: str, pools: Iterable[str] = ()) -> Objective | None:
        """The objective called `name`, preferring one whose poolRef is among `pools`."""
        named = [o for o in self.objectives if o.name == name]
        wanted = set(pools)
        return next((o for o in named if o.pool in wanted), named[0] if named else None)


class EndpointSource(Protocol):
    async def topology(self) -> Topology: ...


def address_of(url: str) -> str:
    """`http://127.0.0.1:8000/v1` -> `127.0.0.1:8000` (ValueError without a host and port)."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    if parts.scheme not in ("http", ""):
        raise ValueError(f"{url!r}: only http:// endpoints are supported")
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r}: give the endpoint as http://HOST:PORT")
    return f"{parts.hostname}:{parts.port}"


class StaticEndpoints:
    """A fixed list of model-server URLs, as one pool named `static`."""

    def __init__(self, urls: Sequence[str], failure_mode: FailureMode = "FailClose") -> None:
        endpoints = tuple(Endpoint(name=u, address=address_of(u), pool=STATIC_POOL) for u in urls)
        self._topology = Topology({STATIC_POOL: Pool(STATIC_POOL, endpoints, failure_mode)})

    async def topology(self) -> Topology:
        return self._topology


# -- pools from the store -----------------------------------------------------------------------
class ObjectLister(Protocol):
    """Every object of one kind, as the store returns it (internal version); [] for a kind it lacks."""

    def list(self, group: str, kind: str) -> list[JSON]: ...


class StoreLister:
    """The store, in process, through an informer (one list, then the watch's events)."""

    def __init__(self, store: Store, registry: Registry) -> None:
        types = {k.kind: resource_type(k) for k in registry if (k.group, k.kind) in KINDS}
        self._informer = Informer(store, types, lambda *_: None)

    def list(self, group: str, kind: str) -> list[JSON]:
        self._informer.sync()
        return list(self._informer.objects.get(kind, {}).values())

    def close(self) -> None:
        self._informer.close()


class ClientLister:
    """A control plane over HTTP (`flotilla.client.FlotillaClient`): one list per call."""

    def __init__(self, client: FlotillaClient, registry: Registry) -> None:
        self._client = client
        self._kinds = {(k.group, k.kind): k for k in registry if (k.group, k.kind) in KINDS}

    def list(self, group: str, kind: str) -> list[JSON]:
        entry = self._kinds.get((group, kind))
        if entry is None:
            return []
        try:
            return list(self._client.list(entry).get("items") or [])
        except ApiError as exc:
            if exc.code == 404:  # a control plane that does not serve the kind
                return []
            raise


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Running, Ready=True, with an IP, and not being deleted."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _ns_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _csv(value: str | None) -> frozenset[str]:
    return frozenset(x.strip() for x in (value or "").split(",") if x.strip())


def build_topology(
    pools: Sequence[JSON], pods: Sequence[JSON], objectives: Sequence[JSON], routes: Sequence[JSON]
) -> Topology:
    """The topology of the store's objects (pure: no I/O)."""
    by_ns: dict[str, list[JSON]] = {}
    for pod in pods:
        if pod_ready(pod):
            by_ns.setdefault(_ns_name(pod)[0], []).append(pod)
    out: dict[str, Pool] = {}
    for obj in pools:
        ns, name = _ns_name(obj)
        spec = obj.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        ports = tuple(int(p["number"]) for p in spec.get("targetPorts") or [])
        endpoints: list[Endpoint] = []
        for pod in sorted(by_ns.get(ns, []), key=lambda p: _ns_name(p)[1]):
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            ip = pod["status"]["podIP"]
            for port in ports:
                suffix = f":{port}" if len(ports) > 1 else ""
                endpoints.append(Endpoint(f"{ns}/{_ns_name(pod)[1]}{suffix}", f"{ip}:{port}", f"{ns}/{name}", labels))
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        picker = spec.get("endpointPickerRef") or {}
        out[f"{ns}/{name}"] = Pool(
            name=f"{ns}/{name}",
            endpoints=tuple(endpoints),
            failure_mode="FailOpen" if picker.get("failureMode") == "FailOpen" else "FailClose",
            models=_csv(annotations.get(MODELS_ANNOTATION)),
            profile=annotations.get(PROFILE_ANNOTATION),
            target_ports=ports,
        )
    objs = []
    for obj in objectives:
        ns, name = _ns_name(obj)
        spec = obj.get("spec") or {}
        pool = (spec.get("poolRef") or {}).get("name", "")
        objs.append(Objective(name, ns, int(spec.get("priority") or 0), f"{ns}/{pool}"))
    parsed = tuple(HTTPRoute.model_validate(r) for r in routes)
    return Topology(out, parsed, tuple(objs))


class PoolEndpoints:
    """InferencePools, their pods, InferenceObjectives and HTTPRoutes from a lister (optionally one namespace)."""

    def __init__(self, lister: ObjectLister, namespace: str | None = None) -> None:
        self._lister = lister
        self._namespace = namespace

    def _read(self) -> Topology:
        def items(kind: tuple[str, str]) -> list[JSON]:
            found = self._lister.list(*kind)
            if self._namespace is None:
                return found
            return [o for o in found if _ns_name(o)[0] == self._namespace]

        return build_topology(items(POOL_KIND), items(POD_KIND), items(OBJECTIVE_KIND), items(ROUTE_KIND))

    async def topology(self) -> Topology:
        return await asyncio.to_thread(self._read)
