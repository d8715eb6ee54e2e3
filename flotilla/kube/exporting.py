"""The embedded platform's objects as manifests again: the way back from one machine to a cluster.

`flotilla apply -f DIR/workloads` puts a rendering into a control plane; `export` reads the same kinds
back as a user would write them, so that rendering them again gives the same files (the round trip):

- server fields (uid, resourceVersion, generation, creationTimestamp, ...) and status are dropped;
- objects a controller made (with ownerReferences) and the built-in namespaces are left out;
- a Kueue-managed Job is given back its own template: the admission's node selector and tolerations
  come out again (from its Workload's pod sets, as Kueue's RestorePodSetsInfo does), and
  `spec.suspend`, Kueue's field, is dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from flotilla.api.batch import QUEUE_NAME_LABEL
from flotilla.api.registry import Kind, Registry
from flotilla.kube.objects import JSON, in_apply_order, labels_of, meta, name_of
from flotilla.kube.render import without_server_fields

EXPORTED_KINDS = (
    ("", "Namespace"),
    ("", "ConfigMap"),
    ("kueue.x-k8s.io", "ResourceFlavor"),
    ("kueue.x-k8s.io", "WorkloadPriorityClass"),
    ("kueue.x-k8s.io", "Cohort"),
    ("kueue.x-k8s.io", "ClusterQueue"),
    ("kueue.x-k8s.io", "LocalQueue"),
    ("batch", "Job"),
    ("apps", "Deployment"),
    ("inference.networking.k8s.io", "InferencePool"),
    ("inference.networking.x-k8s.io", "InferenceObjective"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "HTTPRoute"),
    ("flotilla.dev", "Pipeline"),
)
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
Lister = Callable[[Kind], list[JSON]]


def _workload_templates(workloads: list[JSON]) -> dict[str, JSON]:
    """Job uid -> the pod template its Workload recorded before admission."""
    out: dict[str, JSON] = {}
    for wl in workloads:
        owners = [r for r in meta(wl).get("ownerReferences") or [] if r.get("kind") == "Job"]
        pod_sets = (wl.get("spec") or {}).get("podSets") or []
        if owners and pod_sets:
            out[str(owners[0].get("uid"))] = (pod_sets[0].get("template") or {}).get("spec") or {}
    return out


def restore_job(job: Mapping[str, Any], original_pod: Mapping[str, Any] | None) -> JSON:
    """A Kueue-managed Job as its author wrote it (see the module docstring)."""
    out = copy.deepcopy(dict(job))
    if QUEUE_NAME_LABEL not in labels_of(out):
        return out
    spec = out.setdefault("spec", {})
    spec.pop("suspend", None)
    if original_pod is not None:
        pod = spec.setdefault("template", {}).setdefault("spec", {})
        for f in ("nodeSelector", "tolerations"):
            if original_pod.get(f):
                pod[f] = copy.deepcopy(original_pod[f])
            else:
                pod.pop(f, None)
    return out


def export(list_objects: Lister, registry: Registry) -> list[JSON]:
    """The user's objects in a control plane (`list_objects(kind)` lists one kind in every namespace),
    in apply order."""
    kinds = {(k.group, k.kind): k for k in registry}
    workload_kind = kinds[("kueue.x-k8s.io", "Workload")]
    templates = _workload_templates(list_objects(workload_kind))
    out: list[JSON] = []
    for key in EXPORTED_KINDS:
        kind = kinds.get(key)
        if kind is None:
            continue
        for obj in list_objects(kind):
            if meta(obj).get("ownerReferences"):
                continue
            if kind.kind == "Namespace" and name_of(obj) in BUILTIN_NAMESPACES:
                continue
            if kind.kind == "Job":
                obj = restore_job(obj, templates.get(str(meta(obj).get("uid"))))
            out.append(without_server_fields(obj))
    return in_apply_order(out)
