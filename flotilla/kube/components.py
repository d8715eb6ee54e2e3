"""Flotilla's own cluster components and their observability: the GPU health checker (a DaemonSet that
labels each GPU node `autopilot.ibm.com/gpuhealth`, as IBM Autopilot does), Prometheus PodMonitors and
ServiceMonitors, and the Containerfile of Flotilla's image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flotilla.kube import rbac
from flotilla.kube.gateway import COMPONENT_LABEL, PART_OF
from flotilla.kube.objects import JSON, meta
from flotilla.kube.options import RenderOptions

HEALTH_NAME = "flotilla-health-checker"
HEALTH_METRICS_PORT = 9400  # dcgm-exporter's port: the metrics carry its names
MONITORING_API = "monitoring.coreos.com/v1"


def system_namespace(options: RenderOptions) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": options.system_namespace, "labels": dict(PART_OF)},
    }


def health_checker(options: RenderOptions) -> list[JSON]:
    """ServiceAccount, ClusterRole (patch Nodes: nothing else), binding, DaemonSet, PodMonitor."""
    ns = options.system_namespace
    labels = {"app": HEALTH_NAME, COMPONENT_LABEL: "gpu-health-checker", **PART_OF}
    container: JSON = {
        "name": "health-checker",
        "image": options.image,
        "command": ["flotilla", "kube", "health-agent"],
        "args": [
            *("--node", "$(NODE_NAME)", "--interval", str(options.health_interval_seconds)),
            *("--metrics-port", str(HEALTH_METRICS_PORT)),
        ],
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            # NVML without taking a GPU: the NVIDIA container runtime mounts the driver's utilities.
            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"},
        ],
        "ports": [{"name": "metrics", "containerPort": HEALTH_METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "metrics"}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "metrics"}, "periodSeconds": 30},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
    }
    daemonset: JSON = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": HEALTH_NAME, "namespace": ns, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app": HEALTH_NAME}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": HEALTH_NAME,
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                },
            },
        },
    }
    rules = [rbac.Rule("", ("nodes",), ("patch",))]  # the agent only patches its label
    return [
        rbac.service_account(HEALTH_NAME, ns, labels),
        rbac.role(HEALTH_NAME, None, rules, labels),
        rbac.binding(HEALTH_NAME, None, HEALTH_NAME, [(ns, HEALTH_NAME)], labels),
        daemonset,
        pod_monitor(HEALTH_NAME, ns, {"app": HEALTH_NAME}, "metrics", labels),
    ]


def pod_monitor(name: str, namespace: str, selector: Mapping[str, str], port: str, labels: Mapping[str, str]) -> JSON:
    """A PodMonitor scraping `/metrics` on the named port of the pods `selector` matches."""
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "podMetricsEndpoints": [{"port": port, "path": "/metrics", "interval": "15s"}],
        },
    }


def model_server_monitor(deployment: Mapping[str, Any]) -> JSON:
    """vLLM's metrics (`vllm:*`, what the pickers score on) from a model server's pods."""
    m = meta(deployment)
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = {COMPONENT_LABEL: "model-server", **PART_OF}
    return pod_monitor(str(m["name"]), str(m.get("namespace") or "default"), selector, "http", labels)


def picker_monitor(picker: Mapping[str, Any], secure: bool) -> JSON:
    """GAIE's `inference_pool_*` / `inference_objective_*` metrics from a picker's Service."""
    m = meta(picker)
    endpoint: JSON = {"port": "metrics", "path": "/metrics", "interval": "15s"}
    if secure:  # llm-d's EPP wants a token allowed to GET /metrics
        endpoint["bearerTokenFile"] = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "labels": dict(m.get("labels") or {})},
        "spec": {"selector": {"matchLabels": {"app": m["name"]}}, "endpoints": [endpoint]},
    }


CONTAINERFILE = """\
# Flotilla's image: the `flotilla` command for the transcription Jobs, the endpoint picker and the GPU
# health checker on a cluster. Rendered by `flotilla kube render`; build it from the repository root:
#   podman build -f {out}/Containerfile -t {image} .
# (or docker build ...), then push it where the cluster pulls from, or `kind load docker-image {image}`.
FROM docker.io/library/python:3.11-slim

# libgomp1: CTranslate2 (faster-whisper) needs OpenMP at run time.
RUN apt-get update \\
 && apt-get install -y --no-install-recommends libgomp1 \\
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY flotilla ./flotilla
# The pinned versions every other Flotilla install uses (constraints.txt).
RUN pip install --no-cache-dir --constraint constraints.txt . \\
 && rm -rf /src

# Not root: the picker and the Jobs need no privileges; the health checker reads NVML through the
# NVIDIA container runtime.
RUN useradd --uid 65532 --create-home flotilla
USER 65532
WORKDIR /home/flotilla
ENV PYTHONUNBUFFERED=1

LABEL org.opencontainers.image.title="flotilla"
CMD ["flotilla", "--help"]
"""


def containerfile(options: RenderOptions, out: str = "DIR") -> str:
    return CONTAINERFILE.format(out=out, image=options.image)
