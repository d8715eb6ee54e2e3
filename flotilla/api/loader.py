"""Load multi-document YAML/JSON manifests like `kubectl apply -f`: files, folders, stdin.

Every document is validated; if any is invalid, `ManifestErrors` lists every problem and the
caller stores nothing. Objects come back in their kind's internal version.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from flotilla.api.base import Resource
from flotilla.api.errors import FieldIssue, ManifestError, ManifestErrors, issues_from_validation
from flotilla.api.registry import Kind, Registry, UnknownKind

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class LoadedObject:
    source: str
    doc_index: int
    kind: Kind
    obj: Resource

    def to_dict(self) -> dict[str, Any]:
        return self.obj.to_dict()


def _where(raw: Any) -> tuple[str | None, str | None]:
    if not isinstance(raw, dict):
        return None, None
    kind = raw.get("kind") if isinstance(raw.get("kind"), str) else None
    raw_meta = raw.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else None)
    return kind, name if isinstance(name, str) else None


def decode(raw: Any, registry: Registry, source: str = "<input>", doc_index: int = 1) -> LoadedObject:
    """Validate one document and convert it to its kind's internal version.

    Raises ManifestErrors (with one ManifestError) naming every problem found.
    """
    kind_name, name = _where(raw)

    def fail(*issues: FieldIssue) -> ManifestErrors:
        return ManifestErrors([ManifestError(source, doc_index, kind_name, name, tuple(issues))])

    if not isinstance(raw, dict):
        raise fail(FieldIssue("", f"expected an object with apiVersion and kind, got {type(raw).__name__}"))
    problems_at_top = [
        FieldIssue(f, "required field is missing; add it (e.g. apiVersion: v1, kind: Job)")
        if raw.get(f) in (None, "")
        else FieldIssue(f, f'expected a string such as "{example}", got {raw.get(f)!r}')
        for f, example in (("apiVersion", "batch/v1"), ("kind", "Job"))
        if not isinstance(raw.get(f), str) or not raw.get(f)
    ]
    if problems_at_top:
        raise fail(*problems_at_top)
    try:
        kind, version = registry.lookup(raw["apiVersion"], raw["kind"])
    except UnknownKind as exc:
        raise fail(FieldIssue("kind", str(exc))) from None
    try:
        # Strict, as the API server's JSON decoding is: "3" is not an integer, 1 is not a string.
        typed = version.model.model_validate(raw, strict=True)
    except ValidationError as exc:
        raise fail(*issues_from_validation(version.model, exc)) from None
    semantic = typed.validate_semantics()
    problems = list(semantic)
    if not typed.metadata.name and not typed.metadata.generateName:
        problems.append(FieldIssue("metadata.name", "required field is missing; set metadata.name (or generateName)"))
    if kind.namespaced is False and typed.metadata.namespace:
        problems.append(FieldIssue("metadata.namespace", f"{kind.kind} is cluster-scoped; remove metadata.namespace"))
    if problems:
        raise fail(*problems)
    internal = kind.internal
    if version is not internal:
        body = version.to_internal(typed.to_dict())
        body["apiVersion"] = kind.api_version()
        typed = internal.model.model_validate(body)
    return LoadedObject(source, doc_index, kind, typed)


def encode(obj: Resource | dict[str, Any], kind: Kind, version: str | None = None) -> dict[str, Any]:
    """The JSON form of an internal object in `version` (default: the internal version)."""
    body = obj.to_dict() if isinstance(obj, Resource) else dict(obj)
    target = kind.version(version) if version else kind.internal
    if target is None:
        raise UnknownKind(f"{kind.kind} is not served in version {version}")
    if target is not kind.internal:
        body = target.from_internal(body)
    body["apiVersion"] = kind.api_version(target.name)
    return body


_SEPARATOR = re.compile(r"^---(\s|$)")


def _yaml_error(exc: yaml.YAMLError, source: str, index: int, line_offset: int) -> ManifestError:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1 + line_offset}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return ManifestError(source, index, None, None, (FieldIssue("", f"malformed YAML{where}: {problem}"),))


def _split_documents(text: str) -> list[tuple[int, str]]:
    """(first line offset, text) per `---`-separated document; used to find every broken one."""
    chunks: list[tuple[int, str]] = []
    start, lines = 0, text.splitlines(keepends=True)
    for n, line in enumerate(lines):
        if _SEPARATOR.match(line) and n > 0:
            chunks.append((start, "".join(lines[start:n])))
            start = n
    chunks.append((start, "".join(lines[start:])))
    # A leading `---` opens the first document rather than closing an empty one.
    return [(off, chunk) for off, chunk in chunks if chunk.strip() not in ("", "---")] or [(0, "")]


def split_documents(text: str, source: str) -> tuple[list[tuple[int, Any]], list[ManifestError]]:
    """(1-based index, document) for every document that parses, and an error for each that does
    not (with its line), so one broken document does not hide problems in the others.
    `v1 List` documents are expanded; empty documents are skipped, as kubectl does."""
    errors: list[ManifestError] = []
    try:
        docs = list(enumerate(yaml.safe_load_all(text), start=1))
    except yaml.YAMLError:
        docs = []
        for index, (offset, chunk) in enumerate(_split_documents(text), start=1):
            try:
                docs.append((index, yaml.safe_load(chunk)))
            except yaml.YAMLError as exc:
                errors.append(_yaml_error(exc, source, index, offset))
    out: list[tuple[int, Any]] = []
    for i, doc in docs:
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend((i, item) for item in doc["items"])
        else:
            out.append((i, doc))
    return out, errors


def parse_documents(text: str, source: str) -> list[tuple[int, Any]]:
    """Split a YAML (or JSON) stream into (1-based index, document); raise ManifestErrors naming
    every malformed document and its line."""
    docs, errors = split_documents(text, source)
    if errors:
        raise ManifestErrors(errors)
    return docs


def iter_manifest_files(path: Path) -> list[Path]:
    """A file, or every manifest file under a folder (recursively, in sorted order)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
    return [path]


def read_sources(paths: Sequence[str | Path], stdin: TextIO | None = None) -> list[tuple[str, str]]:
    """(source name, text) for each file; `-` reads standard input."""
    out: list[tuple[str, str]] = []
    for p in paths:
        if str(p) == "-":
            out.append(("<stdin>", (stdin or sys.stdin).read()))
            continue
        path = Path(p)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        files = iter_manifest_files(path)
        if path.is_dir() and not files:
            raise FileNotFoundError(f"{path}: no .yaml, .yml or .json files in this folder")
        for f in files:
            try:
                out.append((str(f), f.read_text(encoding="utf-8")))
            except UnicodeDecodeError:
                raise ManifestErrors(
                    [ManifestError(str(f), 1, None, None, (FieldIssue("", "not a UTF-8 text file"),))]
                ) from None
    return out


def load_text(text: str, registry: Registry, source: str = "<input>") -> list[LoadedObject]:
    """Load every document of one YAML/JSON text; raise ManifestErrors listing all problems."""
    return load_sources([(source, text)], registry)


def load_sources(sources: Iterable[tuple[str, str]], registry: Registry) -> list[LoadedObject]:
    """Load (source name, text) pairs; raise ManifestErrors listing every problem, in file order."""
    sources = list(sources)
    loaded: list[LoadedObject] = []
    errors: list[ManifestError] = []
    for source, text in sources:
        docs, broken = split_documents(text, source)
        errors.extend(broken)
        for index, raw in docs:
            try:
                loaded.append(decode(raw, registry, source, index))
            except ManifestErrors as exc:
                errors.extend(exc.errors)
    if errors:
        order = {source: i for i, (source, _) in enumerate(sources)}
        raise ManifestErrors(sorted(errors, key=lambda e: (order.get(e.source, 0), e.doc_index)))
    return loaded


def load_paths(paths: Sequence[str | Path], registry: Registry, stdin: TextIO | None = None) -> list[LoadedObject]:
    """Load manifests from files, folders (recursive) and `-` (stdin), like `kubectl apply -f`."""
    return load_sources(read_sources(paths, stdin), registry)


def dump_yaml(objects: Iterable[dict[str, Any]]) -> str:
    """Multi-document YAML, keys in the order the models define them."""
    return "---\n".join(yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects)


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2)
