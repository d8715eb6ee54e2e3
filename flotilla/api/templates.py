"""The subset of Go's text/template that kube-burner object templates use (configs: kube_burner.py).

Supported: `{{.Name}}` (and `{{ .a.b }}` into nested mappings), `{{if .x}}`, `{{else if .y}}`,
`{{else}}`, `{{end}}` (nested), comments `{{/* ... */}}`, and the trim markers `{{- ` / ` -}}`.
Truth is Go's: false, 0, "", nil and empty lists or mappings are false. Values print as Go's fmt
prints them (`true`, `16`, `1e+06`).

Unlike Go's default, a variable that is not defined is an error naming the variable, the file and
the line (kube-burner renders with `missingkey=error` too): a user-facing tool must not quietly
write `<no value>` into a manifest. Any other action (`range`, functions, pipelines) is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_SUPPORTED = "{{.Name}}, {{if .Name}}, {{else if .Name}}, {{else}}, {{end}} and {{/* comments */}}"
_FIELD_RE = re.compile(r"^(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
_TRIM_SPACE = " \t\r\n"


class TemplateError(ValueError):
    """A template that cannot be parsed or rendered; the message names the file and line."""


# -- the parse tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Field:
    path: tuple[str, ...]
    line: int

    @property
    def shown(self) -> str:
        return "." + ".".join(self.path)


@dataclass(frozen=True)
class _If:
    branches: tuple[tuple[_Field, tuple[_Node, ...]], ...]
    otherwise: tuple[_Node, ...]


_Node = _Text | _Field | _If


@dataclass(frozen=True)
class _Action:
    body: str  # between the delimiters, trim markers and surrounding space removed
    line: int


# -- lexing ------------------------------------------------------------------------------------


def _lex(text: str, source: str) -> list[_Text | _Action]:
    """Split into text and actions, applying `{{- ` and ` -}}` trimming to the neighbouring text."""
    tokens: list[_Text | _Action] = []
    trim_next = False
    pos = 0
    while (start := text.find("{{", pos)) != -1:
        line = text.count("\n", 0, start) + 1
        before = text[pos:start]
        inner = start + 2
        trim_before = text.startswith("-", inner) and text[inner + 1 : inner + 2] in tuple(_TRIM_SPACE)
        if trim_before:
            inner += 2
        # A comment may contain "}}"; other actions end at the first "}}".
        is_comment = text[inner:].lstrip(_TRIM_SPACE).startswith("/*")
        if is_comment:
            close = text.find("*/", inner)
            end = -1 if close == -1 else text.find("}}", close + 2)
        else:
            end = text.find("}}", inner)
        if end == -1:
            closing = "*/}}" if is_comment else "}}"
            raise TemplateError(f"{source}:{line}: action is never closed; end it with {closing}")
        body = text[inner:end]
        trim_after = len(body) >= 2 and body[-1] == "-" and body[-2] in _TRIM_SPACE
        if trim_after:
            body = body[:-2]
        if trim_next:
            before = before.lstrip(_TRIM_SPACE)
        if trim_before:
            before = before.rstrip(_TRIM_SPACE)
        if before:
            tokens.append(_Text(before))
        tokens.append(_Action(body.strip(_TRIM_SPACE), line))
        trim_next = trim_after
        pos = end + 2
    rest = text[pos:]
    if trim_next:
        rest = rest.lstrip(_TRIM_SPACE)
    if rest:
        tokens.append(_Text(rest))
    return tokens


# -- parsing -----------------------------------------------------------------------------------


def _unsupported(source: str, line: int, action: str) -> TemplateError:
    return TemplateError(f'{source}:{line}: unsupported template action "{{{{{action}}}}}"; supported: {_SUPPORTED}')


def _field(expr: str, line: int, source: str, action: str) -> _Field:
    if not _FIELD_RE.match(expr):
        raise _unsupported(source, line, action)
    return _Field(tuple(expr[1:].split(".")), line)


@dataclass
class _OpenIf:
    line: int
    branches: list[tuple[_Field, list[_Node]]]
    otherwise: list[_Node] | None = None

    @property
    def body(self) -> list[_Node]:
        return self.otherwise if self.otherwise is not None else self.branches[-1][1]

    def close(self) -> _If:
        branches = tuple((cond, tuple(nodes)) for cond, nodes in self.branches)
        return _If(branches, tuple(self.otherwise or ()))


def _parse(text: str, source: str) -> tuple[_Node, ...]:
    top: list[_Node] = []
    stack: list[_OpenIf] = []

    def current() -> list[_Node]:
        return stack[-1].body if stack else top

    for token in _lex(text, source):
        if isinstance(token, _Text):
            current().append(token)
            continue
        body, line = token.body, token.line
        words = body.split(None, 1)
        keyword = words[0] if words else ""
        argument = words[1].strip() if len(words) > 1 else ""
        if body.startswith("/*") and body.endswith("*/"):
            continue
        if not body:
            raise TemplateError(f"{source}:{line}: empty action {{{{}}}}; write {{{{.Name}}}}")
        if keyword == "if":
            stack.append(_OpenIf(line, [(_field(argument, line, source, body), [])]))
        elif keyword == "else":
            if not stack:
                raise TemplateError(f"{source}:{line}: {{{{else}}}} outside {{{{if}}}}")
            block = stack[-1]
            if block.otherwise is not None:
                raise TemplateError(f"{source}:{line}: {{{{else}}}} after {{{{else}}}} (if at line {block.line})")
            rest = argument.split(None, 1)
            if not rest:
                block.otherwise = []
            elif rest[0] == "if":
                condition = rest[1].strip() if len(rest) > 1 else ""
                block.branches.append((_field(condition, line, source, body), []))
            else:
                raise _unsupported(source, line, body)
        elif keyword == "end" and not argument:
            if not stack:
                raise TemplateError(f"{source}:{line}: {{{{end}}}} without a matching {{{{if}}}}")
            current_if = stack.pop().close()
            current().append(current_if)
        else:
            current().append(_field(body, line, source, body))
    if stack:
        raise TemplateError(
            f"{source}:{stack[-1].line}: {{{{if}}}} is never closed; add {{{{end}}}} before the end of the file"
        )
    return tuple(top)


# -- rendering ---------------------------------------------------------------------------------


def _go_float(x: float) -> str:
    """Go's `%v` for a float64: shortest digits, exponent form below 1e-4 or from 1e6."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    sci = len(text) - 1 + exponent
    prefix = "-" if sign else ""
    if sci < -4 or sci >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if sci < 0 else '+'}{abs(sci):02d}"
    return prefix + format(Decimal(repr(abs(x))).normalize(), "f")


class Template:
    """A parsed template: render it with `render(values)`; it knows which variables it reads."""

    def __init__(self, text: str, source: str = "<template>") -> None:
        self.source = source
        self._nodes = _parse(text, source)

    @property
    def variables(self) -> frozenset[str]:
        """Top-level names the template reads anywhere (`.Iteration` -> `Iteration`)."""
        return frozenset(f.path[0] for f in self._fields(self._nodes, conditions_only=False))

    @property
    def condition_variables(self) -> frozenset[str]:
        """Top-level names used as `if` conditions (the template's switches)."""
        return frozenset(f.path[0] for f in self._fields(self._nodes, conditions_only=True))

    def _fields(self, nodes: Sequence[_Node], conditions_only: bool) -> list[_Field]:
        found: list[_Field] = []
        for node in nodes:
            if isinstance(node, _Field) and not conditions_only:
                found.append(node)
            elif isinstance(node, _If):
                for cond, body in node.branches:
                    found.append(cond)
                    found.extend(self._fields(body, conditions_only))
                found.extend(self._fields(node.otherwise, conditions_only))
        return found

    def render(self, values: Mapping[str, Any]) -> str:
        """The rendered text; raises TemplateError for a variable that `values` lacks."""
        out: list[str] = []
        self._render(self._nodes, values, out)
        return "".join(out)

    def _render(self, nodes: Sequence[_Node], values: Mapping[str, Any], out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Field):
                out.append(self._show(node, self._lookup(node, values)))
            else:
                for cond, body in node.branches:
                    if self._lookup(cond, values):
                        self._render(body, values, out)
                        break
                else:
                    self._render(node.otherwise, values, out)

    def _lookup(self, ref: _Field, values: Mapping[str, Any]) -> Any:
        current: Any = values
        for depth, name in enumerate(ref.path):
            if not isinstance(current, Mapping):
                parent = "." + ".".join(ref.path[:depth])
                raise TemplateError(f"{self.source}:{ref.line}: cannot read {ref.shown}: {parent} is not a mapping")
            if name not in current:
                known = ", ".join(sorted(str(k) for k in current)) or "none"
                raise TemplateError(f"{self.source}:{ref.line}: variable {ref.shown} is not defined (defined: {known})")
            current = current[name]
        return current

    def _show(self, ref: _Field, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return value
        if isinstance(value, int | Decimal):
            return str(value)
        if isinstance(value, float):
            return _go_float(value)
        what = "null" if value is None else type(value).__name__
        raise TemplateError(
            f"{self.source}:{ref.line}: {ref.shown} is {what}; a template can print only strings, numbers and booleans"
        )


def render_template(text: str, values: Mapping[str, Any], source: str = "<template>") -> str:
    """Parse and render `text` in one step (see Template)."""
    return Template(text, source).render(values)


# -- kube-burner configs -----------------------------------------------------------------------
