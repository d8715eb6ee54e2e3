"""`flotilla kube render`: the objects the embedded platform runs -> the manifests a cluster needs.

    rendering = render(load_paths(["project/"], registry), RenderOptions(), registry)
    write(rendering, Path("deploy"))

Pure apart from `write`. The output is deterministic (objects in apply order, then by namespace and
name; keys sorted), one file per kind, in two folders:

    DIR/workloads/NN-<kind>.yaml  what the project runs: namespaces, Kueue objects, Jobs, model-server
                                  Deployments, InferencePools, Gateways, HTTPRoutes. Every kind here
                                  is one the embedded platform serves too: `flotilla apply -f
                                  DIR/workloads` brings the same queues and jobs back to one machine.
    DIR/cluster/NN-<kind>.yaml    what only a cluster needs: Services, RBAC, the endpoint pickers,
                                  the GPU health checker, Prometheus monitors.
    DIR/Containerfile             Flotilla's image (the Jobs, the picker and the health checker run it).

`NN` is the kind's place in the apply order (objects.APPLY_ORDER), so `kubectl apply -f` of a folder
in file order respects dependencies too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flotilla.api.batch import QUEUE_NAME_LABEL
from flotilla.api.errors import FieldIssue, ManifestError, ManifestErrors
from flotilla.api.loader import LoadedObject
from flotilla.api.registry import Registry
from flotilla.kube import components, gateway, multikueue, vllm, workloads
from flotilla.kube.objects import (
    JSON,
    UNKNOWN_RANK,
    dump_documents,
    identity,
    kind_of,
    meta,
    name_of,
    namespace_of,
    plural_of,
    rank,
    ref,
    sort_key,
)
from flotilla.kube.options import RenderOptions

WORKLOADS = "workloads"
CLUSTER = "cluster"
SKIPPED_KINDS = {
    "Node": "nodes come from the cluster's kubelets",
    "Pod": "pods are made by the cluster's controllers",
    "Workload": "Kueue makes Workloads from the Jobs",
    "AllocationClaim": "the Dynamic Accelerator Slicer makes AllocationClaims",
}
SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)


@dataclass(frozen=True)
class Manifest:
    folder: str  # WORKLOADS or CLUSTER
    obj: JSON


@dataclass(frozen=True)
class Rendering:
    manifests: tuple[Manifest, ...]
    containerfile: str
    notes: tuple[str, ...] = ()

    def objects(self, folder: str | None = None) -> list[JSON]:
        return [m.obj for m in self.manifests if folder is None or m.folder == folder]

    def files(self) -> dict[str, str]:
        """Relative path -> text, one YAML file per (folder, kind), plus the Containerfile."""
        grouped: dict[str, list[JSON]] = {}
        for m in self.manifests:
            r = rank(m.obj)
            number = f"{r:02d}" if r < UNKNOWN_RANK else "99"
            grouped.setdefault(f"{m.folder}/{number}-{plural_of(kind_of(m.obj))}.yaml", []).append(m.obj)
        out = {path: dump_documents(objs) for path, objs in sorted(grouped.items())}
        out["Containerfile"] = self.containerfile
        return out


@dataclass
class _Work:
    """Objects being rendered, by identity (the first of an identity wins), with where each came from."""

    registry: Registry
    options: RenderOptions
    objects: dict[tuple[str, str, str, str], tuple[str, JSON, str, int]] = field(default_factory=dict)
    errors: list[ManifestError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, folder: str, obj: JSON, source: str = "<rendered>", doc: int = 0) -> None:
        self.objects.setdefault(identity(obj), (folder, obj, source, doc))

    def fail(self, source: str, doc: int, obj: JSON, issues: Sequence[FieldIssue]) -> None:
        self.errors.append(ManifestError(source, doc, kind_of(obj), name_of(obj), tuple(issues)))


def without_server_fields(obj: JSON) -> JSON:
    """The object as a user writes it: no status, no uid/resourceVersion/... (what the server sets)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    metadata = {k: v for k, v in meta(obj).items() if k not in SERVER_FIELDS}
    if metadata:
        out["metadata"] = metadata
    return out


def _inputs(loaded: Sequence[LoadedObject], work: _Work) -> list[tuple[JSON, str, int]]:
    """The loaded objects plus what Pipelines expand to, normalized; skipped kinds noted."""
    out: list[tuple[JSON, str, int]] = []
    expanded: list[tuple[JSON, str, int]] = []
    for lo in loaded:
        obj = without_server_fields(lo.to_dict())
        kind = lo.kind.kind
        if kind in SKIPPED_KINDS:
            work.notes.append(f"{lo.source} doc {lo.doc_index}: skipped {ref(obj)} ({SKIPPED_KINDS[kind]})")
        elif kind == "Pipeline":
            generated, notes = workloads.pipeline_objects(obj, work.options)
            for g in generated:
                expanded.append((workloads.normalized(g, work.registry, lo.source), lo.source, lo.doc_index))
            work.notes += [f"{lo.source} doc {lo.doc_index}: {ref(obj)}: {note}" for note in notes]
        else:
            out.append((obj, lo.source, lo.doc_index))
    return out + expanded


def _workload(obj: JSON, source: str, doc: int, work: _Work) -> None:
    kind = kind_of(obj)
    if kind == "Job":
        job, issues = workloads.job_for_cluster(obj, work.options)
        if issues:
            work.fail(source, doc, obj, issues)
        work.add(WORKLOADS, job, source, doc)
    elif kind == "Deployment":
        try:
            deployment, serves = vllm.convert_deployment(obj, work.options.vllm_image)
        except vllm.ModelServerError as exc:
            work.fail(source, doc, obj, [FieldIssue("", str(exc))])
            return
        deployment = workloads.normalized(deployment, work.registry, source)
        work.add(WORKLOADS, deployment, source, doc)
        if serves:
            work.add(CLUSTER, vllm.service_for(deployment))
            work.add(CLUSTER, components.model_server_monitor(deployment))
    elif kind == "InferencePool" and gateway.owns_picker_ref(obj):
        pool = workloads.normalized(gateway.with_picker_ref(obj), work.registry, source)
        work.add(WORKLOADS, pool, source, doc)
        for picker_obj in gateway.picker_objects(pool, work.options):
            work.add(CLUSTER, picker_obj)
            if kind_of(picker_obj) == "Service":
                work.add(CLUSTER, components.picker_monitor(picker_obj, secure=work.options.picker == "llm-d"))
    else:
        work.add(WORKLOADS, obj, source, doc)


def _routes(work: _Work) -> None:
    """An HTTPRoute (and, where a namespace has none, a Gateway) for every pool no route sends to, and
    the Gateways the project's routes name but do not define."""
    objs = [entry[1] for entry in work.objects.values()]
    routes = [o for o in objs if kind_of(o) == "HTTPRoute"]
    routed = gateway.routed_pools(routes)
    gateways: dict[str, str] = {}
    for o in sorted((o for o in objs if kind_of(o) == "Gateway"), key=sort_key):
        gateways.setdefault(namespace_of(o) or "default", name_of(o))
    defined = {(namespace_of(o) or "default", name_of(o)) for o in objs if kind_of(o) == "Gateway"}
    for ns, name in sorted(gateway.parent_gateways(routes) - defined):
        work.add(WORKLOADS, workloads.normalized(gateway.gateway(ns, work.options, name), work.registry, "<rendered>"))
        gateways.setdefault(ns, name)
    for pool in sorted((o for o in objs if kind_of(o) == "InferencePool"), key=sort_key):
        ns = namespace_of(pool) or "default"
        if (ns, name_of(pool)) in routed:
            continue
        if ns not in gateways:
            gateways[ns] = gateway.GATEWAY_NAME
            work.add(WORKLOADS, workloads.normalized(gateway.gateway(ns, work.options), work.registry, "<rendered>"))
        route = gateway.route_for(pool, gateways[ns])
        work.add(WORKLOADS, workloads.normalized(route, work.registry, "<rendered>"))


def _components(work: _Work) -> None:
    work.add(CLUSTER, components.system_namespace(work.options))
    for obj in components.health_checker(work.options):
        work.add(CLUSTER, obj)
    if work.options.picker == "llm-d":
        pickers = [
            (namespace_of(o), name_of(o))
            for folder, o, _, _ in work.objects.values()
            if folder == CLUSTER and kind_of(o) == "ServiceAccount" and name_of(o).endswith("-epp")
        ]
        for obj in gateway.metrics_auth_objects(pickers):
            work.add(CLUSTER, obj)


def _queue_notes(work: _Work) -> None:
    """Jobs whose LocalQueue is not in the project (Kueue leaves them pending until one exists)."""
    objs = [entry[1] for entry in work.objects.values()]
    queues = {(namespace_of(o), name_of(o)) for o in objs if kind_of(o) == "LocalQueue"}
    for job in (o for o in objs if kind_of(o) == "Job"):
        queue = (meta(job).get("labels") or {}).get(QUEUE_NAME_LABEL)
        if queue and (namespace_of(job), queue) not in queues:
            work.notes.append(f"{ref(job)}: LocalQueue {namespace_of(job)}/{queue} is not in the project")


def _multikueue(clusters: multikueue.ClusterList, work: _Work) -> None:
    """The manager's side: its ClusterQueues wait for the MultiKueue check; the check, its config and
    one MultiKueueCluster per worker."""
    for key, (folder, obj, source, doc) in list(work.objects.items()):
        work.objects[key] = (folder, multikueue.with_admission_check(obj, clusters), source, doc)
    for obj in multikueue.multikueue_objects(clusters, work.options.kueue_version):
        work.add(CLUSTER, obj)


def render(
    loaded: Sequence[LoadedObject],
    options: RenderOptions,
    registry: Registry,
    clusters: multikueue.ClusterList | None = None,
) -> Rendering:
    """The cluster's manifests for the loaded objects (with `clusters`: a MultiKueue manager's);
    ManifestErrors when some cannot run there."""
    work = _Work(registry, options)
    for obj, source, doc in _inputs(loaded, work):
        _workload(obj, source, doc, work)
    if work.errors:
        raise ManifestErrors(work.errors)
    if clusters is not None:
        _multikueue(clusters, work)
    _routes(work)
    _components(work)
    _queue_notes(work)
    manifests = [
        Manifest(folder, workloads.in_kueue_version(obj, registry, options.kueue_version))
        for folder, obj, _, _ in work.objects.values()
    ]
    manifests.sort(key=lambda m: (m.folder, sort_key(m.obj)))
    return Rendering(tuple(manifests), components.containerfile(options), tuple(work.notes))


def write(rendering: Rendering, out: Path) -> list[Path]:
    """Write the files under `out`; earlier YAML files in its two folders that are no longer rendered
    are removed (they would be applied otherwise)."""
    files = rendering.files()
    written: list[Path] = []
    for folder in (WORKLOADS, CLUSTER):
        stale = out / folder
        if stale.is_dir():
            for old in stale.glob("*.yaml"):
                if f"{folder}/{old.name}" not in files:
                    old.unlink()
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
