"""Gateway API kinds: strict models, CEL-like rules, and GAIE's conformance manifests through the loader.

The manifests are read in place from `../shared/reference/gaie/conformance`. Until the catalog
serves HTTPRoute and Gateway, the test registers them itself (the entries proposed for catalog.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.api import gatewayapi
from flotilla.api.catalog import build_registry
from flotilla.api.errors import ManifestErrors
from flotilla.api.gatewayapi import HTTPRoute, parse_duration
from flotilla.api.loader import decode, load_text
from flotilla.api.registry import Kind, Registry, Version

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "gaie" / "conformance"
GATEWAY_API_KINDS = (
    Kind(gatewayapi.GROUP, "HTTPRoute", "httproutes", True, (Version("v1", gatewayapi.HTTPRoute),)),
    Kind(gatewayapi.GROUP, "Gateway", "gateways", True, (Version("v1", gatewayapi.Gateway),), ("gtw",)),
)
# What Flotilla does not model, and why (a change here is a decision: update the docs with it).
NOT_LOADED = {
    **{
        ("base.yaml", "Service", name): "core/v1 Service is not a Flotilla kind"
        for name in (
            "primary-endpoint-picker-svc",
            "secondary-endpoint-picker-svc",
            "appprotocol-http-endpoint-picker-svc",
            "appprotocol-h2c-endpoint-picker-svc",
            "dp-endpoint-picker-svc",
        )
    },
    ("base.yaml", "Role", "inference-model-reader"): "RBAC is not modelled",
    ("base.yaml", "RoleBinding", "epp-to-inference-model-reader"): "RBAC is not modelled",
}


def gateway_registry() -> Registry:
    registry = build_registry()
    have = {(k.group, k.kind) for k in registry}
    for kind in GATEWAY_API_KINDS:
        if (kind.group, kind.kind) not in have:
            registry.register(kind)
    return registry


def http_route(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": spec,
    }


def issues_of(doc: dict[str, Any]) -> list[str]:
    try:
        decode(doc, gateway_registry())
    except ManifestErrors as exc:
        return [str(i) for e in exc.errors for i in e.issues]
    return []


def test_defaults_follow_the_crd() -> None:
    route = HTTPRoute.model_validate(http_route({"rules": [{"backendRefs": [{"kind": "InferencePool", "name": "p"}]}]}))
    rule = route.spec.rules[0]
    assert (rule.matches[0].path.type, rule.matches[0].path.value) == ("PathPrefix", "/")
    assert rule.backendRefs is not None and rule.backendRefs[0].weight == 1
    assert HTTPRoute.model_validate(http_route({})).spec.rules[0].matches[0].path.value == "/"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"rules": [{"matches": [{"path": {"type": "Exact", "value": "v1"}}]}]}, "absolute path"),
        ({"rules": [{"matches": [{"path": {"type": "RegularExpression", "value": "(("}}]}]}, "regular expression"),
        ({"rules": [{"backendRefs": [{"name": "svc"}]}]}, "required when kind is Service"),
        ({"rules": [{"timeouts": {"request": "10 seconds"}}]}, "not a duration"),
        ({"rules": [{"filters": [{"type": "RequestHeaderModifier"}]}]}, "requestHeaderModifier: required"),
        ({"hostnames": ["Not_A_Host"]}, "not a hostname"),
        ({"rules": [{"backendRefs": [{"kind": "InferencePool", "name": "p", "weight": "1"}]}]}, "weight"),
        ({"rules": [{"matches": [{"method": "FETCH"}]}]}, "method"),
    ],
)
def test_invalid_routes_name_the_field(spec: dict[str, Any], fragment: str) -> None:
    issues = issues_of(http_route(spec))
    assert any(fragment in i for i in issues), issues


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError, match="not a Gateway API duration"):
        parse_duration("1.5s")


def test_gateway_listener_names_are_unique() -> None:
    doc = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "g", "namespace": "ns"},
        "spec": {
            "gatewayClassName": "flotilla",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}] * 2,
        },
    }
    assert any("unique" in i for i in issues_of(doc))


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"GAIE conformance manifests not found at {CONFORMANCE}")
def test_conformance_manifests_load_except_what_flotilla_does_not_model() -> None:
    registry = gateway_registry()
    loaded: dict[str, int] = {}
    failed: dict[tuple[str, str, str], str] = {}
    for path in sorted(CONFORMANCE.glob("*.yaml")):
        for i, doc in enumerate((d for d in yaml.safe_load_all(path.read_text()) if d), 1):
            try:
                obj = decode(doc, registry, path.name, i)
            except ManifestErrors as exc:
                failed[(path.name, doc["kind"], doc["metadata"]["name"])] = str(exc)
                continue
            loaded[obj.kind.kind] = loaded.get(obj.kind.kind, 0) + 1
    assert set(failed) == set(NOT_LOADED), failed
    assert loaded == {"Namespace": 2, "Gateway": 2, "Deployment": 9, "InferencePool": 7, "HTTPRoute": 20}


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"GAIE conformance manifests not found at {CONFORMANCE}")
def test_a_conformance_route_loads_through_load_text() -> None:
    source = CONFORMANCE / "gateway_weighted_two_pools.yaml"
    [obj] = load_text(source.read_text(), gateway_registry(), source=source.name)
    route = obj.obj
    assert isinstance(route, HTTPRoute)
    refs = route.spec.rules[0].backendRefs or []
    assert [(r.kind, r.name, r.weight) for r in refs] == [
        ("InferencePool", "primary-inference-pool", 70),
        ("InferencePool", "secondary-inference-pool", 30),
    ]
