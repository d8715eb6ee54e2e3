"""`flotilla kube validate`: check manifests before anything reaches a cluster.

Each document is checked against the first schema that knows it:

1. a CRD's `openAPIV3Schema` (strict: unknown fields are errors; see schemas.py), for custom kinds;
2. Kubernetes' own schema of the version (`kubernetes-validate`), for built-in kinds;
3. Flotilla's model of the kind (the embedded platform's validation: fields, types, enums and the
   cross-field rules), for custom kinds whose CRD was not given (HTTPRoute, Gateway,
   InferenceObjective, and Kueue or GAIE kinds when no CRDs are at hand);
4. otherwise the document is listed as not checked (give its CRD with `--crds`).

Every problem names the file, the document, the object, the field path and the fix.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.api.errors import FieldIssue, ManifestError, ManifestErrors
from flotilla.api.loader import decode, split_documents
from flotilla.api.registry import Registry, UnknownKind
from flotilla.kube import schemas
from flotilla.kube.objects import group_of, kind_of, name_of, version_of

JSON = dict[str, Any]
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _expected_types(schema: Mapping[str, Any]) -> list[str]:
    """The JSON types a schema (or its anyOf/oneOf branches) accepts, for 'expected X or Y'."""
    found: list[str] = []
    for branch in [schema, *(schema.get("anyOf") or []), *(schema.get("oneOf") or [])]:
        t = branch.get("type")
        for name in t if isinstance(t, list) else [t] if t else []:
            if name != "null" and name not in found:
                found.append(name)
    return found


def issues_from_error(error: Any) -> list[FieldIssue]:
    """One jsonschema ValidationError -> FieldIssues with the path and what would be right."""
    path = _path(error.absolute_path)
    validator, instance, schema = error.validator, error.instance, error.schema
    if validator == "additionalProperties" and isinstance(instance, dict):
        known = sorted((schema.get("properties") or {}).keys())
        out = []
        for key in sorted(set(instance) - set(known)):
            close = difflib.get_close_matches(key, known, n=1)
            hint = f'did you mean "{close[0]}"?' if close else f"known fields here: {', '.join(known) or 'none'}"
            out.append(FieldIssue(_join(path, key), f'unknown field "{key}"; remove it ({hint})'))
        return out
    if validator == "required" and isinstance(instance, dict):
        return [
            FieldIssue(_join(path, name), "required field is missing; add it")
            for name in error.validator_value
            if name not in instance
        ]
    if validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value)
        return [FieldIssue(path, f"{json.dumps(instance)} is not allowed; use one of: {allowed}")]
    if validator in ("type", "anyOf", "oneOf") and _expected_types(schema):
        wanted = " or ".join(_expected_types(schema))
        if validator != "type" and any(_type_ok(instance, t) for t in _expected_types(schema)):
            detail = min(error.context or [], key=lambda e: len(list(e.absolute_path)), default=None)
            return issues_from_error(detail) if detail is not None else [FieldIssue(path, error.message)]
        return [FieldIssue(path, f"expected {wanted}, got {_type_name(instance)} ({json.dumps(instance)})")]
    if validator == "pattern":
        return [FieldIssue(path, f"{json.dumps(instance)} does not match the pattern {error.validator_value}")]
    return [FieldIssue(path, str(error.message))]


def _type_ok(value: Any, name: str) -> bool:
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    check = checks.get(name)
    return bool(check and check(value))


def schema_issues(validator: Any, doc: Mapping[str, Any]) -> list[FieldIssue]:
    """Every problem a validator finds, in field-path order (one per field)."""
    issues: dict[tuple[str, str], FieldIssue] = {}
    for error in validator.iter_errors(dict(doc)):
        for issue in issues_from_error(error):
            issues.setdefault((issue.path, issue.message), issue)
    return sorted(issues.values(), key=lambda i: i.path)


@dataclass
class Report:
    """What a validation found: problems per document, what each document was checked against, and
    the documents no schema knew."""

    errors: list[ManifestError] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # schema source -> documents
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if self.errors:
            raise ManifestErrors(self.errors)

    def summary(self) -> str:
        lines = [f"  {n:3d} x {source}" for source, n in sorted(self.checked.items())]
        lines += [f"  not checked: {u}" for u in self.unchecked]
        return "\n".join(lines)


class Validator:
    """Checks documents against CRDs, Kubernetes' schemas and Flotilla's models (in that order)."""

    def __init__(self, crds: schemas.CrdIndex, registry: Registry, kubernetes_version: str | None = None) -> None:
        self.crds = crds
        self.registry = registry
        self.kubernetes_version = kubernetes_version or schemas.latest_kubernetes()

    def check(self, doc: Any, source: str, index: int, report: Report) -> None:
        kind, name = (kind_of(doc), name_of(doc)) if isinstance(doc, dict) else (None, None)

        def fail(issues: Sequence[FieldIssue]) -> None:
            report.errors.append(ManifestError(source, index, kind, name or None, tuple(issues)))

        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            fail([FieldIssue("", "expected an object with apiVersion and kind (e.g. apiVersion: v1, kind: Service)")])
            return
        group, version = group_of(doc), version_of(doc)
        crd = self.crds.get(group, version, str(doc["kind"]))
        if crd is not None:
            issues = schema_issues(schemas.crd_validator(json.dumps(crd.schema, sort_keys=True)), doc)
            if not crd.namespaced and (doc.get("metadata") or {}).get("namespace"):
                issues.append(FieldIssue("metadata.namespace", f"{crd.kind} is cluster-scoped; remove it"))
            self._count(report, f"CRD {crd.crd_name} {version} ({crd.source.split(' doc ')[0]})")
        elif (builtin := schemas.builtin_validator(self.kubernetes_version, str(doc["apiVersion"]), kind)) is not None:
            issues = schema_issues(builtin, doc)
            self._count(report, f"Kubernetes {self.kubernetes_version} schema of {kind} ({doc['apiVersion']})")
        else:
            checked, issues = self._flotilla_model(doc, source, index)
            if not checked:
                report.unchecked.append(
                    f"{source} doc {index} {kind}/{name}: no schema for {doc['apiVersion']} {kind} "
                    "(give its CRD with --crds)"
                )
                return
            self._count(report, f"Flotilla's model of {kind} ({doc['apiVersion']}; its CRD was not given)")
        if not name and not (doc.get("metadata") or {}).get("generateName"):
            issues.append(FieldIssue("metadata.name", "required field is missing; add it"))
        if issues:
            fail(issues)

    def _flotilla_model(self, doc: JSON, source: str, index: int) -> tuple[bool, list[FieldIssue]]:
        try:
            self.registry.lookup(str(doc["apiVersion"]), str(doc["kind"]))
        except UnknownKind:
            return False, []
        try:
            decode(doc, self.registry, source, index)
        except ManifestErrors as exc:
            return True, [issue for error in exc.errors for issue in error.issues]
        return True, []

    @staticmethod
    def _count(report: Report, what: str) -> None:
        report.checked[what] = report.checked.get(what, 0) + 1

    def validate_sources(self, sources: Iterable[tuple[str, str]]) -> Report:
        """Check every document of (source name, YAML text) pairs; malformed YAML is an error too."""
        report = Report()
        for source, text in sources:
            docs, broken = split_documents(text, source)
            report.errors.extend(broken)
            for index, doc in docs:
                self.check(doc, source, index, report)
        report.errors.sort(key=lambda e: (e.source, e.doc_index))
        return report
