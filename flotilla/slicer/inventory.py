"""GPU inventory: the devices a node has, the emulated-GPU config, and the Node object they become.

A backend (`flotilla.slicer.backends`) discovers `NodeInventory`s: NVML reads the real GPUs of this host;
the emulator builds them from an `EmulatedGPUConfig` (groups of identical nodes), written in full as YAML
(`load_gpu_config`) or in the short form `NODESxGPUSxMODEL[,...]` (`parse_gpu_spec("1x2xA100-40GB")`).

`node_object` turns an inventory into the core/v1 Node that NVIDIA's GPU operator would leave behind
(GPU feature discovery labels, `nvidia.com/gpu` and `nvidia.com/mig-<profile>` capacity), plus Flotilla's
`status.gpus`. `merge_node` re-registers a node at start-up without losing what others wrote on it
(health verdicts, faults, taints, user labels).

Emulated node names are `<namePrefix>-<i>`; i counts on across the groups that share a prefix, so
`2x8xA100-80GB,1x2xH100-80GB` gives gpu-node-0, gpu-node-1 (A100) and gpu-node-2 (H100). GPU UUIDs are
uuid5 of node name and index, so a restart keeps them (the store's records refer to GPUs by UUID).
"""

from __future__ import annotations

import copy
import functools
import platform
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from flotilla.api.configfile import read_yaml
from flotilla.api.errors import issues_from_validation
from flotilla.api.quantity import Quantity, QuantityError
from flotilla.slicer.profiles import ProfileCatalog, load_catalog

JSON = dict[str, Any]
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "flotilla.dev")
SPEC_EXAMPLE = "1x2xA100-40GB (1 node with 2 GPUs) or 2x8xA100-80GB,1x2xH100-80GB"
MAX_PODS = "110"  # the kubelet's default maxPods
# The labels node_object writes; on re-registration these come from the fresh inventory only.
OWNED_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "nvidia.com/gpu.present",
        "nvidia.com/gpu.count",
        "nvidia.com/gpu.product",
        "nvidia.com/gpu.memory",
        "nvidia.com/mig.capable",
        "flotilla.dev/gpu-backend",
    }
)
# Per-GPU fields others own (health checks, fault injection): kept across re-registration.
GPU_KEPT_FIELDS = ("health", "healthMessage", "faults")
_SPEC_ITEM = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\S+)\s*$")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le"}


class GPUConfigError(ValueError):
    """An emulated-GPU config (file or short form) that cannot be used; names where and what is wrong."""


@dataclass(frozen=True)
class GPUDevice:
    """One physical (or emulated) GPU. `model` is the MIG profile table's key; None when no table fits."""

    index: int
    uuid: str
    model: str | None
    product: str  # GPU feature discovery spelling: NVIDIA-A100-SXM4-40GB
    memory_mib: int
    mig_capable: bool
    mig_enabled: bool
    emulated: bool


@dataclass(frozen=True)
class NodeInventory:
    """One node's GPUs and resources; `source` says where they came from, in a sentence."""

    name: str
    gpus: tuple[GPUDevice, ...]
    emulated: bool
    cpu: str  # quantity
    memory: str  # quantity
    source: str


@functools.cache
def _shipped_catalog() -> ProfileCatalog:
    return load_catalog()


def _quantity(value: str | None) -> str | None:
    if value is not None:
        try:
            Quantity.parse(value)
        except QuantityError as exc:
            raise ValueError(str(exc)) from None
    return value


class EmulatedNodeGroup(BaseModel):
    """`nodes` identical nodes, each with `gpusPerNode` GPUs of one catalog `model`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nodes: int = Field(ge=1)
    gpusPerNode: int = Field(ge=1, le=16)
    model: str = Field(description="a MIG profile table key, e.g. A100-40GB")
    namePrefix: str = Field(default="gpu-node", pattern=r"^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$")
    cpu: str | None = Field(default=None, description="per node; default: this host's CPU count")
    memory: str | None = Field(default=None, description="per node; default: this host's memory")
    migEnabled: bool = True

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str, info: ValidationInfo) -> str:
        """A catalog key, matched without regard to case (`a100-40gb` -> `A100-40GB`)."""
        context = info.context if isinstance(info.context, dict) else {}
        catalog: ProfileCatalog = context.get("catalog") or _shipped_catalog()
        by_folded = {key.casefold(): key for key in catalog.models}
        if model.casefold() not in by_folded:
            raise ValueError(f"unknown GPU model {model!r}; known models: {', '.join(catalog.models)}")
        return by_folded[model.casefold()]

    @field_validator("cpu", "memory")
    @classmethod
    def _quantities(cls, value: str | None) -> str | None:
        return _quantity(value)


class EmulatedGPUConfig(BaseModel):
    """The emulated GPU nodes: one or more groups (`flotilla up --gpus 1x2xA100-40GB` or a YAML file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: list[EmulatedNodeGroup] = Field(min_length=1)

    def node_names(self) -> Iterator[tuple[EmulatedNodeGroup, str]]:
        """Every node's group and name, `<namePrefix>-<i>`, i counting on across groups with that prefix."""
        counters: dict[str, int] = {}
        for group in self.groups:
            first = counters.get(group.namePrefix, 0)
            counters[group.namePrefix] = first + group.nodes
            for i in range(first, first + group.nodes):
                yield group, f"{group.namePrefix}-{i}"

    def describe(self) -> str:
        """`1 node x 2 A100-40GB`, `2 nodes x 8 A100-80GB + 1 node x 2 H100-80GB`."""
        return " + ".join(
            f"{g.nodes} node{'s' if g.nodes != 1 else ''} x {g.gpusPerNode} {g.model}" for g in self.groups
        )


DEFAULT_GPU_CONFIG = EmulatedGPUConfig(groups=[EmulatedNodeGroup(nodes=1, gpusPerNode=2, model="A100-40GB")])


def _validate(raw: Any, catalog: ProfileCatalog | None) -> EmulatedGPUConfig:
    return EmulatedGPUConfig.model_validate(raw, context={"catalog": catalog or _shipped_catalog()})


def parse_gpu_spec(spec: str, catalog: ProfileCatalog | None = None) -> EmulatedGPUConfig:
    """`NODESxGPUSxMODEL[,NODESxGPUSxMODEL...]` -> a config; GPUConfigError says what is wrong, with an example."""
    items = spec.split(",")
    if not spec.strip():
        raise GPUConfigError(f"empty GPU spec; expected NODESxGPUSxMODEL, e.g. {SPEC_EXAMPLE}")
    groups: list[JSON] = []
    for n, item in enumerate(items, start=1):
        match = _SPEC_ITEM.match(item)
        if match is None:
            raise GPUConfigError(
                f"GPU spec {spec!r}, item {n} ({item.strip()!r}): not NODESxGPUSxMODEL; e.g. {SPEC_EXAMPLE}"
            )
        groups.append({"nodes": int(match[1]), "gpusPerNode": int(match[2]), "model": match[3]})
    try:
        return _validate({"groups": groups}, catalog)
    except ValidationError as exc:
        words = {"nodes": "NODES", "gpusPerNode": "GPUS", "model": "MODEL"}
        problems = []
        for issue in issues_from_validation(EmulatedGPUConfig, exc):
            match = re.match(r"groups\[(\d+)\]\.(\w+)", issue.path)
            if match is None:
                problems.append(f"GPU spec {spec!r}: {issue}")
                continue
            i = int(match[1])
            problems.append(
                f"GPU spec {spec!r}, item {i + 1} ({items[i].strip()!r}): {words.get(match[2], match[2])}: "
                f"{issue.message}; e.g. {SPEC_EXAMPLE}"
            )
        raise GPUConfigError("\n".join(problems)) from None


def load_gpu_config(path: Path | str, catalog: ProfileCatalog | None = None) -> EmulatedGPUConfig:
    """Read and validate a YAML EmulatedGPUConfig; GPUConfigError lists every problem as `file: path: message`."""
    raw = read_yaml(path, "GPU config", GPUConfigError)
    if not isinstance(raw, dict):
        raise GPUConfigError(
            f"{path}: expected a mapping with groups (e.g. groups: [{{nodes: 1, gpusPerNode: 2, model: A100-40GB}}]),"
            f" got {type(raw).__name__}"
        )
    try:
        return _validate(raw, catalog)
    except ValidationError as exc:
        issues = issues_from_validation(EmulatedGPUConfig, exc)
        raise GPUConfigError("\n".join(f"{path}: {issue}" for issue in issues)) from None


def gpu_uuid(node: str, index: int) -> str:
    """An emulated GPU's UUID, NVML's format (`GPU-` + 8-4-4-4-12 hex), the same on every run."""
    return f"GPU-{uuid.uuid5(UUID_NAMESPACE, f'{node}/gpu/{index}')}"


def gfd_product(nvml_name: str) -> str:
    """The `nvidia.com/gpu.product` spelling of an NVML name: `NVIDIA A100-SXM4-40GB` -> `NVIDIA-A100-SXM4-40GB`."""
    return "-".join(nvml_name.split())


def emulated_inventory(
    config: EmulatedGPUConfig, catalog: ProfileCatalog, reason: str, host_cpu: str, host_memory: str
) -> list[NodeInventory]:
    """The nodes of an emulated config; a group without cpu/memory gets the host's."""
    source = f"emulated: {config.describe()}" + (f" ({reason})" if reason else "")
    templates: dict[str, tuple[str, int]] = {}
    for key, model in catalog.models.items():
        templates[key] = (gfd_product(model.product_names[0]), model.memory_mib)
    nodes = []
    for group, name in config.node_names():
        product, memory = templates[group.model]
        gpus = tuple(
            GPUDevice(i, gpu_uuid(name, i), group.model, product, memory, True, group.migEnabled, True)
            for i in range(group.gpusPerNode)
        )
        nodes.append(NodeInventory(name, gpus, True, group.cpu or host_cpu, group.memory or host_memory, source))
    return nodes


def mig_capacity(gpus: tuple[GPUDevice, ...], catalog: ProfileCatalog) -> dict[str, int]:
    """`nvidia.com/mig-<profile>` -> the most instances the node's GPUs could hold at once.

    Sum over GPUs in MIG mode with a profile table of each profile's max instances (dynamic slicing
    can make any of them); a GPU with MIG disabled or an unknown model adds nothing.
    """
    out: dict[str, int] = {}
    for gpu in gpus:
        if gpu.model is None or not (gpu.mig_capable and gpu.mig_enabled) or gpu.model not in catalog.models:
            continue
        for profile in catalog.models[gpu.model].profiles:
            out[profile.resource_name] = out.get(profile.resource_name, 0) + profile.max_instances
    return out


def _gpu_info(gpu: GPUDevice) -> JSON:
    info: JSON = {"index": gpu.index, "uuid": gpu.uuid, "product": gpu.product}
    if gpu.model is not None:
        info["model"] = gpu.model
    info.update(memoryMiB=gpu.memory_mib, migCapable=gpu.mig_capable, migEnabled=gpu.mig_enabled, emulated=gpu.emulated)
    return info


def node_object(inv: NodeInventory, catalog: ProfileCatalog) -> JSON:
    """The core/v1 Node for an inventory: GPU operator labels and capacity, status.gpus, Ready."""
    backend = "emulated" if inv.emulated else "nvml"
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower() or "unknown")
    labels = {
        "kubernetes.io/hostname": inv.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "nvidia.com/gpu.present": "true" if inv.gpus else "false",
        "nvidia.com/gpu.count": str(len(inv.gpus)),
        "nvidia.com/mig.capable": "true" if any(g.mig_capable for g in inv.gpus) else "false",
        "flotilla.dev/gpu-backend": backend,
    }
    if inv.gpus:  # GPU feature discovery labels a node by its first GPU
        labels["nvidia.com/gpu.product"] = inv.gpus[0].product
        labels["nvidia.com/gpu.memory"] = str(inv.gpus[0].memory_mib)
    capacity = {"cpu": inv.cpu, "memory": inv.memory, "pods": MAX_PODS, "nvidia.com/gpu": str(len(inv.gpus))}
    capacity.update({name: str(n) for name, n in mig_capacity(inv.gpus, catalog).items()})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": inv.name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "FlotillaReady",
                    "message": f"Flotilla node agent is ready; GPUs from {inv.source}",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": inv.name}],
            "nodeInfo": {
                "operatingSystem": "linux",
                "architecture": arch,
                "kernelVersion": platform.release(),
                "gpuBackend": backend,
            },
            "gpus": [_gpu_info(g) for g in inv.gpus],
        },
    }


def merge_node(existing: JSON | None, fresh: JSON) -> JSON:
    """What to write when (re)registering a node: `fresh` inventory, keeping what others set on `existing`.

    Kept: metadata other than labels (uid, resourceVersion, annotations, ...), labels the inventory does
    not own (OWNED_LABELS; e.g. `autopilot.ibm.com/gpuhealth`, user labels), spec.taints and
    spec.unschedulable, conditions of types the inventory does not write, and per GPU (matched by uuid)
    health, healthMessage and faults. Everything else comes from `fresh`; neither input is changed.
    """
    merged = copy.deepcopy(fresh)
    if not existing:
        return merged
    old_meta: JSON = existing.get("metadata") or {}
    meta: JSON = {**copy.deepcopy(old_meta), **merged.get("metadata", {})}
    kept = {k: v for k, v in (old_meta.get("labels") or {}).items() if k not in OWNED_LABELS}
    meta["labels"] = {**kept, **(merged.get("metadata", {}).get("labels") or {})}
    merged["metadata"] = meta

    spec: JSON = merged.setdefault("spec", {})
    for key in ("taints", "unschedulable"):
        if (existing.get("spec") or {}).get(key) is not None:
            spec[key] = copy.deepcopy(existing["spec"][key])

    old_status: JSON = existing.get("status") or {}
    status: JSON = merged.setdefault("status", {})
    fresh_types = {c.get("type") for c in status.get("conditions") or []}
    others = [copy.deepcopy(c) for c in old_status.get("conditions") or [] if c.get("type") not in fresh_types]
    if others:
        status["conditions"] = [*(status.get("conditions") or []), *others]
    old_gpus = {g.get("uuid"): g for g in old_status.get("gpus") or []}
    for gpu in status.get("gpus") or []:
        old = old_gpus.get(gpu.get("uuid")) or {}
        gpu.update({key: copy.deepcopy(old[key]) for key in GPU_KEPT_FIELDS if old.get(key) is not None})
    return merged
