"""What Flotilla runs inside a cluster (the commands the rendered manifests start):

- `flotilla kube picker`: one InferencePool's endpoint picker, GAIE's EPP protocol (ext_proc over
  gRPC on port 9002) with Flotilla's scheduling (the same filters, scorers and profiles as the
  embedded gateway). It reads the pool, its pods, the InferenceObjectives and the HTTPRoutes of the
  pool's namespace from the API server (`KubeLister`, a list per resync), scrapes the pods' vLLM
  metrics, and serves `/metrics` (GAIE's names) and `/health` on port 9090.
- `flotilla kube health-agent`: on each GPU node (a DaemonSet), Autopilot's health checks over the
  node's GPUs read through NVML, the verdict written to the Node's label
  `autopilot.ibm.com/gpuhealth` (PASS, WARN, EVICT or ERR; a merge patch, only when it changes), and
  the readings exported under dcgm-exporter's and Autopilot's metric names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.kube.cluster import KubeApiError, KubeClient
from flotilla.telemetry.checks import HealthConfig, Verdict, default_registry, node_verdict
from flotilla.telemetry.dcgm import GPUSample, NodeHealth
from flotilla.telemetry.readings import GPUReadings, Reader

JSON = dict[str, Any]
NODE_LABEL = "autopilot.ibm.com/gpuhealth"
MERGE_PATCH = "application/merge-patch+json"
log = logging.getLogger("flotilla.kube.agents")
# The versions the picker reads its kinds in (what a cluster with GAIE v1 and Gateway API v1 serves).
PICKER_VERSIONS = {
    ("", "Pod"): "v1",
    ("inference.networking.k8s.io", "InferencePool"): "v1",
    ("inference.networking.x-k8s.io", "InferenceObjective"): "v1alpha2",
    ("gateway.networking.k8s.io", "HTTPRoute"): "v1",
}


class KubeLister:
    """The gateway's ObjectLister over the Kubernetes API, in one namespace: a list per call; a kind the
    cluster does not serve is empty. `pool` keeps one InferencePool (a picker serves one pool)."""

    def __init__(self, client: KubeClient, namespace: str, pool: str | None = None) -> None:
        self._client = client
        self._namespace = namespace
        self._pool = pool

    def list(self, group: str, kind: str) -> list[JSON]:
        version = PICKER_VERSIONS.get((group, kind))
        resource = (self._client.resources(group, version) or {}).get(kind) if version else None
        if version is None or resource is None:
            return []
        path = self._client.path(resource, group, version, self._namespace)
        items = list(self._client.request("GET", path).get("items") or [])
        if kind == "InferencePool" and self._pool is not None:
            items = [i for i in items if (i.get("metadata") or {}).get("name") == self._pool]
        for item in items:
            item.setdefault("apiVersion", f"{group}/{version}" if group else version)
            item.setdefault("kind", kind)
        return items


async def run_picker(
    client: KubeClient,
    pool: str,
    namespace: str,
    profile: str,
    grpc_port: int,
    metrics_port: int,
    host: str = "0.0.0.0",
) -> None:
    """Serve one pool's picker until cancelled (SIGTERM in the pod)."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST

    from flotilla.gateway.config import GatewayConfig
    from flotilla.gateway.dispatch import InferenceGateway
    from flotilla.gateway.endpoints import PoolEndpoints
    from flotilla.gateway.envoy.extproc import serve_extproc
    from flotilla.gateway.envoy.picker import EnvoyPicker
    from flotilla.gateway.policy import default_scheduling

    source = PoolEndpoints(KubeLister(client, namespace, pool), namespace)
    gateway = InferenceGateway(source, default_scheduling(), GatewayConfig(profile=profile))
    app = FastAPI(title="Flotilla endpoint picker", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> JSONResponse:
        pools = {p.name: len(p.endpoints) for p in gateway.topology.pools.values()}
        ok = f"{namespace}/{pool}" in pools
        return JSONResponse({"status": "ok" if ok else "no pool", "pools": pools}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        gateway.metrics.observe_pools(gateway.topology.pools.values(), gateway.data.metrics, gateway.data.in_flight)
        return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    await gateway.start()
    extproc = await serve_extproc(EnvoyPicker(gateway), host, grpc_port)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=metrics_port, log_level="warning", access_log=False))
    log.info("endpoint picker of %s/%s: ext_proc on %s, metrics on :%d", namespace, pool, extproc.address, metrics_port)
    try:
        await server.serve()
    finally:
        await extproc.stop(5.0)
        await gateway.stop()


# -- the GPU health agent -----------------------------------------------------------------------
@dataclass
class HealthAgent:
    """One node's GPU health: `run_once()` reads every GPU, checks, and labels the Node when the
    verdict changes. `gpus` are the node's GPUs as `status.gpus` entries (index, uuid, product)."""

    client: KubeClient
    node: str
    gpus: Sequence[JSON]
    readers: Callable[[JSON], Reader]
    config: HealthConfig = field(default_factory=HealthConfig)
    snapshot: tuple[NodeHealth, ...] = ()
    _readers: dict[str, Reader] = field(default_factory=dict)
    _labelled: str | None = None

    def __post_init__(self) -> None:
        self._checks = default_registry().bind(self.config)

    def _read(self, gpu: JSON) -> GPUReadings:
        uuid = str(gpu.get("uuid", ""))
        reader = self._readers.get(uuid)
        if reader is None:
            reader = self._readers[uuid] = self.readers(gpu)
        try:
            return reader.read(gpu, 0.0)
        except Exception:  # a GPU that cannot be read cannot be used either
            log.exception("reading GPU %s failed; treating it as unreachable", uuid)
            return GPUReadings(uuid=uuid, reachable=False)

    def run_once(self) -> Verdict:
        samples = []
        for gpu in self.gpus:
            readings = self._read(gpu)
            samples.append(
                GPUSample(
                    index=int(gpu.get("index", 0)),
                    uuid=str(gpu.get("uuid", "")),
                    model_name=str(gpu.get("product") or ""),
                    readings=readings,
                    verdict=self._checks.evaluate_gpu(readings),
                    last_xid=readings.xid_events[-1] if readings.xid_events else 0,
                )
            )
        verdict = node_verdict(s.verdict for s in samples)
        self.snapshot = (NodeHealth(self.node, verdict, tuple(samples)),)
        if verdict != self._labelled:
            self._label(verdict)
        return verdict

    def _label(self, verdict: str) -> None:
        path = f"/api/v1/nodes/{self.node}"
        try:
            self.client.request("PATCH", path, {"metadata": {"labels": {NODE_LABEL: verdict}}}, (), MERGE_PATCH)
        except KubeApiError as exc:  # try again on the next pass
            log.warning("could not label node %s %s=%s: %s", self.node, NODE_LABEL, verdict, exc)
            return
        log.info("node %s: %s=%s", self.node, NODE_LABEL, verdict)
        self._labelled = verdict

    def close(self) -> None:
        for reader in self._readers.values():
            close = getattr(reader, "close", None)
            if callable(close):
                close()
        self._readers.clear()


def local_gpus() -> list[JSON]:
    """This host's GPUs through NVML, as `status.gpus` entries (NoGPUError when there are none)."""
    from flotilla.slicer.backends.nvml import NvmlBackend
    from flotilla.slicer.profiles import load_catalog

    backend = NvmlBackend(load_catalog())
    try:
        nodes = backend.discover()
    finally:
        backend.close()
    return [{"index": g.index, "uuid": g.uuid, "product": g.product} for n in nodes for g in n.gpus]
