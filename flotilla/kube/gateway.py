"""The inference path on a cluster: InferencePools with their endpoint pickers, Gateways and HTTPRoutes.

GAIE's model: a Gateway (Istio, kgateway, ...) matches an HTTPRoute whose backend is an
InferencePool; for each request it asks the pool's endpoint picker (EPP, ext_proc over gRPC on port
9002, a Service in the pool's namespace named by `spec.endpointPickerRef`) which pod serves it.
One picker per pool, either

- `flotilla`: Flotilla's own picker (`flotilla kube picker`: the same filters, scorers and profiles
  as the embedded gateway; reads pods, InferencePools, InferenceObjectives and HTTPRoutes), or
- `llm-d`: llm-d's inference scheduler image with its EndpointPickerConfig (queue, KV cache and
  prefix-cache scorers, as llm-d ships it).

A pool without an HTTPRoute gets one (path `/`, parent: a Gateway named `inference-gateway` in its
namespace, rendered when the project has none there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from flotilla.kube import rbac
from flotilla.kube.objects import JSON, meta, name_of, namespace_of
from flotilla.kube.options import RenderOptions

GRPC_PORT = 9002
HEALTH_PORT = 9003
METRICS_PORT = 9090
GATEWAY_NAME = "inference-gateway"
POOL_GROUP = "inference.networking.k8s.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"
PROFILE_ANNOTATION = "flotilla.dev/scheduling-profile"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF = {"app.kubernetes.io/part-of": "flotilla"}
# llm-d's inference-scheduling profile (flotilla/gateway/scheduling/profiles/llm-d.yaml) in upstream plugin names.
LLMD_CONFIG: JSON = {
    "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
    "kind": "EndpointPickerConfig",
    "plugins": [
        {"type": "queue-scorer"},
        {"type": "kv-cache-utilization-scorer"},
        {"type": "prefix-cache-scorer"},
        {"type": "max-score-picker"},
    ],
    "schedulingProfiles": [
        {
            "name": "default",
            "plugins": [
                {"pluginRef": "queue-scorer", "weight": 2},
                {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
                {"pluginRef": "prefix-cache-scorer", "weight": 3},
                {"pluginRef": "max-score-picker"},
            ],
        }
    ],
}
PICKER_RULES = (
    rbac.Rule("", ("pods",), rbac.READ),
    rbac.Rule(POOL_GROUP, ("inferencepools",), rbac.READ),
    rbac.Rule("inference.networking.x-k8s.io", ("inferenceobjectives",), rbac.READ),
)
FLOTILLA_PICKER_RULES = (*PICKER_RULES, rbac.Rule("gateway.networking.k8s.io", ("httproutes",), rbac.READ))
# llm-d's EPP guards /metrics with the caller's token (TokenReview + SubjectAccessReview).
METRICS_AUTH_ROLE = "flotilla-epp-metrics-auth"
METRICS_AUTH_RULES = (
    rbac.Rule("authentication.k8s.io", ("tokenreviews",), ("create",)),
    rbac.Rule("authorization.k8s.io", ("subjectaccessreviews",), ("create",)),
)


def picker_name(pool: str) -> str:
    return f"{pool}-epp"


def owns_picker_ref(pool: Mapping[str, Any]) -> bool:
    """True when the pool has no endpointPickerRef, or the one Flotilla renders (`<pool>-epp`)."""
    ref = (pool.get("spec") or {}).get("endpointPickerRef")
    return ref is None or ref.get("name") == picker_name(name_of(pool))


def with_picker_ref(pool: Mapping[str, Any]) -> JSON:
    """The pool pointing at its picker's Service (the failure mode the user chose is kept)."""
    out = {**pool, "spec": dict(pool.get("spec") or {})}
    previous = out["spec"].get("endpointPickerRef") or {}
    out["spec"]["endpointPickerRef"] = {
        "group": "",
        "kind": "Service",
        "name": picker_name(name_of(pool)),
        "port": {"number": GRPC_PORT},
        "failureMode": previous.get("failureMode", "FailClose"),
    }
    return out


def _picker_container(pool: Mapping[str, Any], options: RenderOptions) -> JSON:
    name, namespace = name_of(pool), namespace_of(pool) or "default"
    ports = [
        {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    ]
    if options.picker == "llm-d":
        grpc_probe = {"grpc": {"port": HEALTH_PORT, "service": "inference-extension"}, "periodSeconds": 10}
        return {
            "name": "epp",
            "image": options.epp_image,
            "args": [
                *("--pool-name", name, "--pool-namespace", namespace, "--pool-group", POOL_GROUP),
                *("--zap-encoder", "json", "--grpc-port", str(GRPC_PORT)),
                *("--grpc-health-port", str(HEALTH_PORT), "--metrics-port", str(METRICS_PORT)),
                *("--config-file", "/config/epp-config.yaml"),
            ],
            "ports": [*ports, {"name": "grpc-health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
            "readinessProbe": {**grpc_probe, "initialDelaySeconds": 5},
            "livenessProbe": {**grpc_probe, "initialDelaySeconds": 5},
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}],
        }
    profile = (meta(pool).get("annotations") or {}).get(PROFILE_ANNOTATION, "default")
    health = {"httpGet": {"path": "/health", "port": "metrics"}}
    return {
        "name": "picker",
        "image": options.image,
        "command": ["flotilla", "kube", "picker"],
        "args": [
            *("--pool-name", name, "--pool-namespace", namespace, "--profile", profile),
            *("--grpc-port", str(GRPC_PORT), "--metrics-port", str(METRICS_PORT)),
        ],
        "ports": ports,
        "readinessProbe": {**health, "periodSeconds": 5},
        "livenessProbe": {**health, "periodSeconds": 10, "timeoutSeconds": 5},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }


def picker_objects(pool: Mapping[str, Any], options: RenderOptions) -> list[JSON]:
    """The picker of one pool: ServiceAccount, Role and RoleBinding, Service, Deployment (and, for
    llm-d, its config), all in the pool's namespace."""
    pool_name, namespace = name_of(pool), namespace_of(pool) or "default"
    name = picker_name(pool_name)
    labels = {"app": name, COMPONENT_LABEL: "endpoint-picker", **PART_OF}
    selector = {"app": name}
    pod: JSON = {
        "serviceAccountName": name,
        "terminationGracePeriodSeconds": 130,  # GAIE: as long as the longest request to drain
        "containers": [_picker_container(pool, options)],
    }
    objects: list[JSON] = []
    if options.picker == "llm-d":
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{name}-config", "namespace": namespace, "labels": labels},
                "data": {"epp-config.yaml": yaml.safe_dump(LLMD_CONFIG, sort_keys=False)},
            }
        )
        pod["volumes"] = [{"name": "config", "configMap": {"name": f"{name}-config"}}]
    rules = PICKER_RULES if options.picker == "llm-d" else FLOTILLA_PICKER_RULES
    objects += [
        rbac.service_account(name, namespace, labels),
        rbac.role(name, namespace, rules, labels),
        rbac.binding(name, namespace, name, [(namespace, name)], labels),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "http2"},
                    {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
                ],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
    ]
    return objects


def metrics_auth_objects(pickers: Iterable[tuple[str, str]]) -> list[JSON]:
    """llm-d only: the ClusterRole letting its pickers check who scrapes /metrics, and one binding."""
    subjects = sorted(set(pickers))
    if not subjects:
        return []
    labels = {COMPONENT_LABEL: "endpoint-picker", **PART_OF}
    return [
        rbac.role(METRICS_AUTH_ROLE, None, METRICS_AUTH_RULES, labels),
        rbac.binding(METRICS_AUTH_ROLE, None, METRICS_AUTH_ROLE, subjects, labels),
    ]


def gateway(namespace: str, options: RenderOptions, name: str = GATEWAY_NAME) -> JSON:
    """A Gateway of `options.gateway_class` with one HTTP listener on port 80."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": options.gateway_class,
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        },
    }


def route_for(pool: Mapping[str, Any], gateway_name: str) -> JSON:
    """An HTTPRoute sending every path to the pool, attached to `gateway_name` in the pool's namespace."""
    name, namespace = name_of(pool), namespace_of(pool) or "default"
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway_name}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"group": POOL_GROUP, "kind": "InferencePool", "name": name}],
                    "timeouts": {"request": "300s"},
                }
            ],
        },
    }


def routed_pools(routes: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(namespace, name) of every InferencePool some HTTPRoute sends to."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        ns = namespace_of(route) or "default"
        for rule in (route.get("spec") or {}).get("rules") or []:
            for backend in rule.get("backendRefs") or []:
                if backend.get("kind") == "InferencePool":
                    out.add((backend.get("namespace") or ns, str(backend.get("name"))))
    return out


def parent_gateways(routes: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(namespace, name) of every Gateway the routes attach to."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        ns = namespace_of(route) or "default"
        for parent in (route.get("spec") or {}).get("parentRefs") or []:
            if parent.get("kind", "Gateway") == "Gateway" and parent.get("group", GATEWAY_GROUP) == GATEWAY_GROUP:
                out.add((parent.get("namespace") or ns, str(parent.get("name"))))
    return out
