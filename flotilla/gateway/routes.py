"""HTTPRoute matching: which rule a request falls under, and which backend of that rule it goes to.

A request matches a route when its Host matches one of the route's hostnames (none: any host;
`*.example.com` matches one or more leading labels) and any one of a rule's matches holds: path
(Exact; PathPrefix, element-wise, so `/foo` matches `/foo/bar` but not `/foobar`; RegularExpression,
full match), every header (Exact, or RegularExpression searched in the value; names
case-insensitive), every query parameter, and the method. When several match, Gateway API's
precedence picks one: an exact hostname over a wildcard over none; Exact path, then the longest
prefix, then a regular expression; a method match; more header matches; more query matches; the
oldest route (creationTimestamp), then namespace/name; then rule order.

The backend is a weighted random choice among the rule's backendRefs (GAIE's weighted pools);
weight 0 never receives traffic, and a rule whose weights are all 0 has no backend (500).

Of the filters, RequestHeaderModifier and ResponseHeaderModifier (the rule's, then the chosen
backendRef's) are applied: `remove`, then `set` (replace), then `add` (append); names are
case-insensitive. Other filters are accepted and not applied.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from flotilla.api import gaie
from flotilla.api.gatewayapi import (
    HeaderModifier,
    HTTPBackendRef,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    parse_duration,
)


@dataclass(frozen=True)
class RouteMatch:
    """The route and rule a request falls under."""

    route: HTTPRoute
    rule_index: int
    rule: HTTPRouteRule

    @property
    def route_name(self) -> str:
        return f"{self.route.namespace or 'default'}/{self.route.name}"

    def timeout(self) -> float | None:
        """The rule's `timeouts.request` in seconds ("0s": none), else None."""
        t = self.rule.timeouts
        if t is None or t.request is None:
            return None
        seconds = parse_duration(t.request)
        return seconds or None


@dataclass(frozen=True)
class Backend:
    """A chosen backendRef: an InferencePool ("namespace/name") or a Service."""

    kind: str
    name: str  # "namespace/name"
    request_headers: tuple[HeaderModifier, ...] = ()
    response_headers: tuple[HeaderModifier, ...] = ()

    @property
    def is_pool(self) -> bool:
        return self.kind == "InferencePool"


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def host_matches(patterns: Sequence[str] | None, host: str) -> int:
    """0: no match; 1: the route has no hostnames; 2: a wildcard matched; 3: an exact match."""
    if not patterns:
        return 1
    host = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
    best = 0
    for p in patterns:
        if p == host:
            return 3
        if p.startswith("*.") and host.endswith(p[1:]) and len(host) > len(p) - 1:
            best = 2
    return best


def path_matches(match: HTTPRouteMatch, path: str) -> bool:
    p = match.path
    if p.type == "Exact":
        return path == p.value
    if p.type == "RegularExpression":
        return _regex(p.value).fullmatch(path) is not None
    prefix = p.value.rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def _matches(
    match: HTTPRouteMatch, path: str, method: str, headers: Mapping[str, str], query: Mapping[str, str]
) -> bool:
    if match.method is not None and match.method != method.upper():
        return False
    if not path_matches(match, path):
        return False
    for h in match.headers or []:
        value = headers.get(h.name.lower())
        if value is None:
            return False
        if h.type == "Exact" and value != h.value:
            return False
        if h.type == "RegularExpression" and _regex(h.value).search(value) is None:
            return False
    for q in match.queryParams or []:
        value = query.get(q.name)
        if value is None or (value != q.value if q.type == "Exact" else _regex(q.value).search(value) is None):
            return False
    return True


def _rank(host_rank: int, match: HTTPRouteMatch) -> tuple[int, int, int, int, int, int]:
    p = match.path
    path_rank = (2, len(p.value)) if p.type == "Exact" else (1, len(p.value)) if p.type == "PathPrefix" else (0, 0)
    return (
        host_rank,
        *path_rank,
        1 if match.method else 0,
        len(match.headers or []),
        len(match.queryParams or []),
    )


def match_route(
    routes: Sequence[HTTPRoute],
    host: str,
    path: str,
    method: str,
    headers: Mapping[str, str],
    query: Mapping[str, str] | None = None,
) -> RouteMatch | None:
    """The rule that wins for this request, by Gateway API precedence; None when nothing matches.
    `headers` must have lower-case names."""
    query = query or {}
    best: tuple[tuple[int, ...], tuple[str, str, int], RouteMatch] | None = None
    for route in routes:
        host_rank = host_matches(route.spec.hostnames, host)
        if not host_rank:
            continue
        created = route.metadata.creationTimestamp or ""
        for i, rule in enumerate(route.spec.rules):
            for m in rule.matches:
                if not _matches(m, path, method, headers, query):
                    continue
                rank = _rank(host_rank, m)
                order = (created, f"{route.namespace or 'default'}/{route.name}", i)
                if best is None or rank > best[0] or (rank == best[0] and order < best[1]):
                    best = (rank, order, RouteMatch(route, i, rule))
    return best[2] if best else None


def choose_backend(match: RouteMatch, rng: random.Random) -> Backend | None:
    """A weighted random backendRef of the rule (None: no backendRefs, or every weight is 0)."""
    refs: list[HTTPBackendRef] = [r for r in match.rule.backendRefs or [] if r.weight > 0]
    if not refs:
        return None
    ref = rng.choices(refs, weights=[r.weight for r in refs])[0] if len(refs) > 1 else refs[0]
    namespace = ref.namespace or match.route.namespace or "default"
    kind = "InferencePool" if ref.kind == "InferencePool" and ref.group in (gaie.GROUP, gaie.X_GROUP) else ref.kind
    filters = [*(match.rule.filters or []), *(ref.filters or [])]
    return Backend(
        kind,
        f"{namespace}/{ref.name}",
        _modifiers(filters, "RequestHeaderModifier"),
        _modifiers(filters, "ResponseHeaderModifier"),
    )


def _modifiers(filters: Sequence[HTTPRouteFilter], kind: str) -> tuple[HeaderModifier, ...]:
    found = (f.requestHeaderModifier if kind == "RequestHeaderModifier" else f.responseHeaderModifier for f in filters)
    return tuple(m for f, m in zip(filters, found, strict=True) if f.type == kind and m is not None)


def modify_headers(headers: Sequence[tuple[str, str]], modifiers: Sequence[HeaderModifier]) -> list[tuple[str, str]]:
    """`headers` after each modifier in turn: remove, then set (replace), then add (append)."""
    out = list(headers)
    for m in modifiers:
        replaced = {h.name.lower() for h in m.set or []} | {name.lower() for name in m.remove or []}
        out = [(k, v) for k, v in out if k.lower() not in replaced]
        out += [(h.name, h.value) for h in m.set or []] + [(h.name, h.value) for h in m.add or []]
    return out


def routes_for_gateway(routes: Sequence[HTTPRoute], gateway: str | None) -> tuple[HTTPRoute, ...]:
    """The routes attached to Gateway `namespace/name` through a parentRef (all when None)."""
    if gateway is None:
        return tuple(routes)
    ns, _, name = gateway.rpartition("/")
    ns = ns or "default"
    out = []
    for route in routes:
        for ref in route.spec.parentRefs or []:
            if ref.kind == "Gateway" and ref.name == name and (ref.namespace or route.namespace or "default") == ns:
                out.append(route)
                break
    return tuple(out)
