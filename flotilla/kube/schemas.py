"""The schemas manifests are checked against, as a strict API server would check them.

- Custom resources: the `openAPIV3Schema` of each version of the CRDs given (by default the Kueue
  and GAIE CRDs in the project's `shared/reference/`, read in place; `$FLOTILLA_CRDS` or `--crds`
  for others), validated with `openapi-schema-validator` (OpenAPI 3.0). The API server prunes
  unknown fields, or with strict field validation rejects them; here they are always errors: every
  object schema that lists `properties` (and neither `additionalProperties` nor
  `x-kubernetes-preserve-unknown-fields`) is closed. The root `metadata` (`type: object` in every
  CRD) is checked as ObjectMeta. CEL rules (`x-kubernetes-validations`) are not evaluated.
- Built-in kinds: Kubernetes' own OpenAPI schemas, strict variant, from the `kubernetes-validate`
  package (one set per Kubernetes minor version; the newest by default).

Schemas and validators are built once per process and kept (they are read-only).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

JSON = dict[str, Any]
REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
DEFAULT_CRD_DIRS = (REFERENCE / "kueue" / "crds", REFERENCE / "gaie" / "crds")
CRDS_ENV = "FLOTILLA_CRDS"

_STRING = {"type": "string"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# ObjectMeta as users (and servers) write it; anything else under metadata is an unknown field.
OBJECT_META: JSON = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {**_STRING, "maxLength": 253},
        "generateName": _STRING,
        "namespace": {**_STRING, "maxLength": 63},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": "array", "items": _STRING},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "uid": _STRING,
        "resourceVersion": _STRING,
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": "string", "nullable": True},
        "deletionTimestamp": _STRING,
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array", "items": {"type": "object"}},
        "selfLink": _STRING,
    },
}


_GO_FLAGS = re.compile(r"\(\?([imsU]+)\)")


def python_pattern(pattern: str) -> str:
    """A Go (RE2) `pattern` as Python's `re` reads it: Go allows a flag group such as `(?i)` anywhere
    (Kueue writes `^(?i)[a-z]...`), Python only at the start."""
    flags = "".join(sorted({f for group in _GO_FLAGS.findall(pattern) for f in group if f in "ims"}))
    stripped = _GO_FLAGS.sub("", pattern)
    return f"(?{flags}){stripped}" if flags else stripped


def strictify(schema: Any) -> Any:
    """A copy of an OpenAPI schema in which every object with `properties` rejects other fields (and
    patterns are in Python's spelling)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("pattern"), str):
        out["pattern"] = python_pattern(out["pattern"])
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: strictify(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strictify(out[key])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strictify(out["additionalProperties"])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [strictify(s) for s in out[key]]
    return out


def with_object_meta(schema: Mapping[str, Any]) -> JSON:
    """A resource schema whose root `metadata` is checked as ObjectMeta."""
    out = dict(schema)
    properties = dict(out.get("properties") or {})
    properties["metadata"] = OBJECT_META
    out["properties"] = properties
    return out


@dataclass(frozen=True)
class CrdVersion:
    """One served version of one CRD: what validates it and where it came from."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    schema: JSON  # strict, with ObjectMeta
    source: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


class CrdError(ValueError):
    """A CRD file that cannot be read (names the file and document)."""


def crd_versions(crd: Mapping[str, Any], source: str) -> list[CrdVersion]:
    """The served versions of one CustomResourceDefinition document."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, kind, plural = spec.get("group"), names.get("kind"), names.get("plural")
    if not (group and kind and plural):
        raise CrdError(f"{source}: not a CustomResourceDefinition with spec.group and spec.names.kind/plural")
    out = []
    for v in spec.get("versions") or []:
        raw = ((v.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object"}
        if not v.get("served", True):
            continue
        schema = with_object_meta(strictify(raw))
        out.append(CrdVersion(group, v["name"], kind, plural, spec.get("scope") == "Namespaced", schema, source))
    return out


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
    return [path]


@cache
def _load_crd_file(path: Path) -> tuple[CrdVersion, ...]:
    out: list[CrdVersion] = []
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise CrdError(f"{path}: cannot read CRDs: {exc}") from None
    for i, doc in enumerate(docs, start=1):
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            out += crd_versions(doc, f"{path} doc {i}")
    return tuple(out)


def default_crd_paths() -> list[Path]:
    """`$FLOTILLA_CRDS` (paths separated by os.pathsep), else the reference CRDs when present."""
    env = os.environ.get(CRDS_ENV)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [p for p in DEFAULT_CRD_DIRS if p.is_dir()]


class CrdIndex:
    """(group, version, kind) -> CrdVersion, from CRD files and folders (later paths win)."""

    def __init__(self, versions: Iterable[CrdVersion] = ()) -> None:
        self._by_gvk: dict[tuple[str, str, str], CrdVersion] = {}
        for v in versions:
            self._by_gvk[(v.group, v.version, v.kind)] = v

    @classmethod
    def load(cls, paths: Sequence[Path]) -> CrdIndex:
        versions: list[CrdVersion] = []
        for path in paths:
            if not path.exists():
                raise CrdError(f"{path}: no such file or folder of CRDs")
            for f in _yaml_files(path):
                versions += _load_crd_file(f.resolve())
        return cls(versions)

    def with_versions(self, versions: Iterable[CrdVersion]) -> CrdIndex:
        """This index plus `versions` where it has none of theirs (the files given win)."""
        merged = dict(self._by_gvk)
        for v in versions:
            merged.setdefault((v.group, v.version, v.kind), v)
        return CrdIndex(merged.values())

    def get(self, group: str, version: str, kind: str) -> CrdVersion | None:
        return self._by_gvk.get((group, version, kind))

    def kinds(self) -> list[tuple[str, str, str]]:
        return sorted(self._by_gvk)


@cache
def crd_validator(schema_json: str) -> Any:
    """An OpenAPI 3.0 validator of a (strict) CRD schema, by its JSON text (so it can be cached)."""
    oas: Any = importlib.import_module("openapi_schema_validator")
    return oas.OAS30Validator(json.loads(schema_json), format_checker=oas.oas30_format_checker)


# -- Kubernetes' own kinds ------------------------------------------------------------------------
def kubernetes_versions() -> list[str]:
    """The Kubernetes minor versions `kubernetes-validate` has schemas for (`1.37`, ...)."""
    kv: Any = importlib.import_module("kubernetes_validate.utils")
    return [kv.major_minor(v) for v in kv.all_versions()]


def latest_kubernetes() -> str:
    return kubernetes_versions()[-1]


@cache
def _schema_dir(version: str) -> Any:
    kv: Any = importlib.import_module("kubernetes_validate.utils")
    wanted = version.removeprefix("v")
    matches = [v for v in kv.all_versions() if kv.major_minor(v) == kv.major_minor(wanted)]
    if not matches:
        known = ", ".join(kubernetes_versions())
        raise ValueError(f"no Kubernetes schemas for version {version}; use one of {known}")
    resources: Any = importlib.import_module("importlib_resources")
    return resources.files("kubernetes_validate").joinpath("kubernetes-json-schema", f"v{matches[-1]}-local-strict")


@cache
def _definitions(version: str) -> Any:
    referencing: Any = importlib.import_module("referencing")
    folder = _schema_dir(version)
    defs = json.loads(folder.joinpath("_definitions.json").read_text(encoding="utf-8"))
    return referencing.Resource.from_contents(defs) @ referencing.Registry()


def builtin_schema_file(api_version: str, kind: str) -> str:
    """kubernetes-validate's file name: `apps/v1` Deployment -> `deployment-apps-v1.json`."""
    group, _, version = api_version.rpartition("/")
    prefix = f"{group.split('.')[0]}-" if group else ""
    return f"{kind.lower()}-{prefix}{version}.json"


@cache
def builtin_validator(version: str, api_version: str, kind: str) -> Any | None:
    """A validator of a built-in kind in Kubernetes `version`, or None when it has no such kind."""
    group = api_version.rpartition("/")[0]
    if "." in group and not group.endswith(".k8s.io"):
        return None  # a custom group: never a built-in kind
    path = _schema_dir(version).joinpath(builtin_schema_file(api_version, kind))
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    if api_version not in ((schema.get("properties") or {}).get("apiVersion") or {}).get("enum", [api_version]):
        return None  # e.g. `foo.example.com/v1` Service is not core/v1 Service
    referencing: Any = importlib.import_module("referencing")
    jsonschema: Any = importlib.import_module("jsonschema")
    registry = referencing.Resource.from_contents(schema) @ _definitions(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)
