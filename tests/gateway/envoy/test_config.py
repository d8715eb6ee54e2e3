"""The generated Envoy bootstrap: what it says, that it is deterministic, that Envoy accepts it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flotilla.gateway.envoy import EnvoyConfig, build_config, render_config
from flotilla.gateway.envoy.config import FALLBACK_CLUSTER, ORIGINAL_DST_CLUSTER, PICKER_CLUSTER

PICKER = "127.0.0.1:9002"


def fail_open(**overrides: Any) -> EnvoyConfig:
    fields: dict[str, Any] = {
        "picker_address": PICKER,
        "failure_mode": "FailOpen",
        "fallback_endpoints": ("127.0.0.1:8001", "127.0.0.1:8002"),
    }
    return EnvoyConfig(**{**fields, **overrides})


def hcm(bootstrap: dict[str, Any]) -> dict[str, Any]:
    listener = bootstrap["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]


def ext_proc(bootstrap: dict[str, Any]) -> dict[str, Any]:
    return hcm(bootstrap)["http_filters"][0]["typed_config"]  # type: ignore[no-any-return]


def clusters(bootstrap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}


def test_the_same_config_renders_the_same_yaml() -> None:
    assert render_config(fail_open()) == render_config(fail_open())
    assert yaml.safe_load(render_config(fail_open())) == build_config(fail_open())


def test_the_picker_sees_request_headers_and_the_buffered_body_and_response_headers_only() -> None:
    filter_config = ext_proc(build_config(fail_open()))
    assert filter_config["processing_mode"] == {
        "request_header_mode": "SEND",
        "request_body_mode": "BUFFERED",
        "request_trailer_mode": "SKIP",
        "response_header_mode": "SEND",
        "response_body_mode": "NONE",  # streamed responses never wait for the picker
        "response_trailer_mode": "SKIP",
    }
    assert filter_config["grpc_service"] == {"envoy_grpc": {"cluster_name": PICKER_CLUSTER}}
    assert filter_config["metadata_options"]["receiving_namespaces"]["untyped"] == ["envoy.lb"]


@pytest.mark.parametrize(("mode", "allow"), [("FailOpen", True), ("FailClose", False)])
def test_failure_mode_sets_failure_mode_allow(mode: str, allow: bool) -> None:
    config = fail_open(failure_mode=mode)
    assert ext_proc(build_config(config))["failure_mode_allow"] is allow
    assert (FALLBACK_CLUSTER in clusters(build_config(config))) is allow


def test_requests_go_to_the_address_in_the_header_or_else_to_the_fallback() -> None:
    bootstrap = build_config(fail_open())
    routes = hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0]["match"]["headers"] == [{"name": "x-gateway-destination-endpoint", "present_match": True}]
    assert routes[0]["route"]["cluster"] == ORIGINAL_DST_CLUSTER
    assert routes[1]["route"]["cluster"] == FALLBACK_CLUSTER
    assert routes[2]["direct_response"]["status"] == 404
    original_dst = clusters(bootstrap)[ORIGINAL_DST_CLUSTER]
    assert original_dst["original_dst_lb_config"] == {
        "use_http_header": True,
        "http_header_name": "x-gateway-destination-endpoint",
    }
    fallback = clusters(bootstrap)[FALLBACK_CLUSTER]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in fallback] == [8001, 8002]


def test_the_body_limit_is_the_listener_buffer_limit_16_mib_by_default() -> None:
    listener = build_config(EnvoyConfig(picker_address=PICKER))["static_resources"]["listeners"][0]
    assert listener["per_connection_buffer_limit_bytes"] == 16 * 1024 * 1024


def test_a_client_cannot_send_the_destination_header_itself() -> None:
    mutations = hcm(build_config(fail_open()))["early_header_mutation_extensions"][0]["typed_config"]["mutations"]
    assert mutations == [{"remove": "x-gateway-destination-endpoint"}]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"picker_address": PICKER, "failure_mode": "FailOpen"}, "FailOpen needs fallback_endpoints"),
        ({"picker_address": "localhost"}, "picker_address: expected ip:port"),
        ({"picker_address": PICKER, "fallback_endpoints": ("127.0.0.1:1", "x:y")}, r"fallback_endpoints\[1\]"),
        ({"picker_address": PICKER, "failure_mode": "FailSometimes"}, "failure_mode"),
        ({"picker_address": PICKER, "max_request_body_bytes": 0}, "max_request_body_bytes"),
        ({"picker_address": PICKER, "admin_port": 70000}, "admin_port"),
        ({"picker_address": PICKER, "extra_field": 1}, "extra_field"),
    ],
)
def test_a_wrong_config_is_refused_naming_the_field(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        EnvoyConfig(**kwargs)


@pytest.mark.parametrize("mode", ["FailOpen", "FailClose"])
def test_envoy_accepts_the_generated_bootstrap(envoy_binary: Path, tmp_path: Path, mode: str) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render_config(fail_open(failure_mode=mode, access_log=True)))
    argv = [str(envoy_binary), "--mode", "validate", "--config-path", str(path), "--log-level", "error"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
