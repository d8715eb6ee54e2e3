"""The profile tables against NVIDIA's documented placements, the lookups, and data-file errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.slicer import GPUModel, ProfileDataError, UnknownGPUModelError, UnknownProfileError, load_catalog
from flotilla.slicer.profiles import load_profile_file, normalize_product, profile_name_for_resource
from flotilla.slicer.slots import range_mask

from .builders import CATALOG

SHIPPED = Path(__file__).resolve().parents[2] / "flotilla" / "slicer" / "profiles"

# `nvidia-smi mig -lgipp` (MIG User Guide, "Getting Started with MIG"), by GPU instance profile ID:
# {starts}:size. The same list holds on the A100 40GB/80GB, H100 and H200.
LGIPP: dict[int, tuple[int, tuple[int, ...]]] = {
    19: (1, (0, 1, 2, 3, 4, 5, 6)),
    20: (1, (0, 1, 2, 3, 4, 5, 6)),
    15: (2, (0, 2, 4, 6)),
    14: (2, (0, 2, 4)),
    9: (4, (0, 4)),
    5: (4, (0,)),
    0: (8, (0,)),
}
# "Number of Instances Available" in the guide's profile tables, by profile ID.
MAX_INSTANCES = {19: 7, 20: 1, 15: 4, 14: 3, 9: 2, 5: 1, 0: 1}
# Profile names per model and ID: the guide's tables (and the list).
NAMES: dict[str, dict[int, str]] = {
    "A100-40GB": {
        19: "1g.5gb",
        20: "1g.5gb+me",
        15: "1g.10gb",
        14: "2g.10gb",
        9: "3g.20gb",
        5: "4g.20gb",
        0: "7g.40gb",
    },
    "A100-80GB": {
        19: "1g.10gb",
        20: "1g.10gb+me",
        15: "1g.20gb",
        14: "2g.20gb",
        9: "3g.40gb",
        5: "4g.40gb",
        0: "7g.80gb",
    },
    "H100-80GB": {
        19: "1g.10gb",
        20: "1g.10gb+me",
        15: "1g.20gb",
        14: "2g.20gb",
        9: "3g.40gb",
        5: "4g.40gb",
        0: "7g.80gb",
    },
    "H200-141GB": {
        19: "1g.18gb",
        20: "1g.18gb+me",
        15: "1g.35gb",
        14: "2g.35gb",
        9: "3g.71gb",
        5: "4g.71gb",
        0: "7g.141gb",
    },
}
EVERY_START = [
    (model, pid, name, start) for model, names in NAMES.items() for pid, name in names.items() for start in range(8)
]


def test_the_shipped_catalog_has_one_file_per_model() -> None:
    assert sorted(p.name for p in SHIPPED.glob("*.yaml")) == [
        "a100-40gb.yaml",
        "a100-80gb.yaml",
        "h100-80gb.yaml",
        "h200-141gb.yaml",
    ]
    assert list(load_catalog().models) == sorted(NAMES)


@pytest.mark.parametrize("model", sorted(NAMES))
def test_profile_names_ids_sizes_and_counts_are_nvidias(model: str) -> None:
    gpu = CATALOG.model(model)
    assert gpu.slots == 8 and gpu.compute_slices == 7
    assert {p.profile_id: p.name for p in gpu.profiles} == NAMES[model]
    for p in gpu.profiles:
        assert (p.size, p.starts) == LGIPP[p.profile_id], p.name
        assert p.max_instances == MAX_INSTANCES[p.profile_id], p.name
        assert p.compute_slices == int(p.name[0])
        assert p.memory_mib < gpu.memory_mib


@pytest.mark.parametrize(("model", "profile_id", "profile", "start"), EVERY_START)
def test_every_start_of_every_profile_is_valid_exactly_when_nvidia_lists_it(
    model: str, profile_id: int, profile: str, start: int
) -> None:
    size, documented = LGIPP[profile_id]
    slots = CATALOG.slots(model, profile)
    assert slots is not None
    valid = start in documented
    assert (start in slots.free_starts(0)) is valid  # on an empty GPU
    assert (start in slots.profile.starts) is valid
    if valid:
        assert start + size <= 8 and start % size == 0
        assert slots.mask_at(start) == range_mask(start, size)
        # taken by anything at that start, the placement is no longer free
        assert start not in slots.free_starts(1 << start)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),  # nvidia-smi / NVML
        ("NVIDIA-A100-SXM4-40GB", "A100-40GB"),  # GPU feature discovery
        ("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "A100-40GB"),  # GFD, MIG strategy single
        ("A100-SXM4-40GB", "A100-40GB"),  # drivers before R470
        ("nvidia a100-pcie-40gb", "A100-40GB"),
        ("NVIDIA A100 80GB PCIe", "A100-80GB"),
        ("NVIDIA-A100-80GB-PCIe-MIG-1g.10gb", "A100-80GB"),
        ("NVIDIA-A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-80GB"),
        ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
        ("NVIDIA H200", "H200-141GB"),
        ("NVIDIA-H200-MIG-7g.141gb", "H200-141GB"),
    ],
)
def test_lookup_by_product_name(name: str, model: str) -> None:
    assert CATALOG.for_product(name).model == model


@pytest.mark.parametrize("name", ["NVIDIA H100 PCIe", "NVIDIA A30", "Tesla V100-SXM2-16GB", ""])
def test_unknown_products_are_refused_with_the_known_ones(name: str) -> None:
    with pytest.raises(UnknownGPUModelError, match="known products: NVIDIA A100-SXM4-40GB"):
        CATALOG.for_product(name)


def test_normalized_product_names() -> None:
    assert normalize_product("NVIDIA  A100-SXM4-40GB") == "nvidia-a100-sxm4-40gb"
    assert normalize_product("NVIDIA-A100-SXM4-40GB-MIG-3g.20gb") == "nvidia-a100-sxm4-40gb"


@pytest.mark.parametrize(
    ("resource", "model", "profile", "size"),
    [
        ("nvidia.com/mig-3g.20gb", "A100-40GB", "3g.20gb", 4),
        ("nvidia.com/mig-1g.5gb", "A100-40GB", "1g.5gb", 1),
        ("nvidia.com/mig-1g.5gb.me", "A100-40GB", "1g.5gb+me", 1),
        ("nvidia.com/mig-1g.10gb", "A100-40GB", "1g.10gb", 2),  # two memory slices on the 40GB card
        ("nvidia.com/mig-1g.10gb", "H100-80GB", "1g.10gb", 1),  # one on the H100
        ("nvidia.com/mig-7g.141gb", "H200-141GB", "7g.141gb", 8),
    ],
)
def test_lookup_by_resource_name(resource: str, model: str, profile: str, size: int) -> None:
    found = CATALOG.profile_for_resource(resource, model)
    assert (found.name, found.size) == (profile, size)
    assert found.resource_name == resource


@pytest.mark.parametrize(
    ("resource", "model", "message"),
    [
        ("nvidia.com/mig-7g.80gb", "A100-40GB", "GPU model A100-40GB has no MIG profile '7g.80gb'; it has"),
        ("nvidia.com/gpu", "A100-40GB", "not a MIG resource name"),
        ("nvidia.com/mig-3g.20gb", "V100", "no GPU model 'V100'; known models"),
    ],
)
def test_resource_lookup_errors(resource: str, model: str, message: str) -> None:
    with pytest.raises(LookupError, match=message):
        CATALOG.profile_for_resource(resource, model)


def test_every_profile_round_trips_through_its_resource_name() -> None:
    for model in CATALOG.models.values():
        for p in model.profiles:
            assert profile_name_for_resource(p.resource_name) == p.name
            assert CATALOG.profile_for_resource(p.resource_name, model.model) == p


def test_models_offering_a_profile_name() -> None:
    assert CATALOG.models_offering("1g.10gb") == ("A100-40GB", "A100-80GB", "H100-80GB")
    assert CATALOG.models_offering("3g.20gb") == ("A100-40GB",)
    assert CATALOG.models_offering("9g.1gb") == ()
    with pytest.raises(UnknownProfileError):
        CATALOG.model("A100-40GB").profile("3g.40gb")


# -- data-file errors: each names the file and the field ------------------------------------------
Edit = Callable[[dict[str, Any]], Any]


def _set(path: list[str | int], value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


def _drop(path: list[str | int]) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return edit


BROKEN: list[tuple[str, Edit, str]] = [
    (
        "misaligned start",
        _set(["profiles", 3, "starts"], [0, 3]),
        "profiles[3].starts: start 3 is not aligned to size 2",
    ),
    (
        "past the last slot",
        _set(["profiles", 4, "starts"], [0, 8]),
        "profiles[4].starts: start 8 + size 4 = 12 goes past",
    ),
    ("descending starts", _set(["profiles", 3, "starts"], [2, 0]), "profiles[3].starts: starts must be ascending"),
    (
        "negative start",
        _set(["profiles", 0, "starts"], [-1, 0]),
        "profiles[0].starts: starts must be slot numbers >= 0",
    ),
    ("no starts", _set(["profiles", 0, "starts"], []), "profiles[0].starts: must have at least 1 item"),
    ("size too big", _set(["profiles", 6, "size"], 9), "profiles[6].size: 9 must be less than or equal to 8"),
    ("missing memory", _drop(["profiles", 0, "memory_mib"]), "profiles[0].memory_mib: required field is missing"),
    ("memory as text", _set(["profiles", 0, "memory_mib"], "lots"), "profiles[0].memory_mib: expected an integer"),
    ("unknown field", _set(["profiles", 2, "colour"], "red"), 'profiles[2].colour: unknown field "colour"'),
    ("misspelt field", _set(["slot"], 8), 'slot: unknown field "slot"; did you mean "slots"?'),
    ("bad name", _set(["profiles", 0, "name"], "one-slice"), "profiles[0].name:"),
    ("compute mismatch", _set(["profiles", 4, "compute_slices"], 4), "profiles[4].compute_slices: 4 does not match"),
    ("too many instances", _set(["profiles", 5, "max_instances"], 2), "profiles[5].max_instances: 2 is more than"),
    ("repeated name", _set(["profiles", 1, "name"], "1g.5gb"), "profiles[1].name: 1g.5gb repeats profiles[0]"),
    ("repeated id", _set(["profiles", 1, "profile_id"], 19), "profiles[1].profile_id: 19 repeats profiles[0]"),
    (
        "memory over total",
        _set(["profiles", 6, "memory_mib"], 50000),
        "profiles[6].memory_mib: 50000 > the GPU's 40960",
    ),
    ("fewer slots", _set(["slots"], 4), "profiles[6].starts: start 0 + size 8 = 8 goes past the GPU's 4 slots"),
    ("no products", _set(["product_names"], []), "product_names: must have at least 1 item"),
]


@pytest.mark.parametrize(("case", "edit", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_profile_file_names_file_and_field(tmp_path: Path, case: str, edit: Edit, message: str) -> None:
    doc = yaml.safe_load((SHIPPED / "a100-40gb.yaml").read_text())
    edit(doc)
    path = tmp_path / "a100-40gb.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ProfileDataError) as info:
        load_profile_file(path)
    assert info.value.file == str(path)
    assert any(line.startswith(f"{path}: ") and message in line for line in str(info.value).splitlines()), str(
        info.value
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [("model: [unclosed", "not valid YAML"), ("- a list\n", "expected a mapping"), ("", "expected a mapping")],
)
def test_unreadable_profile_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ProfileDataError, match=f"{path}: {message}"):
        load_profile_file(path)


def test_a_catalog_refuses_two_models_claiming_one_product(tmp_path: Path) -> None:
    doc = yaml.safe_load((SHIPPED / "a100-40gb.yaml").read_text())
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc))
    doc["model"] = "A100-40GB-copy"
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ProfileDataError) as info:
        load_catalog(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'b.yaml'}: product_names[0]: 'NVIDIA A100-SXM4-40GB' is already a product of A100-40GB "
        f"({tmp_path / 'a.yaml'})"
    )


def test_a_catalog_refuses_a_model_defined_twice(tmp_path: Path) -> None:
    text = (SHIPPED / "a100-40gb.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(ProfileDataError, match=r"b\.yaml: model: A100-40GB is already defined in .*a\.yaml"):
        load_catalog(tmp_path)


def test_an_empty_profile_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileDataError, match=r"no \*\.yaml profile files"):
        load_catalog(tmp_path)


def test_a_new_model_is_one_more_file(tmp_path: Path) -> None:
    for f in SHIPPED.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    doc = yaml.safe_load((SHIPPED / "h100-80gb.yaml").read_text())
    doc.update(model="H100-PCIe", product_names=["NVIDIA H100 PCIe"])
    (tmp_path / "h100-pcie.yaml").write_text(yaml.safe_dump(doc))
    catalog = load_catalog(tmp_path)
    assert catalog.for_product("NVIDIA-H100-PCIe").model == "H100-PCIe"
    assert isinstance(catalog.model("H100-PCIe"), GPUModel)
