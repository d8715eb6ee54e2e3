"""GAIE's conformance behaviours without Kubernetes, on its own manifests.

The InferencePools of base.yaml and each test's HTTPRoute are loaded from
`../shared/reference/gaie/conformance`; their pods are fake vLLM servers on their own loopback
addresses (127.1.x.y, as the runtime gives pods), all on one free port that replaces the
manifests' targetPort 3000.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flotilla.gateway.endpoints import PoolEndpoints
from flotilla.gateway.policy import Scheduling, default_scheduling
from flotilla.gateway.scheduling.types import EndpointSnapshot, InferenceRequest, PickResult, SchedulingContext

from .builders import FakeVllm, RunningGateway, free_port, running_gateway, serving

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "gaie" / "conformance"
pytestmark = pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"GAIE manifests not found at {CONFORMANCE}")
JSON = dict[str, Any]
NS = "inference-conformance-app-backend"
BODY = {"model": "conformance-fake-model", "prompt": "Write as if you were a critic: San Francisco"}


def documents(name: str) -> list[JSON]:
    return [d for d in yaml.safe_load_all((CONFORMANCE / name).read_text()) if d]


class Objects:
    """An in-memory ObjectLister: the objects the test put in."""

    def __init__(self, objects: Sequence[JSON]) -> None:
        self.objects = list(objects)

    def list(self, group: str, kind: str) -> list[JSON]:
        return [o for o in self.objects if o["kind"] == kind and o["apiVersion"].rpartition("/")[0] == group]


def ready_pod(name: str, app: str, ip: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


class Switchable:
    """The real profile, until `down`: then picking raises, as an unreachable endpoint picker would."""

    def __init__(self, real: Any) -> None:
        self.real, self.down = real, False

    def pick(
        self, ctx: SchedulingContext, request: InferenceRequest, endpoints: Sequence[EndpointSnapshot]
    ) -> PickResult:
        if self.down:
            raise ConnectionError("the endpoint picker is unreachable")
        result: PickResult = self.real.pick(ctx, request, endpoints)
        return result


@dataclass
class Cluster:
    gateway: RunningGateway
    pods: Mapping[str, FakeVllm]  # pod name -> its server
    picker: Switchable
    client: httpx.Client

    def send(self, host: str, path: str, method: str = "POST") -> httpx.Response:
        body = BODY if method == "POST" else None
        return self.client.request(method, f"{self.gateway.url}{path}", json=body, headers={"host": host})

    def served_by(self, response: httpx.Response) -> str:
        assert response.status_code == 200, response.text
        return str(response.json()["served_by"])


@contextlib.contextmanager
def cluster(*route_files: str, routes: Sequence[JSON] = (), gateway: str | None = None) -> Iterator[Cluster]:
    """Primary and secondary pools of base.yaml, three pods each, the routes of `route_files`, and `routes`."""
    port = free_port()
    pools = [
        d for d in documents("base.yaml") if d["kind"] == "InferencePool" and "inference-pool" in d["metadata"]["name"]
    ]
    for p in pools:
        p["spec"]["targetPorts"] = [{"number": port}]
    routes = [*(d for f in route_files for d in documents(f) if d["kind"] == "HTTPRoute"), *routes]
    servers = {
        f"{app}-{i}": FakeVllm(f"{app}-{i}", model="conformance-fake-model", host=f"127.1.{j}.{i + 1}", port=port)
        for j, app in enumerate(("primary-inference-model-server", "secondary-inference-model-server"))
        for i in range(3)
    }
    pods = [ready_pod(name, name.rsplit("-", 1)[0], f.host) for name, f in servers.items()]
    scheduling: Scheduling = default_scheduling()
    picker = Switchable(scheduling.profiles["default"])
    scheduling.profiles = {"default": picker}
    with contextlib.ExitStack() as stack:
        stack.enter_context(serving(*servers.values()))
        source = PoolEndpoints(Objects([*pools, *pods, *routes]))
        gw = stack.enter_context(running_gateway(source, scheduling, fresh=6, gateway=gateway))
        client = stack.enter_context(httpx.Client(timeout=10))
        yield Cluster(gw, servers, picker, client)


def test_weighted_two_pools() -> None:
    with cluster("gateway_weighted_two_pools.yaml") as c:
        counts = Counter(
            c.served_by(c.send("primary.example.com", "/weighted-two-pools-test")).split("-")[0] for _ in range(200)
        )
    assert 0.62 < counts["primary"] / 200 < 0.78, counts
    assert counts["primary"] + counts["secondary"] == 200


def test_destination_endpoint_served_and_port_ignored_for_pools() -> None:
    with cluster("gateway_destination_endpoint_served.yaml", "inferencepool_httproute_port_validation.yaml") as c:
        r = c.send("primary.example.com", "/destination-endpoint-served-test")
        pod = c.pods[c.served_by(r)]
        assert r.headers["x-gateway-destination-endpoint-served"] == pod.address == r.json()["destination"]
        assert pod.name.startswith("primary")
        for host, path in (
            ("port-unspecified.example.com", "/test-port-unspecified"),
            ("port-matching.example.com", "/test-port-matching"),
            ("port-non-matching.example.com", "/test-port-non-matching"),
        ):
            assert c.served_by(c.send(host, path, method="GET")).startswith("primary")


def test_epp_unavailable_fail_open_and_fail_close() -> None:
    with cluster("epp_unavailable_fail_open.yaml", "gateway_following_epp_routing.yaml") as c:
        assert c.served_by(c.send("secondary.example.com", "/failopen-pool-test")).startswith("secondary")
        c.picker.down = True
        served = {c.served_by(c.send("secondary.example.com", "/failopen-pool-test")) for _ in range(20)}
        assert all(name.startswith("secondary") for name in served) and len(served) > 1  # any pod, at random
        closed = c.send("primary.example.com", "/primary-gateway-test")  # the primary pool fails closed
        assert closed.status_code == 503 and "picker" in closed.json()["error"]["message"]
        assert 'flotilla_gateway_picker_failures_total{failure_mode="FailOpen"} 20.0' in c.gateway.scrape_metrics()


def test_routes_follow_their_gateway_and_unknown_pools_are_500() -> None:
    files = ("httproute_multiple_gateways_different_pools.yaml", "httproute_invalid_inferencepool_ref.yaml")
    with cluster(*files, gateway="inference-conformance-infra/conformance-primary") as c:
        assert c.served_by(c.send("primary.example.com", "/test-primary-gateway")).startswith("primary")
        assert c.send("secondary.example.com", "/test-secondary-gateway").status_code == 404  # another Gateway's
        invalid = c.send("primary.example.com", "/test-non-existent-pool")
        assert invalid.status_code == 500 and "does not exist" in invalid.json()["error"]["message"]


def test_header_matches_choose_the_pool() -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "by-header", "namespace": NS},
        "spec": {
            "rules": [
                {
                    "matches": [{"path": {"value": "/v1"}, "headers": [{"name": "x-tier", "value": "batch"}]}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": "x-tier", "value": "batch-checked"}]},
                        },
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {"add": [{"name": "x-route", "value": "by-header"}]},
                        },
                    ],
                    "backendRefs": [
                        {
                            "group": "inference.networking.k8s.io",
                            "kind": "InferencePool",
                            "name": "secondary-inference-pool",
                        }
                    ],
                },
                {
                    "matches": [{"path": {"value": "/v1"}}],
                    "backendRefs": [
                        {
                            "group": "inference.networking.k8s.io",
                            "kind": "InferencePool",
                            "name": "primary-inference-pool",
                        }
                    ],
                },
            ]
        },
    }
    with cluster(routes=[route]) as c:
        url = f"{c.gateway.url}/v1/chat/completions"
        chat = {"model": "conformance-fake-model", "messages": [{"role": "user", "content": "hi"}]}
        batch = httpx.post(url, json=chat, headers={"x-tier": "batch"})
        plain = httpx.post(url, json=chat)
    assert batch.json()["served_by"].startswith("secondary")
    assert plain.json()["served_by"].startswith("primary")
    assert batch.headers["x-route"] == "by-header" and "x-route" not in plain.headers
    pod = c.pods[batch.json()["served_by"]]
    assert pod.requests[-1]["headers"]["x-tier"] == "batch-checked"
