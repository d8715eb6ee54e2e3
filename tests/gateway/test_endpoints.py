"""Endpoint sources: static URLs, and InferencePools over the store's ready pods (in process and over HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flotilla.api.catalog import build_registry
from flotilla.client import FlotillaClient
from flotilla.gateway.endpoints import (
    MODELS_ANNOTATION,
    ClientLister,
    PoolEndpoints,
    StaticEndpoints,
    StoreLister,
    address_of,
    build_topology,
    pod_ready,
)
from flotilla.store import Store
from flotilla.store.service import ResourceService

from .test_gatewayapi import gateway_registry

JSON = dict[str, Any]


def pod(name: str, ip: str | None = "127.1.0.1", ready: bool = True, ns: str = "ml", **labels: str) -> JSON:
    status: JSON = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "llm"}},
        "spec": {"containers": [{"name": "server", "image": "flotilla/emulated"}]},
        "status": status,
    }


def inference_pool(
    name: str, *ports: int, ns: str = "ml", mode: str = "FailClose", annotations: dict[str, str] | None = None
) -> JSON:
    meta: JSON = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": {"app": "llm"}},
            "targetPorts": [{"number": p} for p in ports or (8000,)],
            "endpointPickerRef": {"name": "epp", "port": {"number": 9002}, "failureMode": mode},
        },
    }


def objective(name: str, pool_name: str, priority: int, ns: str = "ml") -> JSON:
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferenceObjective",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"priority": priority, "poolRef": {"name": pool_name}},
    }


@pytest.mark.parametrize(
    ("body", "ready"),
    [
        (pod("a"), True),
        (pod("a", ready=False), False),
        (pod("a", ip=None), False),
        ({**pod("a"), "status": {**pod("a")["status"], "phase": "Pending"}}, False),
        ({**pod("a"), "metadata": {**pod("a")["metadata"], "deletionTimestamp": "2025-01-01T00:00:00Z"}}, False),
    ],
)
def test_pod_readiness(body: JSON, ready: bool) -> None:
    assert pod_ready(body) is ready


def test_pools_select_ready_pods_of_their_namespace_one_endpoint_per_target_port() -> None:
    pools = [
        inference_pool("single", 8000, mode="FailOpen", annotations={MODELS_ANNOTATION: "qwen3-8b, lora-a"}),
        inference_pool("dp", 3000, 3002),
        inference_pool("again", 8000),  # the same pods and port as `single`
    ]
    pods = [
        pod("b", "127.1.0.2"),
        pod("a", "127.1.0.1"),
        pod("c", "127.1.0.3", ready=False),
        pod("other-ns", "127.1.0.4", ns="web"),
        pod("other-app", "127.1.0.5", app="asr"),
    ]
    topo = build_topology(pools, pods, [objective("chat", "single", 2)], [])
    single, dp = topo.pools["ml/single"], topo.pools["ml/dp"]
    assert [(e.name, e.address) for e in single.endpoints] == [("ml/a", "127.1.0.1:8000"), ("ml/b", "127.1.0.2:8000")]
    assert [e.address for e in dp.endpoints] == ["127.1.0.1:3000", "127.1.0.1:3002", "127.1.0.2:3000", "127.1.0.2:3002"]
    assert (single.failure_mode, dp.failure_mode) == ("FailOpen", "FailClose")
    assert single.models == {"qwen3-8b", "lora-a"} and not dp.models
    assert single.endpoints[0].labels == {"app": "llm"}
    assert len(topo.pools["ml/again"].endpoints) == 2
    assert len(topo.endpoints()) == 6  # an address two pools share is scraped once
    found = topo.objective("chat", ["ml/single"])
    assert found is not None and (found.priority, found.pool) == (2, "ml/single")
    assert topo.objective("missing") is None


def test_static_endpoints() -> None:
    topo = asyncio.run(StaticEndpoints(["http://127.0.0.1:8001/v1", "127.0.0.1:8002"]).topology())
    assert [e.address for e in topo.pools["static"].endpoints] == ["127.0.0.1:8001", "127.0.0.1:8002"]
    with pytest.raises(ValueError, match="HOST:PORT"):
        address_of("http://localhost")
    with pytest.raises(ValueError, match="only http"):
        address_of("https://a:1")


def _write(service: ResourceService, body: JSON) -> None:
    saved = service.create({k: v for k, v in body.items() if k != "status"})
    if "status" in body:
        service.update_status({**saved, "status": body["status"]})


def test_pools_from_the_store_follow_its_changes(tmp_path: Path) -> None:
    registry = gateway_registry()
    store = Store.open(tmp_path / "state.db")
    try:
        service = ResourceService(store, registry)
        service.ensure_namespace("ml")
        for body in (inference_pool("chat"), pod("a", "127.1.0.1"), objective("premium", "chat", 5)):
            _write(service, body)
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ml"},
            "spec": {
                "rules": [
                    {"backendRefs": [{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "chat"}]}
                ]
            },
        }
        _write(service, route)
        lister = StoreLister(store, registry)
        source = PoolEndpoints(lister, namespace="ml")
        topo = asyncio.run(source.topology())
        assert [e.address for e in topo.pools["ml/chat"].endpoints] == ["127.1.0.1:8000"]
        assert [r.name for r in topo.routes] == ["r"] and topo.objectives[0].priority == 5
        _write(service, pod("b", "127.1.0.2"))
        topo = asyncio.run(source.topology())
        assert [e.address for e in topo.pools["ml/chat"].endpoints] == ["127.1.0.1:8000", "127.1.0.2:8000"]
        lister.close()
    finally:
        store.close()


def test_pools_over_http_from_a_control_plane(client: FlotillaClient) -> None:
    registry = build_registry()
    kinds = {k.kind: k for k in registry}
    client.create(kinds["Namespace"], {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
    client.create(kinds["InferencePool"], inference_pool("chat"))
    for body in (pod("a", "127.1.0.1"), pod("b", "127.1.0.2", ready=False)):
        saved = client.create(kinds["Pod"], {k: v for k, v in body.items() if k != "status"})
        client.update(kinds["Pod"], {**saved, "status": body["status"]}, status=True)
    topo = asyncio.run(PoolEndpoints(ClientLister(client, registry)).topology())
    assert [e.address for e in topo.pools["ml/chat"].endpoints] == ["127.1.0.1:8000"]
    assert topo.routes == ()  # the control plane serves no HTTPRoute yet: nothing to route by
