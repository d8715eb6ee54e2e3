"""The whole online stack in one control plane: a Deployment of emulated vLLM engines run by the
runtime, an InferencePool over their pods, and `flotilla up`'s inference gateway routing to them."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.runtime.config import RuntimeConfig
from flotilla.server.runner import ControlPlane, free_port

JSON = dict[str, Any]


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    config = RuntimeConfig(jobBackoffSeconds=0, restartBackoffSeconds=0, pollSeconds=0.05)
    p = ControlPlane(
        tmp_path / "data",
        port=free_port(),
        runtime_config=config,
        gateway_port=free_port(),
        gateway_profile="round-robin",  # sequential requests: the default profile would stick to one (prefix affinity)
    )
    p.start_in_thread()
    try:
        yield p
    finally:
        p.stop()


def engines(replicas: int) -> list[JSON]:
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:emulated",
        "command": [sys.executable, "-m", "flotilla", "serve", "emulated"],
        "args": ["--gpu", "A100-80GB", "--model", "qwen3-8b", "--host", "$(POD_IP)", "--port", "8000", "--speed", "50"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1},
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "qwen", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "qwen"}},
                "template": {
                    "metadata": {"labels": {"app": "qwen"}},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
                },
            },
        },
        {
            "apiVersion": "inference.networking.k8s.io/v1",
            "kind": "InferencePool",
            "metadata": {
                "name": "qwen-pool",
                "namespace": "default",
                "annotations": {"flotilla.dev/models": "qwen3-8b"},
            },
            "spec": {"selector": {"matchLabels": {"app": "qwen"}}, "targetPorts": [{"number": 8000}]},
        },
    ]


def test_gateway_routes_to_the_ready_pods_of_a_pool(plane: ControlPlane) -> None:
    for obj in engines(2):
        kind = "deployments" if obj["kind"] == "Deployment" else "inferencepools"
        group = "apps/v1" if kind == "deployments" else "inference.networking.k8s.io/v1"
        assert httpx.post(f"{plane.url}/apis/{group}/namespaces/default/{kind}", json=obj).status_code == 201
    gateway = plane.gateway_url
    assert gateway is not None
    body = {"model": "qwen3-8b", "messages": [{"role": "user", "content": "summarise: hello"}], "max_tokens": 8}
    served: set[str] = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(served) < 2:
        try:
            response = httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=30)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if response.status_code == 200:
            assert response.json()["choices"][0]["message"]["content"]
            served.add(response.headers["x-gateway-destination-endpoint-served"])
        else:
            time.sleep(0.2)  # 503 until the pods are ready and scraped
    assert len(served) == 2 and all(a.startswith("127.1.") and a.endswith(":8000") for a in served), served
    models = httpx.get(f"{gateway}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["qwen3-8b"]
    metrics = httpx.get(f"{gateway}/metrics").text
    assert (
        'inference_pool_ready_pods{name="default/qwen-pool"} 2.0' in metrics or "inference_pool_ready_pods" in metrics
    )
