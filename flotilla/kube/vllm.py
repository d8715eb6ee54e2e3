"""Model servers on a cluster: Flotilla's `flotilla serve llm|vllm|emulated` Deployments become vLLM ones.

On one machine a model-server Deployment runs `flotilla serve llm` (llama.cpp on CPU), `flotilla serve
emulated` (the engine emulator) or `flotilla serve vllm`. On a GPU cluster each becomes a real vLLM
server with the same name, replicas, labels and served model name, so the InferencePool, the
HTTPRoutes and the clients keep working unchanged:

- image `vllm/vllm-openai`, `vllm serve <Hugging Face id>` with `--served-model-name <the name clients
  use>` and `--port`; the Flotilla options that have a vLLM twin are carried over (`--parallel` is
  `--max-num-seqs`, `--ctx-size` is `--max-model-len`, the emulator's engine flags are vLLM's own);
- GPU: the container's `nvidia.com/*` limits when it has them, else the emulator's `--gpu` (a MIG slice
  `A100-80GB:3g.40gb` is `nvidia.com/mig-3g.40gb`, as DAS expects), else one whole `nvidia.com/gpu`;
- probes on `/health` (startup: up to 30 minutes for the download and load; then readiness and
  liveness), the OpenAI API and `/metrics` on the port named `http`, a Hugging Face cache and
  `/dev/shm` as volumes, `HF_TOKEN` from the optional Secret `hf-token`.

A container that already runs `vllm serve` is left as it is, so rendering what was rendered changes
nothing. Each model server also gets a Service (ClusterIP, port `http`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flotilla.kube.objects import JSON, deep_copy, meta

FLOTILLA_SERVERS = ("llm", "vllm", "emulated")
DEFAULT_PORT = 8000
CONVERTED_ANNOTATION = "flotilla.dev/converted-from"
HF_SECRET = "hf-token"
CPU_REQUEST = "2"
MEMORY_REQUEST = "16Gi"
# Flotilla option -> vLLM option, per server (flags not listed have no vLLM meaning and are dropped).
_CARRIED: dict[str, dict[str, str]] = {
    "llm": {"--parallel": "--max-num-seqs", "--ctx-size": "--max-model-len"},
    "vllm": {},
    "emulated": {
        "--max-num-seqs": "--max-num-seqs",
        "--max-num-batched-tokens": "--max-num-batched-tokens",
        "--gpu-memory-utilization": "--gpu-memory-utilization",
        "--max-model-len": "--max-model-len",
        "--max-loras": "--max-loras",
        "--max-cpu-loras": "--max-cpu-loras",
        "--num-gpu-blocks-override": "--num-gpu-blocks-override",
    },
}
_SWITCHES = ("--enable-prefix-caching", "--no-enable-prefix-caching")  # the same flags in vLLM
_VALUELESS = {"--kv-events", "--no-kv-events", *_SWITCHES}


class ModelServerError(ValueError):
    """A `flotilla serve` container that cannot be turned into vLLM (says which and why)."""


@dataclass(frozen=True)
class FlotillaServer:
    """What a `flotilla serve ...` container runs: the server, its options and vLLM's own extra args."""

    server: str
    options: Mapping[str, str | list[str]]
    extra: tuple[str, ...] = ()

    def option(self, name: str) -> str | None:
        value = self.options.get(name)
        return value[-1] if isinstance(value, list) else value


def argv(container: Mapping[str, Any]) -> list[str]:
    return [str(x) for x in (container.get("command") or [])] + [str(x) for x in (container.get("args") or [])]


def parse_flotilla_server(container: Mapping[str, Any]) -> FlotillaServer | None:
    """The `flotilla serve llm|vllm|emulated` a container runs, or None for any other command."""
    words = argv(container)
    if len(words) < 3 or words[0].rsplit("/", 1)[-1] != "flotilla" or words[1] != "serve":
        return None
    if words[2] not in FLOTILLA_SERVERS:
        return None
    options: dict[str, str | list[str]] = {}
    rest = words[3:]
    extra: tuple[str, ...] = ()
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "--":
            extra = tuple(rest[i + 1 :])
            break
        if not word.startswith("--"):
            raise ModelServerError(f"unexpected argument {word!r} (Flotilla's servers take --options only)")
        name, eq, value = word.partition("=")
        if not eq and name not in _VALUELESS:
            if i + 1 >= len(rest):
                raise ModelServerError(f"{name} needs a value")
            value = rest[i + 1]
            i += 1
        previous = options.get(name)
        if previous is None:
            options[name] = value
        else:
            options[name] = [*(previous if isinstance(previous, list) else [previous]), value]
        i += 1
    return FlotillaServer(words[2], options, extra)


def is_vllm(container: Mapping[str, Any]) -> bool:
    """A container that runs vLLM's OpenAI server already."""
    words = argv(container)
    image = str(container.get("image") or "")
    return (words[:2] == ["vllm", "serve"]) or image.startswith("vllm/vllm-openai")


def hf_model_id(model: str) -> str:
    """The Hugging Face id vLLM loads for a Flotilla model name (`smollm2-135m` ->
    `HuggingFaceTB/SmolLM2-135M-Instruct`); ids and unknown names are kept as given."""
    if "/" in model:
        return model
    from flotilla.serving.emulator.perfmodel import PerfDataError, load_perf_data

    try:
        return load_perf_data().model(model).hf_id
    except PerfDataError:
        return model


def _gpu_resources(container: Mapping[str, Any], server: FlotillaServer) -> dict[str, str]:
    limits = (container.get("resources") or {}).get("limits") or {}
    gpus = {k: str(v) for k, v in limits.items() if str(k).startswith("nvidia.com/")}
    if gpus:
        return gpus
    gpu = server.option("--gpu") if server.server == "emulated" else None
    if gpu and ":" in gpu.replace("/", ":"):
        profile = gpu.replace("/", ":").partition(":")[2].strip()
        return {f"nvidia.com/mig-{profile}": "1"}
    return {"nvidia.com/gpu": "1"}


def vllm_args(server: FlotillaServer) -> list[str]:
    """`vllm serve`'s arguments for a Flotilla server (model first, then options in a fixed order)."""
    model = server.option("--model") or ("smollm2-135m" if server.server == "llm" else None)
    if not model:
        raise ModelServerError(f"flotilla serve {server.server}: --model is required")
    served = server.option("--served-model-name") or model
    port = server.option("--port") or str(DEFAULT_PORT)
    args = [hf_model_id(model), "--served-model-name", served, "--port", port]
    for flotilla_name, vllm_name in _CARRIED[server.server].items():
        value = server.option(flotilla_name)
        if value is not None:
            args += [vllm_name, value]
    for switch in _SWITCHES:
        if server.server == "emulated" and switch in server.options:
            args.append(switch)
    return [*args, *server.extra]


def vllm_container(container: Mapping[str, Any], server: FlotillaServer, image: str) -> JSON:
    """The vLLM container that replaces a `flotilla serve` one (same name)."""
    port = int(server.option("--port") or DEFAULT_PORT)
    gpus = _gpu_resources(container, server)
    health = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "name": str(container.get("name") or "vllm"),
        "image": image,
        "command": ["vllm", "serve"],
        "args": vllm_args(server),
        "env": [
            {"name": "HF_HOME", "value": "/models/huggingface"},
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": HF_SECRET, "key": "token", "optional": True}},
            },
        ],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "startupProbe": {**health, "periodSeconds": 10, "failureThreshold": 180},
        "readinessProbe": {**health, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**health, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "resources": {
            "requests": {"cpu": CPU_REQUEST, "memory": MEMORY_REQUEST, **gpus},
            "limits": {"memory": MEMORY_REQUEST, **gpus},
        },
        "volumeMounts": [
            {"name": "model-cache", "mountPath": "/models"},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }


def _volumes(existing: Sequence[Mapping[str, Any]]) -> list[JSON]:
    names = {v.get("name") for v in existing}
    added = [
        {"name": "model-cache", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
    ]
    return [dict(v) for v in existing] + [v for v in added if v["name"] not in names]


def convert_deployment(deployment: Mapping[str, Any], image: str) -> tuple[JSON, bool]:
    """The Deployment with every `flotilla serve` container replaced by vLLM, and whether it serves a
    model (a converted or an existing vLLM container). Metadata, replicas and labels are kept."""
    out = deep_copy(deployment)
    pod = out.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})
    containers = pod.get("containers") or []
    converted: list[str] = []
    serves = False
    for i, container in enumerate(containers):
        try:
            server = parse_flotilla_server(container)
        except ModelServerError as exc:
            raise ModelServerError(f"spec.template.spec.containers[{i}]: {exc}") from None
        if server is None:
            serves = serves or is_vllm(container)
            continue
        containers[i] = vllm_container(container, server, image)
        converted.append(f"flotilla serve {server.server}")
        serves = True
    if converted:
        pod["volumes"] = _volumes(pod.get("volumes") or [])
        annotations = meta(out).setdefault("annotations", {})
        annotations[CONVERTED_ANNOTATION] = ", ".join(sorted(set(converted)))
    return out, serves


def model_server_port(deployment: Mapping[str, Any]) -> int:
    """The container port named `http` of the model server (vLLM's API and /metrics)."""
    for container in ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "http":
                return int(port["containerPort"])
    return DEFAULT_PORT


def service_for(deployment: Mapping[str, Any]) -> JSON:
    """A ClusterIP Service in front of a model server's pods (port `http`)."""
    m = meta(deployment)
    spec = deployment.get("spec") or {}
    # A Service selects by labels only: the Deployment's matchLabels, else its pods' labels.
    selector = (
        (spec.get("selector") or {}).get("matchLabels")
        or ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        or {}
    )
    port = model_server_port(deployment)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": m["name"],
            "namespace": m.get("namespace") or "default",
            "labels": {**(m.get("labels") or {}), "app.kubernetes.io/component": "model-server"},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
