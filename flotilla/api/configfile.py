"""Reading a YAML config file (queue, GPU, runtime configs) with errors that name the file, the
line of a YAML mistake, and every bad field's path."""

from __future__ import annotations

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
