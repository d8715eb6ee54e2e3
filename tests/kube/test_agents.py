"""What runs in the cluster, against the emulated API server: the picker's view of its pool (pods,
InferencePool) and the GPU health agent's node label."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from flotilla.gateway.endpoints import PoolEndpoints
from flotilla.kube.agents import NODE_LABEL, HealthAgent, KubeLister, run_picker
from flotilla.kube.cluster import KubeClient
from flotilla.server.runner import free_port
from flotilla.telemetry.readings import EmulatedReader
from tests.kube.kmock_cluster import ApplyingEmulator

POOL = {
    "apiVersion": "inference.networking.k8s.io/v1",
    "kind": "InferencePool",
    "metadata": {"name": "llm", "namespace": "ns", "annotations": {"flotilla.dev/models": "m"}},
    "spec": {"selector": {"matchLabels": {"app": "llm"}}, "targetPorts": [{"number": 8000}]},
}


def _pod(name: str, ip: str, ready: bool, app: str = "llm") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": app}},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _seed(emulator: ApplyingEmulator) -> None:
    emulator.objects["inference.networking.k8s.io/v1/inferencepools", "ns", "llm"] = POOL
    other = {**POOL, "metadata": {"name": "other", "namespace": "ns"}}
    emulator.objects["inference.networking.k8s.io/v1/inferencepools", "ns", "other"] = other
    emulator.objects["v1/pods", "ns", "llm-a"] = _pod("llm-a", "10.0.0.1", True)
    emulator.objects["v1/pods", "ns", "llm-b"] = _pod("llm-b", "10.0.0.2", False)
    emulator.objects["v1/pods", "ns", "web"] = _pod("web", "10.0.0.3", True, app="web")


def test_picker_sees_its_pools_ready_pods(api_server: tuple[str, ApplyingEmulator]) -> None:
    url, emulator = api_server
    _seed(emulator)
    client = KubeClient.for_url(url)
    topology = asyncio.run(PoolEndpoints(KubeLister(client, "ns", "llm"), "ns").topology())
    assert list(topology.pools) == ["ns/llm"]  # one picker, one pool
    pool = topology.pools["ns/llm"]
    assert [e.address for e in pool.endpoints] == ["10.0.0.1:8000"]
    assert pool.models == frozenset({"m"})
    client.close()


def test_picker_serves_health_and_metrics(api_server: tuple[str, ApplyingEmulator]) -> None:
    url, emulator = api_server
    _seed(emulator)
    client = KubeClient.for_url(url)
    port = free_port()

    async def scenario() -> tuple[int, str]:
        task = asyncio.create_task(run_picker(client, "llm", "ns", "default", 0, port, host="127.0.0.1"))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(200):
                    try:
                        health = await http.get("/health")
                        if health.status_code == 200:
                            return health.status_code, (await http.get("/metrics")).text
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
            raise AssertionError("the picker did not become healthy")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    status, metrics = asyncio.run(scenario())
    assert status == 200
    assert "inference_pool" in metrics
    client.close()


def test_health_agent_labels_its_node_when_the_verdict_changes(api_server: tuple[str, ApplyingEmulator]) -> None:
    url, emulator = api_server
    emulator.objects["v1/nodes", None, "gpu-1"] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}}
    gpus = [
        {"index": 0, "uuid": "GPU-0", "product": "NVIDIA A100-SXM4-40GB", "memoryMiB": 40960},
        {"index": 1, "uuid": "GPU-1", "product": "NVIDIA A100-SXM4-40GB", "memoryMiB": 40960},
    ]
    client = KubeClient.for_url(url)
    agent = HealthAgent(client, "gpu-1", gpus, lambda gpu: EmulatedReader())

    def label() -> str | None:
        node = emulator.objects["v1/nodes", None, "gpu-1"].raw
        return (node["metadata"].get("labels") or {}).get(NODE_LABEL)

    def patches() -> int:
        return sum(1 for r in emulator if str(r.method).upper().endswith("PATCH"))

    assert agent.run_once() == "PASS" and label() == "PASS"
    agent.run_once()
    assert patches() == 1  # unchanged: not written again
    gpus[1]["faults"] = ["remapped-rows"]
    assert agent.run_once() == "EVICT"
    assert label() == "EVICT" and patches() == 2
    assert agent.snapshot[0].gpus[1].verdict.verdict == "EVICT"
    agent.close()
    client.close()
