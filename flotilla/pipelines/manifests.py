"""The objects a speech-to-summary pipeline creates, as plain Kubernetes JSON (pure functions).

- the queueing: a ResourceFlavor for the GPU nodes, a ClusterQueue whose quota is what the cluster's
  nodes can hold, and the pipeline's LocalQueue (each created only when absent);
- one batch/v1 Job per recording: `flotilla asr transcribe` on a MIG slice (or a whole GPU, or no
  GPU), the audio and transcript folders as hostPath volumes mounted at the same absolute paths (so
  the same Job runs unchanged on Kubernetes with those paths on the node);
- the LLM replicas: a Deployment of `flotilla serve llm` and the InferencePool over its pods that
  the inference gateway routes to.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flotilla.api.batch import QUEUE_NAME_LABEL
from flotilla.api.pipelines import PipelineSpec, SliceChoice, queue_name

JSON = dict[str, Any]
FLAVOR = "flotilla-gpu"
CPU_FLAVOR = "flotilla-cpu"
CLUSTER_QUEUE = "speech-to-summary"
PIPELINE_LABEL = "flotilla.dev/pipeline"
RUN_LABEL = "flotilla.dev/pipeline-run"
RECORDING_ANNOTATION = "flotilla.dev/recording"
MODELS_ANNOTATION = "flotilla.dev/models"
PROFILE_ANNOTATION = "flotilla.dev/scheduling-profile"
LLM_PORT = 8000
MAX_NAME = 63


def slug(text: str, limit: int = 40) -> str:
    """A DNS-1123 label fragment: lower case, [a-z0-9-], no leading or trailing dash."""
    value = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return value or "x"


def slice_resource(choice: SliceChoice) -> str | None:
    """The extended resource a transcription Job asks for: `nvidia.com/mig-1g.5gb`, `nvidia.com/gpu`, none."""
    if choice == "none":
        return None
    return "nvidia.com/gpu" if choice == "whole-gpu" else f"nvidia.com/{choice}"


def job_name(pipeline: str, recording: str) -> str:
    """`<pipeline>-asr-<recording>-<4 hex>`: unique per file name (the hash), at most 63 characters."""
    digest = hashlib.sha1(recording.encode()).hexdigest()[:4]
    head = f"{slug(pipeline, 20)}-asr-{slug(Path(recording).stem, 30)}"
    return f"{head[: MAX_NAME - 5].rstrip('-')}-{digest}"


def llm_name(model: str) -> str:
    """The Deployment and InferencePool of one model in a namespace, shared by the pipelines there."""
    return f"llm-{slug(model, 50)}"


def capacity(nodes: Sequence[Mapping[str, Any]], resource: str) -> int:
    """What the nodes can hold of `resource` (allocatable, summed); at least 1."""
    total = 0
    for node in nodes:
        value = ((node.get("status") or {}).get("allocatable") or {}).get(resource)
        try:
            total += int(str(value)) if value is not None else 0
        except ValueError:
            continue
    return max(total, 1)


def queue_objects(spec: PipelineSpec, namespace: str, nodes: Sequence[Mapping[str, Any]]) -> list[JSON]:
    """ResourceFlavor, ClusterQueue and LocalQueue for the transcription Jobs. The ClusterQueue's quota
    in the Jobs' slice resource is what the nodes can hold (DAS carves slices on demand), so Kueue
    admits as many Jobs at once as fit; cpu and memory are covered generously."""
    resource = slice_resource(spec.transcribe.slices)
    flavor: JSON = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ResourceFlavor",
        "metadata": {"name": FLAVOR if resource else CPU_FLAVOR},
        "spec": {"nodeLabels": {"nvidia.com/gpu.present": "true"}} if resource else {},
    }
    quotas = [{"name": "cpu", "nominalQuota": "64"}, {"name": "memory", "nominalQuota": "256Gi"}]
    if resource:
        quotas.append({"name": resource, "nominalQuota": str(capacity(nodes, resource))})
    cluster_queue: JSON = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": f"{CLUSTER_QUEUE}-{slug(spec.transcribe.slices)}"},
        "spec": {
            "namespaceSelector": {},
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [
                {
                    "coveredResources": [q["name"] for q in quotas],
                    "flavors": [{"name": flavor["metadata"]["name"], "resources": quotas}],
                }
            ],
        },
    }
    local_queue: JSON = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": queue_name(spec.transcribe), "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue["metadata"]["name"]},
    }
    return [flavor, cluster_queue, local_queue]


def transcription_job(
    pipeline: str, namespace: str, run_id: str, spec: PipelineSpec, recording: Path, transcripts: Path
) -> JSON:
    """One Job: `flotilla asr transcribe <recording> --output-dir <transcripts> --output-format all`."""
    stage = spec.transcribe
    limits: JSON = {"memory": stage.memory}
    resource = slice_resource(stage.slices)
    if resource:
        limits[resource] = 1
    audio_dir, out_dir = str(recording.parent), str(transcripts)
    container: JSON = {
        "name": "transcriber",
        "image": "flotilla/asr:latest",  # recorded, not pulled, by the local runtime
        "command": ["flotilla", "asr", "transcribe"],
        "args": [str(recording), "--model", stage.model, "--output-dir", out_dir, "--output-format", "all"],
        "resources": {"requests": {"cpu": stage.cpu, "memory": stage.memory}, "limits": limits},
        "volumeMounts": [
            {"name": "audio", "mountPath": audio_dir, "readOnly": True},
            {"name": "transcripts", "mountPath": out_dir},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(pipeline, recording.name),
            "namespace": namespace,
            "labels": {
                QUEUE_NAME_LABEL: queue_name(stage),
                PIPELINE_LABEL: slug(pipeline, 63),
                RUN_LABEL: run_id,
            },
            "annotations": {RECORDING_ANNOTATION: recording.name},
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": stage.backoffLimit,
            "template": {
                "metadata": {"labels": {PIPELINE_LABEL: slug(pipeline, 63)}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                    "volumes": [
                        {"name": "audio", "hostPath": {"path": audio_dir, "type": "Directory"}},
                        {"name": "transcripts", "hostPath": {"path": out_dir, "type": "DirectoryOrCreate"}},
                    ],
                },
            },
        },
    }


def pool_annotations(spec: PipelineSpec) -> dict[str, str]:
    """The InferencePool's annotations: the model it serves, and the routing profile when one is set."""
    annotations = {MODELS_ANNOTATION: spec.summarize.model}
    if spec.summarize.profile:
        annotations[PROFILE_ANNOTATION] = spec.summarize.profile
    return annotations


def llm_objects(spec: PipelineSpec, namespace: str) -> list[JSON]:
    """The model's Deployment (`spec.summarize.replicas` pods of `flotilla serve llm`, ready when its
    /health answers) and its InferencePool."""
    stage = spec.summarize
    name = llm_name(stage.model)
    labels = {"app": name}
    container: JSON = {
        "name": "llm",
        "image": "flotilla/llm:latest",
        "command": ["flotilla", "serve", "llm"],
        "args": [
            *("--model", stage.model, "--host", "$(POD_IP)", "--port", str(LLM_PORT)),
            *("--parallel", "2", "--threads", "1", "--log-level", "warning"),
        ],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "http", "containerPort": LLM_PORT}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
    }
    deployment: JSON = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": stage.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
        },
    }
    pool: JSON = {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace, "annotations": pool_annotations(spec)},
        "spec": {"selector": {"matchLabels": labels}, "targetPorts": [{"number": LLM_PORT}]},
    }
    return [deployment, pool]
