"""MultiKueue: one manager cluster admits the study's Jobs and dispatches each to one of N workers
(Vela's geographically distributed case), from a short cluster list:

    # clusters.yaml
    admissionCheck: multikueue          # the AdmissionCheck's name (default)
    config: multikueue                  # the MultiKueueConfig's name (default)
    clusterQueues: [cluster-queue]      # the manager's ClusterQueues that dispatch (default: every one)
    workers:
    - name: worker-eu                   # a MultiKueueCluster per worker
      kubeconfigSecret: worker-eu-kubeconfig   # Secret in Kueue's namespace, key `kubeconfig`

On the manager: an AdmissionCheck (controller `kueue.x-k8s.io/multikueue`) whose parameters name the
MultiKueueConfig, which lists one MultiKueueCluster per worker; the ClusterQueues carry the check.
Each worker runs the same namespaces and queues without it (render the project again without
`--multikueue` for the workers). In v1beta2 a MultiKueueCluster's kubeconfig is under
`spec.clusterSource.kubeConfig`; in v1beta1 under `spec.kubeConfig`.

The Kueue CRDs at hand have no MultiKueue kinds, so `SCHEMAS` carries their OpenAPI schemas as
Kueue's Go types define them (apis/kueue/v1beta{1,2}/multikueue_types.go); CRDs given with `--crds`
take precedence.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flotilla.api.configfile import read_yaml, validate_model
from flotilla.kube.objects import JSON, deep_copy, kind_of, name_of
from flotilla.kube.schemas import CrdVersion, strictify, with_object_meta

GROUP = "kueue.x-k8s.io"
CONTROLLER = "kueue.x-k8s.io/multikueue"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class MultiKueueError(ValueError):
    """A cluster list that cannot be rendered (names the file and the field)."""


class Worker(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    kubeconfigSecret: str = Field(min_length=1, max_length=256)
    locationType: Literal["Secret", "Path"] = "Secret"  # Path: a file on the Kueue controller's disk


class ClusterList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    admissionCheck: str = Field(default="multikueue", pattern=DNS_LABEL)
    config: str = Field(default="multikueue", pattern=DNS_LABEL)
    clusterQueues: list[str] | None = None
    workers: list[Worker] = Field(min_length=1, max_length=20)


def load_cluster_list(path: Path) -> ClusterList:
    """The cluster list in `path`; MultiKueueError naming the file and every bad field otherwise."""
    raw = read_yaml(path, "cluster list", MultiKueueError)
    clusters = validate_model(ClusterList, raw, str(path), MultiKueueError)
    names = [w.name for w in clusters.workers]
    if len(set(names)) != len(names):
        raise MultiKueueError(f"{path}: workers: names must be unique, got {names}")
    return clusters


def _kube_config(worker: Worker) -> JSON:
    return {"location": worker.kubeconfigSecret, "locationType": worker.locationType}


def multikueue_objects(clusters: ClusterList, version: str) -> list[JSON]:
    """AdmissionCheck, MultiKueueConfig and one MultiKueueCluster per worker, in `version`."""
    api = f"{GROUP}/{version}"
    objs: list[JSON] = [
        {
            "apiVersion": api,
            "kind": "AdmissionCheck",
            "metadata": {"name": clusters.admissionCheck},
            "spec": {
                "controllerName": CONTROLLER,
                "parameters": {"apiGroup": GROUP, "kind": "MultiKueueConfig", "name": clusters.config},
            },
        },
        {
            "apiVersion": api,
            "kind": "MultiKueueConfig",
            "metadata": {"name": clusters.config},
            "spec": {"clusters": [w.name for w in clusters.workers]},
        },
    ]
    for worker in clusters.workers:
        spec = (
            {"clusterSource": {"kubeConfig": _kube_config(worker)}}
            if version == "v1beta2"
            else {"kubeConfig": _kube_config(worker)}
        )
        objs.append({"apiVersion": api, "kind": "MultiKueueCluster", "metadata": {"name": worker.name}, "spec": spec})
    return objs


def with_admission_check(cluster_queue: Mapping[str, Any], clusters: ClusterList) -> JSON:
    """A ClusterQueue (internal, v1beta2) that waits for the MultiKueue check, when the list names it."""
    if kind_of(cluster_queue) != "ClusterQueue" or (
        clusters.clusterQueues is not None and name_of(cluster_queue) not in clusters.clusterQueues
    ):
        return dict(cluster_queue)
    out = deep_copy(cluster_queue)
    strategy = out.setdefault("spec", {}).setdefault("admissionChecksStrategy", {})
    checks = strategy.setdefault("admissionChecks", [])
    if all(c.get("name") != clusters.admissionCheck for c in checks):
        checks.append({"name": clusters.admissionCheck})
    return out


# -- schemas (Kueue's Go types; see the module docstring) ----------------------------------------
_CONDITIONS: JSON = {
    "type": "array",
    "maxItems": 16,
    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
_KUBECONFIG: JSON = {
    "type": "object",
    "required": ["location"],
    "properties": {
        "location": {"type": "string", "minLength": 1, "maxLength": 256},
        "locationType": {"type": "string", "enum": ["Secret", "Path"]},
    },
}


def _root(spec: JSON, status: JSON | None = None) -> JSON:
    properties: JSON = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "spec": spec}
    if status is not None:
        properties["status"] = status
    return with_object_meta(strictify({"type": "object", "properties": properties}))


def _cluster_spec(version: str) -> JSON:
    if version == "v1beta1":
        return {"type": "object", "required": ["kubeConfig"], "properties": {"kubeConfig": _KUBECONFIG}}
    source = {
        "type": "object",
        "properties": {
            "kubeConfig": _KUBECONFIG,
            "clusterProfileRef": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 256}},
            },
        },
    }
    return {"type": "object", "required": ["clusterSource"], "properties": {"clusterSource": source}}


def _config_spec() -> JSON:
    clusters = {"type": "array", "minItems": 1, "maxItems": 20, "items": {"type": "string", "maxLength": 256}}
    return {"type": "object", "required": ["clusters"], "properties": {"clusters": clusters}}


SOURCE = "Kueue's Go types (apis/kueue/<version>/multikueue_types.go)"
SCHEMAS: tuple[CrdVersion, ...] = tuple(
    v
    for version in ("v1beta2", "v1beta1")
    for v in (
        CrdVersion(
            GROUP,
            version,
            "MultiKueueCluster",
            "multikueueclusters",
            False,
            _root(_cluster_spec(version), {"type": "object", "properties": {"conditions": _CONDITIONS}}),
            SOURCE,
        ),
        CrdVersion(GROUP, version, "MultiKueueConfig", "multikueueconfigs", False, _root(_config_spec()), SOURCE),
    )
)
