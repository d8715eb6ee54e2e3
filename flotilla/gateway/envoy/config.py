"""The Envoy bootstrap for Flotilla's data plane: Envoy in front, Flotilla's picker over ext_proc.

`build_config(EnvoyConfig(...))` returns the bootstrap as a dict and `render_config` as YAML; both
are deterministic (same input, same bytes). The layout, in request order:

- listener `flotilla` on `listen_host:listen_port` (0: Envoy picks, the launcher reads it back),
  one HTTP connection manager; an early header mutation drops any client-sent
  `x-gateway-destination-endpoint` (a client must not choose the upstream address);
- `envoy.filters.http.ext_proc` to the `flotilla-picker` cluster (gRPC, loopback): request
  headers SEND, request body BUFFERED (up to `max_request_body_bytes`, the connection buffer limit;
  above it Envoy answers 413), response headers SEND with the `upstream.address` attribute,
  response body NONE (SSE streams pass through unbuffered), `failure_mode_allow` from the
  failure mode, `status_on_error` 503, the picker's `envoy.lb` dynamic metadata accepted;
- routes under `/v1/`: with the picker's header -> `flotilla-original-dst` (ORIGINAL_DST, the
  address in the header); without it (the picker is down, FailOpen) -> `flotilla-fallback`
  (the static endpoints, round robin), or a 503 when there is none; any other path -> 404;
- route `timeout` (whole response; 504 past it) and `idle_timeout` (between bytes; 504),
  the connection manager's `stream_idle_timeout`, admin on loopback.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from flotilla.gateway.envoy.extproc import (
    DESTINATION_HEADER,
    METADATA_NAMESPACE,
    PICKER_DETAILS,
    SERVED_HEADER,
    UPSTREAM_ADDRESS,
    openai_error_body,
)

LISTENER = "flotilla"
PICKER_CLUSTER = "flotilla-picker"
ORIGINAL_DST_CLUSTER = "flotilla-original-dst"
FALLBACK_CLUSTER = "flotilla-fallback"
MIB = 1024 * 1024
_TYPES = "type.googleapis.com/envoy.extensions"


def _split(address: str, field: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{field}: expected ip:port (e.g. 127.0.0.1:8000), got {address!r}")
    return host, int(port)


class EnvoyConfig(BaseModel, frozen=True, extra="forbid"):
    """What the generated bootstrap depends on. Durations in seconds."""

    picker_address: str = Field(description="ip:port of the ext_proc endpoint picker (serve_extproc)")
    failure_mode: Literal["FailOpen", "FailClose"] = Field(
        "FailClose", description="GAIE InferencePool endpointPickerRef.failureMode (GAIE's default: FailClose)"
    )
    fallback_endpoints: tuple[str, ...] = Field((), description="ip:port of every endpoint; used when FailOpen")
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(0, ge=0, le=65535, description="0: a free port, read back by the launcher")
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(0, ge=0, le=65535)
    max_request_body_bytes: int = Field(16 * MIB, gt=0, description="a larger body is answered 413")
    message_timeout_s: float = Field(
        30.0, gt=0, description="the picker's time to answer one message (flow control may hold a request)"
    )
    request_timeout_s: float = Field(600.0, ge=0, description="route timeout, whole response; 0: none; 504")
    idle_timeout_s: float = Field(300.0, gt=0, description="route idle timeout between bytes; 504")
    stream_idle_timeout_s: float = Field(300.0, gt=0, description="connection manager stream idle timeout")
    connect_timeout_s: float = Field(5.0, gt=0, description="upstream connect timeout; 503 past it")
    access_log: bool = Field(False, description="one line per request on stdout")

    @model_validator(mode="after")
    def _check(self) -> EnvoyConfig:
        _split(self.picker_address, "picker_address")
        for i, endpoint in enumerate(self.fallback_endpoints):
            _split(endpoint, f"fallback_endpoints[{i}]")
        if self.failure_mode == "FailOpen" and not self.fallback_endpoints:
            raise ValueError("failure_mode FailOpen needs fallback_endpoints (where to send requests without a picker)")
        return self


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _static_cluster(name: str, endpoints: tuple[str, ...], connect_timeout: str, http2: bool) -> dict[str, Any]:
    lb_endpoints = [{"endpoint": {"address": _socket(*_split(e, name))}} for e in endpoints]
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}]},
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": f"{_TYPES}.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def _ext_proc_filter(config: EnvoyConfig) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.ext_proc",
        "typed_config": {
            "@type": f"{_TYPES}.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {"envoy_grpc": {"cluster_name": PICKER_CLUSTER}},
            "failure_mode_allow": config.failure_mode == "FailOpen",
            "status_on_error": {"code": 503},
            "message_timeout": _duration(config.message_timeout_s),
            "processing_mode": {
                "request_header_mode": "SEND",
                "request_body_mode": "BUFFERED",
                "request_trailer_mode": "SKIP",
                "response_header_mode": "SEND",
                "response_body_mode": "NONE",
                "response_trailer_mode": "SKIP",
            },
            "response_attributes": [UPSTREAM_ADDRESS],
            "metadata_options": {"receiving_namespaces": {"untyped": [METADATA_NAMESPACE]}},
        },
    }


def _route(prefix: str, action: dict[str, Any], present_header: str | None = None) -> dict[str, Any]:
    match: dict[str, Any] = {"prefix": prefix}
    if present_header is not None:
        match["headers"] = [{"name": present_header, "present_match": True}]
    return {"match": match, **action}


def _to_cluster(cluster: str, config: EnvoyConfig) -> dict[str, Any]:
    return {
        "route": {
            "cluster": cluster,
            "timeout": _duration(config.request_timeout_s),
            "idle_timeout": _duration(config.idle_timeout_s),
        }
    }


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


def _direct(status: int, message: str, skip_picker: bool = True) -> dict[str, Any]:
    route: dict[str, Any] = {
        "direct_response": {"status": status, "body": {"inline_string": openai_error_body(status, message).decode()}},
        "response_headers_to_add": [_header("content-type", "application/json")],
    }
    if skip_picker:  # a request that the picker would not route anyway does not go through it
        route["typed_per_filter_config"] = {
            "envoy.filters.http.ext_proc": {
                "@type": f"{_TYPES}.filters.http.ext_proc.v3.ExtProcPerRoute",
                "disabled": True,
            }
        }
    return route


def _routes(config: EnvoyConfig) -> list[dict[str, Any]]:
    if config.failure_mode == "FailOpen":
        fallback = _to_cluster(FALLBACK_CLUSTER, config)
        # The picker is not there to say which endpoint served; Envoy says it.
        fallback["response_headers_to_add"] = [_header(SERVED_HEADER, "%UPSTREAM_REMOTE_ADDRESS%")]
    else:
        # Only reached when the picker answered without an address, which serve_extproc never does.
        fallback = _direct(503, "no endpoint was picked for this request", skip_picker=False)
    return [
        _route("/v1/", _to_cluster(ORIGINAL_DST_CLUSTER, config), present_header=DESTINATION_HEADER),
        _route("/v1/", fallback),
        _route("/", _direct(404, "not found: the gateway serves /v1/ paths")),
    ]


# Envoy's own local replies (not the picker's, whose details start with PICKER_DETAILS) in OpenAI's shape.
_LOCAL_REPLIES = (
    (413, "the request body is over the gateway's limit of {limit} bytes"),
    (503, "no endpoint could serve the request (%RESPONSE_CODE_DETAILS%)"),
    (504, "the gateway timed out waiting (%RESPONSE_CODE_DETAILS%)"),
)


def _local_reply_config(config: EnvoyConfig) -> dict[str, Any]:
    mappers = []
    for status, message in _LOCAL_REPLIES:
        expression = f"response.code == {status} && !response.code_details.startsWith('{PICKER_DETAILS}')"
        error = json.loads(openai_error_body(status, message.format(limit=config.max_request_body_bytes)))
        mappers.append(
            {
                "filter": {
                    "extension_filter": {
                        "name": "envoy.access_loggers.extension_filters.cel",
                        "typed_config": {
                            "@type": f"{_TYPES}.access_loggers.filters.cel.v3.ExpressionFilter",
                            "expression": expression,
                        },
                    }
                },
                "body_format_override": {"json_format": error},
            }
        )
    return {"mappers": mappers}


def _connection_manager(config: EnvoyConfig) -> dict[str, Any]:
    hcm: dict[str, Any] = {
        "@type": f"{_TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": LISTENER,
        "codec_type": "AUTO",
        "stream_idle_timeout": _duration(config.stream_idle_timeout_s),
        "normalize_path": True,
        "merge_slashes": True,
        "local_reply_config": _local_reply_config(config),
        "early_header_mutation_extensions": [
            {
                "name": "envoy.http.early_header_mutation.header_mutation",
                "typed_config": {
                    "@type": f"{_TYPES}.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                    "mutations": [{"remove": DESTINATION_HEADER}],
                },
            }
        ],
        "route_config": {
            "name": LISTENER,
            "virtual_hosts": [{"name": LISTENER, "domains": ["*"], "routes": _routes(config)}],
        },
        "http_filters": [
            _ext_proc_filter(config),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": f"{_TYPES}.filters.http.router.v3.Router"},
            },
        ],
    }
    if config.access_log:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": f"{_TYPES}.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": {
                        "text_format_source": {
                            "inline_string": '[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)%" %RESPONSE_CODE% '
                            "%RESPONSE_FLAGS% upstream=%UPSTREAM_HOST% cluster=%UPSTREAM_CLUSTER% "
                            "ms=%DURATION% details=%RESPONSE_CODE_DETAILS%\n"
                        }
                    },
                },
            }
        ]
    return hcm


def build_config(config: EnvoyConfig) -> dict[str, Any]:
    """The Envoy bootstrap (v3) as a dict, ready for YAML or JSON."""
    connect_timeout = _duration(config.connect_timeout_s)
    clusters = [
        _static_cluster(PICKER_CLUSTER, (config.picker_address,), connect_timeout, http2=True),
        {
            "name": ORIGINAL_DST_CLUSTER,
            "type": "ORIGINAL_DST",
            "lb_policy": "CLUSTER_PROVIDED",
            "connect_timeout": connect_timeout,
            "original_dst_lb_config": {"use_http_header": True, "http_header_name": DESTINATION_HEADER},
        },
    ]
    if config.failure_mode == "FailOpen":
        clusters.append(_static_cluster(FALLBACK_CLUSTER, config.fallback_endpoints, connect_timeout, http2=False))
    return {
        "admin": {"address": _socket(config.admin_host, config.admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": LISTENER,
                    "address": _socket(config.listen_host, config.listen_port),
                    # The ext_proc filter buffers the request body within this limit; above it, 413.
                    "per_connection_buffer_limit_bytes": config.max_request_body_bytes,
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": _connection_manager(config),
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }


def render_config(config: EnvoyConfig) -> str:
    """`build_config` as YAML (keys in a fixed order, so the same config gives the same text)."""
    return yaml.safe_dump(build_config(config), sort_keys=False, default_flow_style=False, width=120)
