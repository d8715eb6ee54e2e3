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


def format_path(loc: Sequence[int | str]) -> str:
    """('spec', 'resourceGroups', 0, 'flavors') -> 'spec.resourceGroups[0].flavors'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part}]"
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
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _issue(model: type[BaseModel], err: ErrorDetails) -> FieldIssue:
    loc = list(err["loc"])
    kind = err["type"]
    value = err.get("input")
    msg = err["msg"]
    if kind == "extra_forbidden":
        field = str(loc[-1])
        owner = _model_at(model, loc[:-1])
        allowed = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.6)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        if allowed and not close:
            hint = "; allowed fields here: " + ", ".join(allowed)
        return FieldIssue(format_path(loc), f'unknown field "{field}"{hint}')
    if kind == "missing":
        return FieldIssue(format_path(loc), "required field is missing; add it")
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        return FieldIssue(format_path(loc), f"{_show(value)} is not allowed; use one of: {expected}")
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        if "is not a quantity" in text:
            text += _QUANTITY_HINT
        return FieldIssue(format_path(loc), text)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return FieldIssue(format_path(loc), f"expected an object (a mapping of fields), got {_show(value)}")
    if kind == "list_type":
        return FieldIssue(format_path(loc), f"expected a list, got {_show(value)}")
    return FieldIssue(format_path(loc), f"{_show(value)}: {msg[0].lower() + msg[1:]}")


def issues_from_validation(model: type[BaseModel], exc: ValidationError) -> tuple[FieldIssue, ...]:
    """Turn a pydantic ValidationError into field issues with Kubernetes-style paths."""
    return tuple(_issue(model, e) for e in exc.errors(include_url=False))
