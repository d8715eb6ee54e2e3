"""The study's workloads on a cluster: Kueue objects in the cluster's version, Jobs as Kueue and DAS
expect them, and Pipelines expanded into the objects a cluster can hold.

- Kueue kinds are written in `--kueue-version` through the registry's conversions (v1beta2 is the
  internal version; `spec.cohortName` becomes v1beta1 `spec.cohort`, and so on).
- A Job keeps its `kueue.x-k8s.io/queue-name` label and its `nvidia.com/mig-<profile>` limits (what
  the Dynamic Accelerator Slicer carves a slice for); a MIG profile no GPU model has, or a slice asked
  for in requests but not limits, is an error. A Kueue-managed Job is written without `spec.suspend`:
  Kueue owns that field, and a server-side apply that set it would take it back from Kueue.
  Containers running `flotilla ...` get Flotilla's image (`--image`): the local runtime records
  images but never pulls them, a cluster pulls them.
- A Pipeline (flotilla.dev, which no cluster serves) becomes its queueing objects, its LLM
  Deployment and its InferencePool (flotilla.pipelines.manifests); the per-recording Jobs are made
  at run time from the recordings, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from flotilla.api.batch import QUEUE_NAME_LABEL
from flotilla.api.errors import FieldIssue
from flotilla.api.loader import decode, encode
from flotilla.api.pipelines import PipelineSpec
from flotilla.api.registry import Registry, UnknownKind
from flotilla.kube.objects import JSON, deep_copy, labels_of, meta
from flotilla.kube.options import RenderOptions
from flotilla.pipelines import manifests
from flotilla.slicer.inventory import parse_gpu_spec
from flotilla.slicer.profiles import RESOURCE_PREFIX, load_catalog

KUEUE_GROUP = "kueue.x-k8s.io"
MIG_PREFIX = RESOURCE_PREFIX  # nvidia.com/mig-


@cache
def mig_resources() -> frozenset[str]:
    """Every `nvidia.com/mig-<profile>` some GPU model in Flotilla's profile tables offers."""
    catalog = load_catalog()
    return frozenset(p.resource_name for m in catalog.models.values() for p in m.profiles)


def in_kueue_version(obj: Mapping[str, Any], registry: Registry, version: str) -> JSON:
    """A Kueue object (internal v1beta2 JSON) in `version`; other objects unchanged."""
    if str(obj.get("apiVersion", "")).partition("/")[0] != KUEUE_GROUP:
        return dict(obj)
    try:
        kind, _ = registry.lookup(str(obj["apiVersion"]), str(obj["kind"]))
    except UnknownKind:  # a kind Flotilla does not serve (AdmissionCheck, MultiKueue): written in `version`
        return dict(obj)
    return encode(dict(obj), kind, version)


def is_flotilla_command(container: Mapping[str, Any]) -> bool:
    command = container.get("command") or container.get("args") or []
    return bool(command) and str(command[0]).rsplit("/", 1)[-1] == "flotilla"


def _containers(pod: Mapping[str, Any]) -> list[tuple[str, JSON]]:
    return [(f"initContainers[{i}]", c) for i, c in enumerate(pod.get("initContainers") or [])] + [
        (f"containers[{i}]", c) for i, c in enumerate(pod.get("containers") or [])
    ]


def mig_issues(pod: Mapping[str, Any], prefix: str) -> list[FieldIssue]:
    """MIG slices DAS can carve: a profile some GPU model has (that slices are in limits, and requests
    equal them, the loader checks already)."""
    issues: list[FieldIssue] = []
    known = mig_resources()
    for where, container in _containers(pod):
        resources = container.get("resources") or {}
        for section in ("limits", "requests"):
            for name in sorted(resources.get(section) or {}):
                if str(name).startswith(MIG_PREFIX) and name not in known:
                    issues.append(
                        FieldIssue(
                            f"{prefix}.{where}.resources.{section}[{name}]",
                            f"no GPU has the MIG profile {name!r}; use one of {', '.join(sorted(known))}",
                        )
                    )
    return issues


def job_for_cluster(job: Mapping[str, Any], options: RenderOptions) -> tuple[JSON, list[FieldIssue]]:
    """The Job as a cluster runs it, and the problems that stop it from running there."""
    out = deep_copy(job)
    spec = out.setdefault("spec", {})
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    issues = mig_issues(pod, "spec.template.spec")
    for _, container in _containers(pod):
        if is_flotilla_command(container):
            container["image"] = options.image
    if QUEUE_NAME_LABEL in labels_of(out):
        spec.pop("suspend", None)  # Kueue's field (see the module docstring)
    return out, issues


def cluster_nodes(gpus: str) -> list[JSON]:
    """Node-shaped capacity of `NODESxGPUSxMODEL[,...]`: what DAS can carve from each GPU model."""
    catalog = load_catalog()
    config = parse_gpu_spec(gpus, catalog)
    nodes: list[JSON] = []
    for group in config.groups:
        allocatable: dict[str, str] = {"nvidia.com/gpu": str(group.gpusPerNode)}
        for profile in catalog.model(group.model).profiles:
            allocatable[profile.resource_name] = str(profile.max_instances * group.gpusPerNode)
        nodes += [{"status": {"allocatable": allocatable}} for _ in range(group.nodes)]
    return nodes


def pipeline_objects(pipeline: Mapping[str, Any], options: RenderOptions) -> tuple[list[JSON], list[str]]:
    """A Pipeline's cluster objects (internal versions): queues sized for `options.gpus`, LLM Deployment
    and InferencePool; and what the user should know (a slice no GPU of the cluster offers)."""
    spec = PipelineSpec.model_validate(pipeline.get("spec") or {})
    namespace = str(meta(pipeline).get("namespace") or "default")
    nodes = cluster_nodes(options.gpus)
    notes = []
    resource = manifests.slice_resource(spec.transcribe.slices)
    if resource and not any((n["status"]["allocatable"]).get(resource) for n in nodes):
        notes.append(
            f"no GPU of --gpus {options.gpus} offers {resource}; the queue's quota of it is 1 "
            "(give the cluster's GPUs with --gpus)"
        )
    objects = [*manifests.queue_objects(spec, namespace, nodes), *manifests.llm_objects(spec, namespace)]
    jobs, why = recording_jobs(pipeline, spec, namespace)
    return objects + jobs, [*notes, why]


def recording_jobs(pipeline: Mapping[str, Any], spec: PipelineSpec, namespace: str) -> tuple[list[JSON], str]:
    """One transcription Job per recording in `spec.audio`, as the pipeline controller makes them, when the
    folder can be read where `render` runs (the cluster must mount the same paths on its nodes); else none."""
    from pathlib import Path

    from flotilla.pipelines.recordings import TRANSCRIPTS, discover

    name = str(meta(pipeline).get("name"))
    audio = Path(spec.audio)
    try:
        found = discover(audio)
    except (OSError, ValueError) as exc:
        return [], f"per-recording Jobs are made at run time from the recordings ({audio}: {exc})"
    transcripts = Path(spec.output) / TRANSCRIPTS
    jobs = [manifests.transcription_job(name, namespace, "rendered", spec, r.path, transcripts) for r in found]
    return jobs, (
        f"{len(jobs)} per-recording Jobs from the recordings in {audio} (read now; the nodes must mount "
        f"{audio} and {spec.output} at the same paths); the summaries need the pipeline controller, which "
        "runs in `flotilla up`"
    )


def normalized(obj: Mapping[str, Any], registry: Registry, source: str) -> JSON:
    """An object through Flotilla's own validation and defaults (what `flotilla apply` would store)."""
    return decode(dict(obj), registry, source).obj.to_dict()
