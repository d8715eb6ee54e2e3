"""GPU inventory: the short spec and YAML config, deterministic UUIDs, the Node object and re-registration."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flotilla.api.catalog import build_registry
from flotilla.api.core import Node
from flotilla.api.loader import decode
from flotilla.slicer.backends import EmulatedBackend
from flotilla.slicer.inventory import (
    DEFAULT_GPU_CONFIG,
    EmulatedGPUConfig,
    GPUConfigError,
    NodeInventory,
    gpu_uuid,
    load_gpu_config,
    merge_node,
    node_object,
    parse_gpu_spec,
)

from .builders import CATALOG

REGISTRY = build_registry()
HOST = ("16", "64Gi")
UUID_FORMAT = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def nodes(spec: str, reason: str = "test") -> list[NodeInventory]:
    return EmulatedBackend(parse_gpu_spec(spec), CATALOG, reason, host=HOST).discover()


def node(spec: str) -> dict[str, Any]:
    return node_object(nodes(spec)[0], CATALOG)


def as_node(obj: dict[str, Any]) -> Node:
    typed = decode(obj, REGISTRY, source="node_object").obj
    return Node.model_validate(typed)


# --- the short spec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "groups"),
    [
        ("1x2xA100-40GB", [(1, 2, "A100-40GB")]),
        ("2x8xA100-80GB,1x2xH100-80GB", [(2, 8, "A100-80GB"), (1, 2, "H100-80GB")]),
        (" 1 X 1 X h200-141gb ", [(1, 1, "H200-141GB")]),  # spaces, X and the model's case don't matter
    ],
)
def test_spec_parses_groups(spec: str, groups: list[tuple[int, int, str]]) -> None:
    config = parse_gpu_spec(spec)
    assert [(g.nodes, g.gpusPerNode, g.model) for g in config.groups] == groups
    assert all(g.migEnabled and g.namePrefix == "gpu-node" for g in config.groups)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("1x2", ["item 1 ('1x2')", "not NODESxGPUSxMODEL", "e.g. 1x2xA100-40GB"]),
        ("1x2xA100-40GB,,", ["item 2 ('')", "not NODESxGPUSxMODEL"]),
        ("", ["empty GPU spec", "e.g. 1x2xA100-40GB"]),
        ("0x2xA100-40GB", ["item 1", "NODES: 0 must be greater than or equal to 1", "e.g. 1x2xA100-40GB"]),
        ("1x2xA100-40GB,1x17xH100-80GB", ["item 2 ('1x17xH100-80GB')", "GPUS: 17 must be less than"]),
        ("1x2xA100-20GB", ["MODEL: unknown GPU model 'A100-20GB'", "known models: A100-40GB, A100-80GB, H100-80GB"]),
    ],
)
def test_spec_errors_say_what_is_wrong_and_show_the_form(spec: str, words: list[str]) -> None:
    with pytest.raises(GPUConfigError) as err:
        parse_gpu_spec(spec)
    for word in words:
        assert word in str(err.value)


def test_node_names_count_on_across_groups_with_a_prefix() -> None:
    names = [n.name for n in nodes("2x8xA100-80GB,1x2xH100-80GB")]
    assert names == ["gpu-node-0", "gpu-node-1", "gpu-node-2"]
    config = EmulatedGPUConfig.model_validate(
        {
            "groups": [
                {"nodes": 2, "gpusPerNode": 1, "model": "A100-40GB", "namePrefix": "a100"},
                *[{"nodes": 1, "gpusPerNode": 1, "model": "H100-80GB", "namePrefix": p} for p in ("h100", "a100")],
            ]
        }
    )
    assert [name for _, name in config.node_names()] == ["a100-0", "a100-1", "h100-0", "a100-2"]


def test_default_config_is_one_node_with_two_a100_40gb() -> None:
    assert DEFAULT_GPU_CONFIG.describe() == "1 node x 2 A100-40GB"
    (inv,) = EmulatedBackend(DEFAULT_GPU_CONFIG, CATALOG, "no NVIDIA GPU found: NVML", host=HOST).discover()
    assert inv.source == "emulated: 1 node x 2 A100-40GB (no NVIDIA GPU found: NVML)"
    assert (inv.cpu, inv.memory, inv.emulated) == ("16", "64Gi", True)


# --- the YAML config --------------------------------------------------------------------------------

GOOD = """\
groups:
  - {nodes: 2, gpusPerNode: 8, model: A100-80GB, namePrefix: a100, cpu: "96", memory: 1Ti}
  - {nodes: 1, gpusPerNode: 2, model: H100-80GB, migEnabled: false}
"""


def test_yaml_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "gpus.yaml"
    path.write_text(GOOD)
    config = load_gpu_config(path)
    invs = EmulatedBackend(config, CATALOG, host=HOST).discover()
    assert [(n.name, n.cpu, n.memory, len(n.gpus)) for n in invs] == [
        ("a100-0", "96", "1Ti", 8),
        ("a100-1", "96", "1Ti", 8),
        ("gpu-node-0", "16", "64Gi", 2),
    ]
    assert not any(g.mig_enabled for g in invs[2].gpus)


GROUP = "{nodes: 1, gpusPerNode: 2, model: A100-40GB}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "groups:\n  - {nodes: 1, gpusPerNod: 2, model: A100-40GB}\n",
            'groups[0].gpusPerNod: unknown field "gpusPerNod"; did you mean "gpusPerNode"?',
        ),
        (
            f"groups:\n  - {GROUP}\n  - {{nodes: 1, gpusPerNode: 2, model: V100}}\n",
            "groups[1].model: unknown GPU model 'V100'; known models: A100-40GB",
        ),
        ("groups:\n  - {nodes: 1, gpusPerNode: 2, model: A100-40GB, memory: lots}\n", "groups[0].memory:"),
        (
            "groups:\n  - {nodes: '1', gpusPerNode: 0, model: A100-40GB}\n",
            "groups[0].gpusPerNode: 0 must be greater than or equal to 1",
        ),
        ("groups:\n  - {nodes: 1, gpusPerNode: 1, model: A100-40GB, namePrefix: GPU_Node}\n", "groups[0].namePrefix:"),
        ("groups: []\n", "groups: must have at least 1 item"),
        ("- 1x2xA100-40GB\n", "expected a mapping with groups"),
        ("groups: [nodes: 1\n", "malformed YAML at line"),
    ],
)
def test_yaml_config_errors_name_the_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "gpus.yaml"
    path.write_text(text)
    with pytest.raises(GPUConfigError) as err:
        load_gpu_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GPUConfigError, match=r"gone\.yaml: cannot read the GPU config"):
        load_gpu_config(tmp_path / "gone.yaml")


# --- UUIDs ------------------------------------------------------------------------------------------


def test_gpu_uuids_are_nvml_shaped_and_the_same_on_every_run() -> None:
    first = [g.uuid for n in nodes("2x4xA100-40GB") for g in n.gpus]
    again = [g.uuid for n in nodes("2x4xA100-40GB", reason="another run") for g in n.gpus]
    assert first == again
    assert len(set(first)) == 8
    assert all(UUID_FORMAT.match(u) for u in first)
    assert gpu_uuid("gpu-node-0", 0) != gpu_uuid("gpu-node-1", 0) != gpu_uuid("gpu-node-1", 1)


# --- the Node object --------------------------------------------------------------------------------


def test_node_for_two_a100_40gb_has_the_gpu_operator_labels_and_mig_capacity() -> None:
    obj = node("1x2xA100-40GB")
    labels = obj["metadata"]["labels"]
    assert (
        labels
        | {
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
            "nvidia.com/gpu.count": "2",
            "nvidia.com/gpu.memory": "40960",
            "nvidia.com/mig.capable": "true",
            "nvidia.com/gpu.present": "true",
            "flotilla.dev/gpu-backend": "emulated",
            "kubernetes.io/hostname": "gpu-node-0",
        }
        == labels
    )
    capacity = obj["status"]["capacity"]
    assert capacity == {
        "cpu": "16",
        "memory": "64Gi",
        "pods": "110",
        "nvidia.com/gpu": "2",
        "nvidia.com/mig-1g.5gb": "14",
        "nvidia.com/mig-1g.5gb.me": "2",
        "nvidia.com/mig-1g.10gb": "8",
        "nvidia.com/mig-2g.10gb": "6",
        "nvidia.com/mig-3g.20gb": "4",
        "nvidia.com/mig-4g.20gb": "2",
        "nvidia.com/mig-7g.40gb": "2",
    }
    assert obj["status"]["allocatable"] == capacity
    (ready,) = obj["status"]["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "FlotillaReady")
    assert "emulated: 1 node x 2 A100-40GB (test)" in ready["message"]
    assert obj["status"]["addresses"] == [
        {"type": "InternalIP", "address": "127.0.0.1"},
        {"type": "Hostname", "address": "gpu-node-0"},
    ]
    assert obj["status"]["nodeInfo"]["operatingSystem"] == "linux"
    assert obj["status"]["nodeInfo"]["gpuBackend"] == "emulated"


def test_node_for_one_h100() -> None:
    obj = node("1x1xH100-80GB")
    assert obj["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert obj["metadata"]["labels"]["nvidia.com/gpu.memory"] == "81559"
    capacity = obj["status"]["capacity"]
    assert (capacity["nvidia.com/gpu"], capacity["nvidia.com/mig-1g.10gb"], capacity["nvidia.com/mig-7g.80gb"]) == (
        "1",
        "7",
        "1",
    )
    (gpu,) = obj["status"]["gpus"]
    assert gpu | {"index": 0, "model": "H100-80GB", "memoryMiB": 81559, "migEnabled": True, "emulated": True} == gpu


def test_gpus_with_mig_disabled_offer_no_mig_resources() -> None:
    config = EmulatedGPUConfig.model_validate(
        {"groups": [{"nodes": 1, "gpusPerNode": 4, "model": "A100-80GB", "migEnabled": False}]}
    )
    obj = node_object(EmulatedBackend(config, CATALOG, host=HOST).discover()[0], CATALOG)
    assert not [r for r in obj["status"]["capacity"] if r.startswith("nvidia.com/mig-")]
    assert obj["status"]["capacity"]["nvidia.com/gpu"] == "4"


@pytest.mark.parametrize("spec", ["1x2xA100-40GB", "1x8xA100-80GB", "1x1xH100-80GB", "1x4xH200-141GB"])
def test_node_object_validates_as_a_node(spec: str) -> None:
    typed = as_node(node(spec))
    assert typed.status is not None and typed.status.gpus is not None
    assert len(typed.status.gpus) == int(spec.split("x")[1])


# --- re-registration --------------------------------------------------------------------------------


def test_merge_keeps_what_others_set() -> None:
    fresh = node("1x2xA100-40GB")
    first, second = (g["uuid"] for g in fresh["status"]["gpus"])
    existing = node("1x2xA100-40GB")
    existing["metadata"].update(resourceVersion="41", annotations={"note": "x"})
    existing["metadata"]["labels"].update(
        {"autopilot.ibm.com/gpuhealth": "EVICT", "team": "speech", "nvidia.com/gpu.count": "4"}
    )
    existing["spec"] = {"taints": [{"key": "autopilot.ibm.com/gpuhealth", "value": "EVICT", "effect": "NoSchedule"}]}
    existing["spec"]["unschedulable"] = True
    existing["status"]["conditions"].append({"type": "GPUHealthy", "status": "False", "reason": "RemappedRows"})
    existing["status"]["gpus"][1].update(
        health="EVICT", healthMessage="remapped rows pending", faults=["remapped-rows"]
    )
    existing["status"]["gpus"].append({**existing["status"]["gpus"][0], "uuid": "GPU-gone", "health": "ERR"})
    snapshot = repr(existing), repr(fresh)

    merged = merge_node(existing, fresh)

    assert (repr(existing), repr(fresh)) == snapshot  # inputs untouched
    meta = merged["metadata"]
    assert (meta["resourceVersion"], meta["annotations"]) == ("41", {"note": "x"})
    assert meta["labels"]["autopilot.ibm.com/gpuhealth"] == "EVICT" and meta["labels"]["team"] == "speech"
    assert meta["labels"]["nvidia.com/gpu.count"] == "2"  # owned by the inventory: fresh wins
    assert merged["spec"]["taints"] == existing["spec"]["taints"] and merged["spec"]["unschedulable"] is True
    assert [c["type"] for c in merged["status"]["conditions"]] == ["Ready", "GPUHealthy"]
    gpus = {g["uuid"]: g for g in merged["status"]["gpus"]}
    assert set(gpus) == {first, second}  # a GPU that is no longer there is dropped
    assert "health" not in gpus[first]
    assert (gpus[second]["health"], gpus[second]["healthMessage"], gpus[second]["faults"]) == (
        "EVICT",
        "remapped rows pending",
        ["remapped-rows"],
    )
    as_node(merged)


def test_merge_without_an_existing_node_is_the_fresh_one() -> None:
    fresh = node("1x1xH200-141GB")
    merged = merge_node(None, fresh)
    assert merged == fresh and merged is not fresh


# --- scale ------------------------------------------------------------------------------------------


def test_vela_scale_inventory_builds() -> None:
    """500 nodes x 8 GPUs: discovery and node objects (speed is a benchmark's business, not an assert)."""
    invs = nodes("500x8xA100-80GB")
    objs = [node_object(inv, CATALOG) for inv in invs]
    assert len({o["metadata"]["name"] for o in objs}) == 500
    assert len({g.uuid for inv in invs for g in inv.gpus}) == 4000
    assert objs[-1]["status"]["capacity"]["nvidia.com/mig-1g.10gb"] == "56"
