"""HTTPRoute matching and precedence, weighted backends, and routes attached to one Gateway."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from flotilla.api.gatewayapi import HeaderModifier, HTTPRoute
from flotilla.gateway.routes import choose_backend, host_matches, match_route, modify_headers, routes_for_gateway


def route(name: str, *rules: dict[str, Any], hostnames: list[str] | None = None, **meta: Any) -> HTTPRoute:
    spec: dict[str, Any] = {"rules": list(rules) or [{}]}
    if hostnames:
        spec["hostnames"] = hostnames
    if "parents" in meta:
        spec["parentRefs"] = meta.pop("parents")
    metadata = {"name": name, "namespace": "ns", **meta}
    return HTTPRoute.model_validate(
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": metadata, "spec": spec}
    )


def rule(*matches: dict[str, Any], pools: dict[str, int] | None = None) -> dict[str, Any]:
    refs = [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": n, "weight": w}
        for n, w in (pools or {"p": 1}).items()
    ]
    return {"matches": list(matches) or [{}], "backendRefs": refs}


def prefix(value: str) -> dict[str, Any]:
    return {"path": {"type": "PathPrefix", "value": value}}


def which(routes: list[HTTPRoute], path: str, method: str = "POST", host: str = "gw", **headers: str) -> str | None:
    found = match_route(routes, host, path, method, {k.replace("_", "-"): v for k, v in headers.items()})
    return f"{found.route.name}/{found.rule_index}" if found else None


@pytest.mark.parametrize(
    ("value", "path", "matches"),
    [
        ("/foo", "/foo", True),
        ("/foo", "/foo/bar", True),
        ("/foo/", "/foo", True),
        ("/foo", "/foobar", False),
        ("/", "/anything", True),
    ],
)
def test_path_prefix_matches_whole_segments(value: str, path: str, matches: bool) -> None:
    assert (which([route("r", rule(prefix(value)))], path) is not None) is matches


def test_exact_and_regular_expression_paths() -> None:
    routes = [
        route("exact", rule({"path": {"type": "Exact", "value": "/v1/completions"}})),
        route("regex", rule({"path": {"type": "RegularExpression", "value": "/v[0-9]+/chat/.*"}})),
    ]
    assert which(routes, "/v1/completions") == "exact/0"
    assert which(routes, "/v1/completions/x") is None
    assert which(routes, "/v2/chat/completions") == "regex/0"


def test_precedence_exact_then_longest_prefix_then_headers() -> None:
    routes = [
        route("short", rule(prefix("/v1"))),
        route("long", rule(prefix("/v1/chat"))),
        route("exact", rule({"path": {"type": "Exact", "value": "/v1/chat/completions"}})),
        route("header", rule({**prefix("/v1/chat"), "headers": [{"name": "x-tier", "value": "gold"}]})),
    ]
    assert which(routes, "/v1/chat/completions") == "exact/0"
    assert which(routes, "/v1/chat/x") == "long/0"
    assert which(routes, "/v1/chat/x", x_tier="gold") == "header/0"
    assert which(routes, "/v1/models") == "short/0"


def test_headers_method_and_query_all_must_match() -> None:
    r = route(
        "r",
        rule(
            {
                **prefix("/"),
                "method": "POST",
                "headers": [
                    {"name": "X-Tier", "value": "gold"},
                    {"type": "RegularExpression", "name": "x-user", "value": "^team-[a-z]+$"},
                ],
            }
        ),
    )
    assert which([r], "/a", x_tier="gold", x_user="team-ml") == "r/0"
    assert which([r], "/a", method="GET", x_tier="gold", x_user="team-ml") is None
    assert which([r], "/a", x_tier="silver", x_user="team-ml") is None
    assert which([r], "/a", x_tier="gold", x_user="other") is None
    q = route("q", rule({**prefix("/"), "queryParams": [{"name": "tier", "value": "gold"}]}))
    assert match_route([q], "gw", "/a", "GET", {}, {"tier": "gold"}) is not None
    assert match_route([q], "gw", "/a", "GET", {}, {"tier": "x"}) is None


@pytest.mark.parametrize(
    ("patterns", "host", "rank"),
    [
        (None, "anything", 1),
        (["primary.example.com"], "primary.example.com:8080", 3),
        (["*.example.com"], "a.b.example.com", 2),
        (["*.example.com"], "example.com", 0),
        (["primary.example.com"], "secondary.example.com", 0),
    ],
)
def test_hostnames(patterns: list[str] | None, host: str, rank: int) -> None:
    assert host_matches(patterns, host) == rank


def test_specific_hostname_wins_and_ties_go_to_the_oldest_route() -> None:
    any_host = route("any", rule(prefix("/")), creationTimestamp="2025-01-01T00:00:00Z")
    named = route(
        "named", rule(prefix("/")), hostnames=["primary.example.com"], creationTimestamp="2025-06-01T00:00:00Z"
    )
    older = route("older", rule(prefix("/")), creationTimestamp="2024-01-01T00:00:00Z")
    assert which([any_host, named], "/x", host="primary.example.com") == "named/0"
    assert which([any_host, named], "/x", host="other") == "any/0"
    assert which([any_host, older], "/x") == "older/0"


def test_weighted_backends_follow_their_weights() -> None:
    found = match_route([route("w", rule(pools={"primary": 70, "secondary": 30, "off": 0}))], "gw", "/", "GET", {})
    assert found is not None
    rng = random.Random(1)
    counts = Counter(b.name for b in (choose_backend(found, rng) for _ in range(2000)) if b)
    assert set(counts) == {"ns/primary", "ns/secondary"}
    assert 0.66 < counts["ns/primary"] / 2000 < 0.74


def test_no_backend_when_every_weight_is_zero_and_service_backends_are_not_pools() -> None:
    zero = match_route([route("z", rule(pools={"a": 0}))], "gw", "/", "GET", {})
    assert zero is not None and choose_backend(zero, random.Random()) is None
    svc = route("s", {"backendRefs": [{"name": "web", "port": 80, "namespace": "other"}]})
    found = match_route([svc], "gw", "/", "GET", {})
    assert found is not None
    backend = choose_backend(found, random.Random())
    assert backend is not None and (backend.kind, backend.name, backend.is_pool) == ("Service", "other/web", False)


def test_routes_attached_to_one_gateway() -> None:
    primary = route("p", parents=[{"name": "conformance-primary", "namespace": "infra"}])
    secondary = route("s", parents=[{"name": "conformance-secondary", "namespace": "infra"}])
    local = route("l", parents=[{"name": "conformance-primary"}])  # the route's own namespace
    routes = [primary, secondary, local]
    assert [r.name for r in routes_for_gateway(routes, "infra/conformance-primary")] == ["p"]
    assert [r.name for r in routes_for_gateway(routes, "ns/conformance-primary")] == ["l"]
    assert routes_for_gateway(routes, None) == tuple(routes)


def test_rule_timeout() -> None:
    r = route("t", {**rule(prefix("/")), "timeouts": {"request": "1m30s"}})
    found = match_route([r], "gw", "/", "GET", {})
    assert found is not None and found.timeout() == 90.0


def test_header_modifier_filters_of_the_rule_and_the_backend() -> None:
    modifier = {"set": [{"name": "X-Tier", "value": "gold"}], "add": [{"name": "x-via", "value": "gw"}]}
    r = route(
        "f",
        {
            **rule(prefix("/")),
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": modifier}],
            "backendRefs": [
                {
                    "group": "inference.networking.k8s.io",
                    "kind": "InferencePool",
                    "name": "p",
                    "filters": [
                        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["server-timing"]}}
                    ],
                }
            ],
        },
    )
    found = match_route([r], "gw", "/", "GET", {})
    assert found is not None
    backend = choose_backend(found, random.Random())
    assert backend is not None and len(backend.request_headers) == 1 and len(backend.response_headers) == 1
    sent = modify_headers([("x-tier", "free"), ("x-via", "client")], backend.request_headers)
    assert sent == [("x-via", "client"), ("X-Tier", "gold"), ("x-via", "gw")]
    assert modify_headers([("Server-Timing", "1"), ("a", "b")], backend.response_headers) == [("a", "b")]
    assert modify_headers([("a", "1")], [HeaderModifier(remove=["A"])]) == []
