"""Validation errors that say what is wrong, where (file, document, kind/name, field path) and the fix."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

_QUANTITY_HINT = " (a quantity looks like 2, 500m, 36Gi or 1e3)"


@dataclass(frozen=True)
class FieldIssue:
    """One problem at one field path (`spec.resourceGroups[0].flavors[0].name`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class ManifestError:
    """Every problem found in one document of one source."""

    source: str
    doc_index: int  # 1-based, as people count documents in a file
    kind: str | None
    name: str | None
    issues: tuple[FieldIssue, ...]

    @property
    def where(self) -> str:
        where = f"{self.source} doc {self.doc_index}"
        if self.kind:
            where += f" {self.kind}/{self.name or '<unnamed>'}"
        return where

    def __str__(self) -> str:
        return "\n".join(f"{self.where}: {issue}" for issue in self.issues)


class ManifestErrors(ValueError):
    """Raised when any document of a load or apply is invalid; nothing was stored."""

    def __init__(self, errors: Sequence[ManifestError]) -> None:
        self.errors = tuple(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    @property
    def issues(self) -> list[str]:
        return [f"{e.where}: {i}" for e in self.errors for i in e.issues]


def format_path(loc: Sequence[int | str], model: type[BaseModel] | None = None) -> str:
    """('spec', 'resourceGroups', 0, 'flavors') -> 'spec.resourceGroups[0].flavors'.

    Given the model that `loc` starts at, map keys are written as Kubernetes writes them,
    in brackets: `resources.requests[cpu]`, `metadata.labels[app]`.
    """
    out = ""
    current: Any = model
    for part in loc:
        shape = _unwrap(current) if current is not None else None
        if typing.get_origin(shape) is dict:
            out += f"[{part}]"
            args = typing.get_args(shape)
            current = args[1] if args else None
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part}]"
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            info = shape.model_fields.get(str(part))
            current = info.annotation if info else None
        elif typing.get_origin(shape) in (list, tuple):
            args = typing.get_args(shape)
            current = args[0] if args else None
        else:
            current = None
    return out


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated wrappers down to the type that holds fields or items."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that owns the field at `loc` (to suggest field names)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return None
            current = info.annotation
        elif typing.get_origin(current) in (list, tuple, dict):
            args = typing.get_args(current)
            current = args[-1] if args else Any
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# pydantic error types for a value of the wrong JSON type, and what the field wants instead.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "float_type": "a number",
    "float_parsing": "a number",
}
_COMPARISONS = {
    "greater_than_equal": ("ge", "greater than or equal to"),
    "greater_than": ("gt", "greater than"),
    "less_than_equal": ("le", "less than or equal to"),
    "less_than": ("lt", "less than"),
}


def _wrong_type(kind: str, value: Any) -> str:
    message = f"expected {_EXPECTED[kind]}, got {_show(value)}"
    quoted = isinstance(value, str) and (
        value.strip().lstrip("+-").isdigit() if kind.startswith("int") else value in ("true", "false")
    )
    if quoted:
        message += "; remove the quotes"
    elif kind == "string_type" and isinstance(value, bool | int | float):
        message += f'; quote it ("{_show(value)}") to make it a string'
    return message


def _length(err: ErrorDetails) -> str:
    ctx = err.get("ctx", {})
    value = err.get("input")
    unit = "entry" if isinstance(value, dict) else "item"
    actual = ctx.get("actual_length", len(value) if isinstance(value, dict | list | str) else "?")
    if err["type"] == "too_short":
        limit = ctx.get("min_length", 1)
        return f"must have at least {limit} {unit}{'s' if limit != 1 else ''}, got {actual}"
    limit = ctx.get("max_length", "?")
    return f"must have at most {limit} {unit}{'s' if limit != 1 else ''}, got {actual}"


def _suggestion(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[str | None, list[str]]:
    """For an unknown field at `loc`: the closest allowed field name (if any) and all allowed names."""
    owner = _model_at(model, loc[:-1])
    allowed = sorted(owner.model_fields) if owner else []
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    return (close[0] if close else None), allowed


def _issue(model: type[BaseModel], err: ErrorDetails) -> FieldIssue:
    loc = list(err["loc"])
    kind = err["type"]
    value = err.get("input")
    msg = err["msg"]
    path = format_path(loc, model)
    if kind == "extra_forbidden":
        close, allowed = _suggestion(model, loc)
        hint = f'; did you mean "{close}"?' if close else ""
        if allowed and not close:
            hint = "; allowed fields here: " + ", ".join(allowed)
        return FieldIssue(path, f'unknown field "{loc[-1]}"{hint}')
    if kind == "missing":
        return FieldIssue(path, "required field is missing; add it")
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        return FieldIssue(path, f"{_show(value)} is not allowed; use one of: {expected}")
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        if "is not a quantity" in text:
            text += _QUANTITY_HINT
        return FieldIssue(path, text)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return FieldIssue(path, f"expected an object (a mapping of fields), got {_show(value)}")
    if kind == "list_type":
        return FieldIssue(path, f"expected a list, got {_show(value)}")
    if kind in _EXPECTED:
        return FieldIssue(path, _wrong_type(kind, value))
    if kind in ("too_short", "too_long"):
        return FieldIssue(path, _length(err))
    if kind in _COMPARISONS:
        key, words = _COMPARISONS[kind]
        return FieldIssue(path, f"{_show(value)} must be {words} {err.get('ctx', {}).get(key)}")
    return FieldIssue(path, f"{_show(value)}: {msg[0].lower() + msg[1:]}")


def issues_from_validation(model: type[BaseModel], exc: ValidationError) -> tuple[FieldIssue, ...]:
    """Turn a pydantic ValidationError into field issues with Kubernetes-style paths.

    A misspelt required field is one mistake, not two: when an unknown field's suggestion is a
    field reported missing at the same place, only the unknown field (with its suggestion) is kept.
    """
    errors = exc.errors(include_url=False)
    issues = [_issue(model, e) for e in errors]
    suggested = set()
    for e in errors:
        close = _suggestion(model, e["loc"])[0] if e["type"] == "extra_forbidden" else None
        if close:
            suggested.add(format_path([*e["loc"][:-1], close], model))
    return tuple(
        issue
        for e, issue in zip(errors, issues, strict=True)
        if not (e["type"] == "missing" and issue.path in suggested)
    )
