"""Gateway API kinds (`gateway.networking.k8s.io/v1`): HTTPRoute and a minimal Gateway.

HTTPRoute is what the inference gateway routes by: a rule's matches (path, headers, method, query
parameters) select the rule, whose weighted backendRefs name InferencePools (GAIE) or Services.
Field names, enums and defaults follow the upstream CRDs (standard channel, v1.4); the CEL rules
that matter to routing are checked in `validate_semantics`. Filters, retry and session
persistence are accepted as written (the Python front door applies request and response header
modifiers only). Gateway carries its listeners; status is free-form, as the controller writes it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from flotilla.api.base import KubeModel, LabelSelector, Resource
from flotilla.api.errors import FieldIssue

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
# Gateway API's Duration: 1 to 4 groups of an integer (at most 5 digits) and a unit, e.g. "1h30m", "500ms".
DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


def parse_duration(value: str) -> float:
    """Seconds in a Gateway API Duration ("10s", "1m30s", "250ms"); ValueError when malformed."""
    if not DURATION.match(value):
        raise ValueError(f'"{value}" is not a Gateway API duration (e.g. 10s, 1m30s, 500ms)')
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))


# -- references ---------------------------------------------------------------------------------
class ParentReference(KubeModel):
    group: str = GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: str = Field(min_length=1, max_length=253)
    sectionName: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)


class HTTPHeader(KubeModel):
    name: str = Field(min_length=1, max_length=256)
    value: str = Field(max_length=4096)


class HeaderModifier(KubeModel):
    """RequestHeaderModifier / ResponseHeaderModifier: set (replace), add (append), remove."""

    set: list[HTTPHeader] | None = Field(default=None, max_length=16)
    add: list[HTTPHeader] | None = Field(default=None, max_length=16)
    remove: list[str] | None = Field(default=None, max_length=16)


FilterType = Literal[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
    "ExternalAuth",
]


class HTTPRouteFilter(KubeModel):
    """One filter; only the field named by `type` may be set (the CRD's CEL rules)."""

    type: FilterType
    requestHeaderModifier: HeaderModifier | None = None
    responseHeaderModifier: HeaderModifier | None = None
    requestMirror: dict[str, Any] | None = None
    requestRedirect: dict[str, Any] | None = None
    urlRewrite: dict[str, Any] | None = None
    extensionRef: dict[str, Any] | None = None
    cors: dict[str, Any] | None = None
    externalAuth: dict[str, Any] | None = None

    def issues(self, path: str) -> list[FieldIssue]:
        wanted = self.type[0].lower() + self.type[1:]
        wanted = "urlRewrite" if self.type == "URLRewrite" else "cors" if self.type == "CORS" else wanted
        out = []
        if getattr(self, wanted) is None:
            out.append(FieldIssue(f"{path}.{wanted}", f"required when type is {self.type}"))
        for name in type(self).model_fields:
            if name not in ("type", wanted) and getattr(self, name) is not None:
                out.append(FieldIssue(f"{path}.{name}", f"must not be set when type is {self.type}; remove it"))
        return out


# -- matches ------------------------------------------------------------------------------------
class HTTPPathMatch(KubeModel):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(default="/", max_length=1024)


class HTTPHeaderMatch(KubeModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: str = Field(min_length=1, max_length=256)
    value: str = Field(max_length=4096)


class HTTPQueryParamMatch(KubeModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: str = Field(min_length=1, max_length=256)
    value: str = Field(min_length=1, max_length=1024)


class HTTPRouteMatch(KubeModel):
    """All of path, headers, query parameters and method must match (an empty match: every request)."""

    path: HTTPPathMatch = Field(default_factory=HTTPPathMatch)
    headers: list[HTTPHeaderMatch] | None = Field(default=None, max_length=16)
    queryParams: list[HTTPQueryParamMatch] | None = Field(default=None, max_length=16)
    method: HTTPMethod | None = None


# -- backends, rules ----------------------------------------------------------------------------
class HTTPBackendRef(KubeModel):
    """A backend: an InferencePool (group inference.networking.k8s.io) or a Service (the default).
    `weight` is the share of the rule's requests (0 sends none); `port` is ignored for pools."""

    group: str = ""
    kind: str = "Service"
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    weight: int = Field(default=1, ge=0, le=1_000_000)
    filters: list[HTTPRouteFilter] | None = None


class HTTPRouteTimeouts(KubeModel):
    request: str | None = None
    backendRequest: str | None = None


class HTTPRouteRule(KubeModel):
    name: str | None = None
    matches: list[HTTPRouteMatch] = Field(default_factory=lambda: [HTTPRouteMatch()], max_length=64)
    filters: list[HTTPRouteFilter] | None = Field(default=None, max_length=16)
    backendRefs: list[HTTPBackendRef] | None = Field(default=None, max_length=16)
    timeouts: HTTPRouteTimeouts | None = None
    retry: dict[str, Any] | None = None
    sessionPersistence: dict[str, Any] | None = None


class HTTPRouteSpec(KubeModel):
    parentRefs: list[ParentReference] | None = Field(default=None, max_length=32)
    hostnames: list[str] | None = Field(default=None, max_length=16)
    rules: list[HTTPRouteRule] = Field(default_factory=lambda: [HTTPRouteRule()], max_length=16)


_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _regex_issue(path: str, pattern: str) -> list[FieldIssue]:
    try:
        re.compile(pattern)
    except re.error as exc:
        return [FieldIssue(path, f"not a valid regular expression: {exc}")]
    return []


class HTTPRoute(Resource):
    spec: HTTPRouteSpec = Field(default_factory=HTTPRouteSpec)
    status: dict[str, Any] | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        issues: list[FieldIssue] = []
        for i, host in enumerate(self.spec.hostnames or []):
            if not _HOSTNAME.match(host):
                issues.append(FieldIssue(f"spec.hostnames[{i}]", f'"{host}" is not a hostname (e.g. api.example.com)'))
        for r, rule in enumerate(self.spec.rules):
            at = f"spec.rules[{r}]"
            for m, match in enumerate(rule.matches):
                p = match.path
                where = f"{at}.matches[{m}].path.value"
                if p.type == "RegularExpression":
                    issues += _regex_issue(where, p.value)
                elif not p.value.startswith("/"):
                    issues.append(FieldIssue(where, f'must be an absolute path starting with "/", got "{p.value}"'))
                for h, header in enumerate(match.headers or []):
                    if header.type == "RegularExpression":
                        issues += _regex_issue(f"{at}.matches[{m}].headers[{h}].value", header.value)
            for f, filt in enumerate(rule.filters or []):
                issues += filt.issues(f"{at}.filters[{f}]")
            for b, ref in enumerate(rule.backendRefs or []):
                for f, filt in enumerate(ref.filters or []):
                    issues += filt.issues(f"{at}.backendRefs[{b}].filters[{f}]")
                if ref.kind == "Service" and ref.group == "" and ref.port is None:
                    issues.append(FieldIssue(f"{at}.backendRefs[{b}].port", "required when kind is Service"))
            timeouts = rule.timeouts
            for field in ("request", "backendRequest"):
                value = getattr(timeouts, field) if timeouts else None
                if value is not None and not DURATION.match(value):
                    issues.append(
                        FieldIssue(f"{at}.timeouts.{field}", f'"{value}" is not a duration (e.g. 10s, 1m30s, 500ms)')
                    )
        return issues


# -- Gateway ------------------------------------------------------------------------------------
class RouteGroupKind(KubeModel):
    group: str = GROUP
    kind: str


class RouteNamespaces(KubeModel):
    from_: Literal["All", "Same", "Selector"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None


class AllowedRoutes(KubeModel):
    namespaces: RouteNamespaces | None = None
    kinds: list[RouteGroupKind] | None = None


class Listener(KubeModel):
    name: str = Field(min_length=1, max_length=253)
    hostname: str | None = None
    port: int = Field(ge=1, le=65535)
    protocol: str = Field(min_length=1)
    tls: dict[str, Any] | None = None
    allowedRoutes: AllowedRoutes | None = None


class GatewaySpec(KubeModel):
    gatewayClassName: str = Field(min_length=1, max_length=253)
    listeners: list[Listener] = Field(min_length=1, max_length=64)
    addresses: list[dict[str, Any]] | None = None
    infrastructure: dict[str, Any] | None = None


class Gateway(Resource):
    spec: GatewaySpec
    status: dict[str, Any] | None = None

    def validate_semantics(self) -> list[FieldIssue]:
        names = [listener.name for listener in self.spec.listeners]
        dupes = sorted({n for n in names if names.count(n) > 1})
        return (
            [FieldIssue("spec.listeners", f"listener names must be unique; repeated: {', '.join(dupes)}")]
            if dupes
            else []
        )
