"""Reading a YAML config file (queue, GPU, runtime configs) with errors that name the file, the
line of a YAML mistake, and every bad field's path; and the rows of a CSV or JSONL data file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from flotilla.api.errors import issues_from_validation

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path | str, what: str, error: type[Exception]) -> Any:
    """The document in `path`; `error` (naming the file, and the line of a YAML mistake) otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{path}: malformed YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


def validate_model(model: type[M], raw: Any, source: str, error: type[Exception], **context: Any) -> M:
    """`model` from `raw`; `error` listing every problem as `source: field.path: message`."""
    try:
        return model.model_validate(raw, context=context or None)
    except ValidationError as exc:
        issues = issues_from_validation(model, exc)
        raise error("\n".join(f"{source}: {issue}" for issue in issues)) from None


def read_rows(
    path: Path, error: Callable[[str], Exception], *, json_hint: str, kind: str = "file"
) -> tuple[list[str] | None, list[tuple[int, Mapping[str, Any]]]]:
    """The rows of a CSV (with a header) or JSONL file, each with its line number: (the CSV's columns, or
    None for JSONL; the rows). `error(message)` is raised for a JSON line that is not an object (`json_hint`
    says what it should hold) or cannot be parsed, and for another suffix; the caller checks the columns."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        return list(reader.fieldnames or []), [(number, row) for number, row in enumerate(reader, 2)]
    if suffix in (".jsonl", ".ndjson"):
        rows: list[tuple[int, Mapping[str, Any]]] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{number}: expected a JSON object with {json_hint}")
            rows.append((number, row))
        return None, rows
    raise error(f"{path}: use a .csv or .jsonl {kind}")
