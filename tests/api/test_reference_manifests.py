"""Acceptance: Kueue's documented examples and the study's own manifests load, round-trip and convert.

The manifests are read in place from `../shared/reference` (never copied into the repository). The
study's kube-burner object templates are rendered first, once per combination of their switches.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.api.catalog import build_registry
from flotilla.api.kube_burner import render_kube_burner_config
from flotilla.api.loader import (
    LoadedObject,
    decode,
    dump_yaml,
    encode,
    load_paths,
    load_sources,
    load_text,
    parse_documents,
)
from flotilla.api.quantity import Quantity, QuantityError
from flotilla.api.registry import Kind
from flotilla.api.templates import Template

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
if not REFERENCE.is_dir():
    pytest.skip(
        f"reference material not found at {REFERENCE} (the shared/ folder beside the repository)",
        allow_module_level=True,
    )

REGISTRY = build_registry()
EXAMPLES = sorted((REFERENCE / "kueue" / "examples").glob("*.yaml"))
STUDY = sorted((REFERENCE / "icpe26").rglob("*.yml"))
# Values a kube-burner object template sees for the first object of the study's scale job.
TEMPLATE_BASE = {"Iteration": 0, "JobName": "whisper-scale", "Replica": 1, "UUID": "flotilla"}
# Fields that exist only in v1beta2: converting to v1beta1 and back cannot keep them.
V1BETA2_ONLY = {"ClusterQueue": (("spec", "concurrentAdmissionPolicy"),)}


def _name(path: Path) -> str:
    return str(path.relative_to(REFERENCE))


def _is_kube_burner_config(text: str) -> bool:
    return re.search(r"^jobs:", text, re.MULTILINE) is not None


CONFIGS = [p for p in STUDY if _is_kube_burner_config(p.read_text())]
TEMPLATES = [p for p in STUDY if p not in CONFIGS and "{{" in p.read_text()]
PLAIN = [p for p in EXAMPLES + STUDY if p not in CONFIGS and p not in TEMPLATES]


def _renderings() -> list[tuple[str, str]]:
    """(source, text) for every template under every combination of its boolean switches."""
    out = []
    for path in TEMPLATES:
        template = Template(path.read_text(), path.name)
        switches = sorted(template.condition_variables)
        for combo in itertools.product([True, False], repeat=len(switches)):
            values = TEMPLATE_BASE | dict(zip(switches, combo, strict=True))
            label = ",".join(f"{k}={str(v).lower()}" for k, v in zip(switches, combo, strict=True))
            out.append((f"{_name(path)}[{label}]", template.render(values)))
    return out


RENDERED = _renderings()
SOURCES = [(_name(p), p.read_text()) for p in PLAIN] + RENDERED
SOURCE_IDS = [s for s, _ in SOURCES]


@functools.cache
def _load(source: str) -> list[LoadedObject]:
    text = dict(SOURCES)[source]
    return load_text(text, REGISTRY, source=source)


def _all_loaded() -> list[LoadedObject]:
    return [obj for source in SOURCE_IDS for obj in _load(source)]


# -- what is covered ---------------------------------------------------------------------------


def test_inventory() -> None:
    """Guard against silently testing less: every reference file is classified as expected."""
    assert len(EXAMPLES) == 15
    assert {p.name for p in CONFIGS} == {"kueue-whisper.yml", "kube-burner-whisper.yml"}
    assert {p.name for p in TEMPLATES} == {
        "whisper-job-medium.yml",
        "whisper-job-large.yml",
        "whisper-transcription-medium.yml",
        "whisper-transcription-large.yml",
    }
    assert len(STUDY) == 18
    assert len(PLAIN) == len(EXAMPLES) + len(STUDY) - len(CONFIGS) - len(TEMPLATES)
    # kueue/kube-burner templates switch on kueue and gpu (4 renderings each), das ones on das (2).
    assert len(RENDERED) == 4 + 4 + 2 + 2


# -- loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PLAIN, ids=_name)
def test_manifest_loads_from_its_file(path: Path) -> None:
    loaded = load_paths([path], REGISTRY)
    assert loaded, f"{path} has no documents"
    assert [o.to_dict() for o in loaded] == [o.to_dict() for o in _load(_name(path))]


@pytest.mark.parametrize(("source", "text"), RENDERED, ids=[s for s, _ in RENDERED])
def test_rendered_template_loads(source: str, text: str) -> None:
    loaded = load_text(text, REGISTRY, source=source)
    assert [o.kind.kind for o in loaded] == ["Job"]
    job = loaded[0].obj
    assert job.name.endswith("-0")
    assert "kueue=false" not in source or "kueue.x-k8s.io/queue-name" not in job.labels


def test_examples_folder_loads_at_once() -> None:
    loaded = load_paths([REFERENCE / "kueue" / "examples"], REGISTRY)
    assert {o.kind.kind for o in loaded} == {"ResourceFlavor", "ClusterQueue", "LocalQueue", "Job"}
    assert len(loaded) == sum(len(_load(_name(p))) for p in EXAMPLES)


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCE_IDS)
def test_round_trip_through_yaml(source: str) -> None:
    loaded = _load(source)
    dumped = dump_yaml(o.to_dict() for o in loaded)
    again = load_text(dumped, REGISTRY, source=f"{source} (dumped)")
    assert [o.to_dict() for o in again] == [o.to_dict() for o in loaded]
    assert dump_yaml(o.to_dict() for o in again) == dumped


def _differences(raw: Any, encoded: Any, path: str = "") -> list[str]:
    """Paths where `raw` (what the user wrote) is missing or different in `encoded`."""
    if isinstance(raw, dict):
        if not isinstance(encoded, dict):
            return [path or "."]
        out = []
        for key, value in raw.items():
            where = f"{path}.{key}" if path else str(key)
            if value is None and key not in encoded:
                continue  # `resources:` with nothing under it is the same as leaving it out
            out += _differences(value, encoded[key], where) if key in encoded else [where]
        return out
    if isinstance(raw, list):
        if not isinstance(encoded, list) or len(raw) != len(encoded):
            return [path]
        return [
            d for i, (a, b) in enumerate(zip(raw, encoded, strict=True)) for d in _differences(a, b, f"{path}[{i}]")
        ]
    if raw == encoded and type(raw) is type(encoded):
        return []
    if isinstance(encoded, str) and isinstance(raw, int | str) and not isinstance(raw, bool):
        try:
            return [] if Quantity.parse(raw) == Quantity.parse(encoded) else [path]
        except QuantityError:
            pass
    return [path]


@pytest.mark.parametrize("source", SOURCE_IDS)
def test_nothing_written_is_dropped(source: str) -> None:
    """Each object, encoded in the version it was written in, holds every field of the document."""
    docs = [raw for _, raw in parse_documents(dict(SOURCES)[source], source)]
    loaded = _load(source)
    assert len(docs) == len(loaded)
    for raw, obj in zip(docs, loaded, strict=True):
        version = raw["apiVersion"].rpartition("/")[2]
        assert _differences(raw, encode(obj.obj, obj.kind, version)) == []


def _without_v1beta2_only(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for path in V1BETA2_ONLY.get(kind, ()):
        parent = out
        for part in path[:-1]:
            parent = parent.get(part, {})
        parent.pop(path[-1], None)
    return out


def _kueue_objects() -> list[LoadedObject]:
    return [o for o in _all_loaded() if o.kind.version("v1beta1") is not None]


@pytest.mark.parametrize("obj", _kueue_objects(), ids=lambda o: f"{o.source}#{o.doc_index}")
def test_v1beta1_conversion_round_trips(obj: LoadedObject) -> None:
    v1beta1 = encode(obj.obj, obj.kind, "v1beta1")
    assert v1beta1["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    back = decode(v1beta1, REGISTRY, source="converted")
    assert back.obj.apiVersion == "kueue.x-k8s.io/v1beta2"
    kind = obj.kind.kind
    assert back.obj.to_dict() == _without_v1beta2_only(kind, obj.obj.to_dict())


def test_study_kueue_objects_are_v1beta1_and_stored_as_v1beta2() -> None:
    study = [o for o in _kueue_objects() if o.source.startswith("icpe26/")]
    assert len(study) == 7
    sources = dict(SOURCES)
    for o in study:
        assert "apiVersion: kueue.x-k8s.io/v1beta1" in sources[o.source]
        assert o.obj.apiVersion == "kueue.x-k8s.io/v1beta2"


# -- defaults a Kueue API server fills in ---------------------------------------------------------


def _object(source: str, kind: str) -> dict[str, Any]:
    return next(o.to_dict() for o in _load(source) if o.kind.kind == kind)


CQ_DEFAULTS = {
    "queueingStrategy": "BestEffortFIFO",
    "stopPolicy": "None",
    "flavorFungibility": {"whenCanBorrow": "MayStopSearch", "whenCanPreempt": "TryNextFlavor"},
    "preemption": {
        "reclaimWithinCohort": "Never",
        "borrowWithinCohort": {"policy": "Never"},
        "withinClusterQueue": "Never",
    },
}


@pytest.mark.parametrize(
    "source", ["kueue/examples/getting-started_quick-start-setup.yaml", "icpe26/kueue/manifests/cluster-queue.yml"]
)
def test_cluster_queue_defaults(source: str) -> None:
    spec = _object(source, "ClusterQueue")["spec"]
    assert {k: spec[k] for k in CQ_DEFAULTS} == CQ_DEFAULTS
    assert "cohortName" not in spec


def test_explicit_values_win_over_defaults() -> None:
    spec = _object("kueue/examples/admission-fs_admission-fair-sharing-setup.yaml", "ClusterQueue")["spec"]
    assert spec["queueingStrategy"] == "StrictFIFO"
    assert spec["admissionScope"] == {"admissionMode": "UsageBasedAdmissionFairSharing"}
    lq = _object("kueue/examples/admission-fs_admission-fair-sharing-setup.yaml", "LocalQueue")
    assert lq["spec"] == {"clusterQueue": "cluster-queue", "stopPolicy": "None", "fairSharing": {"weight": "1"}}


def test_local_queue_defaults() -> None:
    lq = _object("icpe26/kueue/manifests/local-queue.yml", "LocalQueue")
    assert lq["metadata"] == {"name": "local-queue", "namespace": "sai"}
    assert lq["spec"] == {"clusterQueue": "cluster-queue", "stopPolicy": "None"}


def test_job_defaults() -> None:
    spec = _object("kueue/examples/getting-started_quick-start-job.yaml", "Job")["spec"]
    assert (spec["backoffLimit"], spec["completionMode"], spec["suspend"]) == (6, "NonIndexed", False)
    assert (spec["parallelism"], spec["completions"]) == (3, 3)


def test_job_explicit_values_kept() -> None:
    spec = _object("icpe26/kueue/manifests/whisper-gpu.yml", "Job")["spec"]
    assert (spec["backoffLimit"], spec["completionMode"], spec["parallelism"], spec["completions"]) == (
        2,
        "Indexed",
        2,
        6,
    )
    assert spec["template"]["spec"]["volumes"][2]["configMap"]["defaultMode"] == 0o755


def test_quantities_are_canonical_after_loading() -> None:
    spec = _object("icpe26/kueue/manifests/cluster-queue.yml", "ClusterQueue")["spec"]
    resources = spec["resourceGroups"][0]["flavors"][0]["resources"]
    assert resources == [
        {"name": "cpu", "nominalQuota": "6"},
        {"name": "memory", "nominalQuota": "8Gi"},
        {"name": "nvidia.com/gpu", "nominalQuota": "2"},
    ]


# -- key conversions between v1beta1 and v1beta2 ---------------------------------------------------

V1BETA1_CLUSTER_QUEUE = """
apiVersion: kueue.x-k8s.io/v1beta1
kind: ClusterQueue
metadata: {name: team-a}
spec:
  cohort: research
  admissionChecks: [prov]
  flavorFungibility: {whenCanBorrow: Borrow, whenCanPreempt: Preempt}
  resourceGroups:
  - coveredResources: [nvidia.com/gpu]
    flavors:
    - name: a100
      resources:
      - {name: nvidia.com/gpu, nominalQuota: 8, borrowingLimit: 4, lendingLimit: 2}
"""


def _v1beta1_workload(source: str) -> str:
    return f"""
apiVersion: kueue.x-k8s.io/v1beta1
kind: Workload
metadata: {{name: wl, namespace: team-a}}
spec:
  queueName: user-queue
  priority: 100
  priorityClassName: high
  priorityClassSource: "{source}"
  podSets:
  - name: main
    count: 2
    template:
      spec:
        restartPolicy: Never
        containers: [{{name: c, image: busybox, resources: {{limits: {{nvidia.com/gpu: 1}}}}}}]
"""


def _inline_objects() -> list[LoadedObject]:
    sources = [("cq.yaml", V1BETA1_CLUSTER_QUEUE)] + [
        (f"wl-{s or 'empty'}.yaml", _v1beta1_workload(s))
        for s in ("kueue.x-k8s.io/workloadpriorityclass", "scheduling.k8s.io/priorityclass", "")
    ]
    return [o for source, text in sources for o in load_text(text, REGISTRY, source=source)]


def test_cluster_queue_v1beta1_to_v1beta2() -> None:
    [cq] = load_text(V1BETA1_CLUSTER_QUEUE, REGISTRY, source="cq.yaml")
    spec = cq.to_dict()["spec"]
    assert cq.obj.apiVersion == "kueue.x-k8s.io/v1beta2"
    assert spec["cohortName"] == "research" and "cohort" not in spec
    assert spec["flavorFungibility"] == {"whenCanBorrow": "MayStopSearch", "whenCanPreempt": "MayStopSearch"}
    assert spec["admissionChecksStrategy"] == {"admissionChecks": [{"name": "prov"}]}
    assert "admissionChecks" not in spec
    quota = spec["resourceGroups"][0]["flavors"][0]["resources"][0]
    assert quota == {"name": "nvidia.com/gpu", "nominalQuota": "8", "borrowingLimit": "4", "lendingLimit": "2"}

    v1beta1 = encode(cq.obj, cq.kind, "v1beta1")
    assert v1beta1["spec"]["cohort"] == "research" and "cohortName" not in v1beta1["spec"]
    assert decode(v1beta1, REGISTRY).obj == cq.obj


@pytest.mark.parametrize(
    ("source", "group", "kind"),
    [
        ("kueue.x-k8s.io/workloadpriorityclass", "kueue.x-k8s.io", "WorkloadPriorityClass"),
        ("scheduling.k8s.io/priorityclass", "scheduling.k8s.io", "PriorityClass"),
        ("", "scheduling.k8s.io", "PriorityClass"),
    ],
)
def test_workload_priority_class_becomes_priorityClassRef(source: str, group: str, kind: str) -> None:
    [wl] = load_text(_v1beta1_workload(source), REGISTRY, source="wl.yaml")
    spec = wl.to_dict()["spec"]
    assert spec["priorityClassRef"] == {"group": group, "kind": kind, "name": "high"}
    assert "priorityClassName" not in spec and "priorityClassSource" not in spec
    v1beta1 = encode(wl.obj, wl.kind, "v1beta1")
    assert v1beta1["spec"]["priorityClassName"] == "high"
    assert v1beta1["spec"]["priorityClassSource"] == (source or "scheduling.k8s.io/priorityclass")
    assert decode(v1beta1, REGISTRY).obj == wl.obj


def test_v1beta2_cohortName_encodes_as_v1beta1_cohort() -> None:
    text = "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ClusterQueue\nmetadata: {name: cq}\nspec: {cohortName: org}\n"
    [cq] = load_text(text, REGISTRY)
    assert encode(cq.obj, cq.kind, "v1beta1")["spec"]["cohort"] == "org"
    assert encode(cq.obj, cq.kind)["spec"]["cohortName"] == "org"


# -- the study's kube-burner configs ---------------------------------------------------------------


def test_kueue_whisper_config_loads() -> None:
    rendered = render_kube_burner_config(REFERENCE / "icpe26" / "kueue" / "kube-burner" / "kueue-whisper.yml")
    loaded = load_sources(rendered.sources(), REGISTRY)
    assert len([o for o in loaded if o.kind.kind == "Job"]) == 32
    assert len(loaded) == 32 + 5
    assert [m.template for m in rendered.missing] == ["github-token-secret.yml"]


@pytest.mark.parametrize("das", [True, False])
def test_das_config_loads(das: bool) -> None:
    variables = {"ES_SERVER": "", "ES_INDEX": "", "LOCAL_INDEXING": True, "ITERATIONS": 16, "DAS": das}
    rendered = render_kube_burner_config(
        REFERENCE / "icpe26" / "das" / "manifests" / "kube-burner-whisper.yml", variables
    )
    loaded = load_sources(rendered.sources(), REGISTRY)
    assert [o.kind.kind for o in loaded].count("Job") == 32
    assert {o.kind.kind for o in loaded} == {"Namespace", "ConfigMap", "Job"}


# -- the official CRD schemas ------------------------------------------------------------------------


def _closed(schema: Any) -> Any:
    """The schema with unknown fields forbidden where the CRD lists the properties.

    A real API server prunes unknown fields silently; forbidding them here makes the test catch a
    field Flotilla writes that Kueue would drop.
    """
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: _closed(v) if k in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not") else v
        for k, v in schema.items()
    }
    if "properties" in schema:
        out["properties"] = {k: _closed(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


@functools.cache
def _crd_schema(plural: str, version: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((REFERENCE / "kueue" / "crds" / f"{plural}.yaml").read_text(), Loader=loader)
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema: dict[str, Any] = _closed(served["schema"]["openAPIV3Schema"])
    return schema


def _schema_errors(jsonschema: Any, kind: Kind, body: dict[str, Any], version: str) -> list[str]:
    validator = jsonschema.Draft7Validator(_crd_schema(kind.plural, version))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


def test_kueue_objects_match_the_official_crd_schemas() -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (optional; Flotilla does not depend on it)"
    )
    objects = _kueue_objects() + _inline_objects()
    assert {o.kind.kind for o in objects} == {"ResourceFlavor", "ClusterQueue", "LocalQueue", "Workload"}
    problems = []
    for o in objects:
        for version in ("v1beta2", "v1beta1"):
            body = encode(o.obj, o.kind, version)
            problems += [
                f"{o.source}#{o.doc_index} {version} {e}" for e in _schema_errors(jsonschema, o.kind, body, version)
            ]
    assert problems == []


def test_crd_schema_check_catches_unknown_fields() -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (optional; Flotilla does not depend on it)"
    )
    kind = REGISTRY.resolve("clusterqueues")
    body = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "x"},
        "spec": {"cohort": "a"},
    }
    assert any("cohort" in e for e in _schema_errors(jsonschema, kind, body, "v1beta2"))
    assert _schema_errors(jsonschema, kind, body, "v1beta1") == []
