"""Label selectors: the string form (`a=b,c!=d,e in (x,y),!f,g`) and the object form.

Semantics follow Kubernetes' `labels.Parse` and `metav1.LabelSelector`: all requirements must
hold; `!=` and `notin` also match objects that lack the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]

# A key is an optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class SelectorError(ValueError):
    """A label selector that cannot be parsed."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.operator == "Exists":
                parts.append(r.key)
            elif r.operator == "DoesNotExist":
                parts.append(f"!{r.key}")
            elif r.operator == "In" and len(r.values) == 1:
                parts.append(f"{r.key}={r.values[0]}")
            elif r.operator == "NotIn" and len(r.values) == 1:
                parts.append(f"{r.key}!={r.values[0]}")
            else:
                op = "in" if r.operator == "In" else "notin"
                parts.append(f"{r.key} {op} ({','.join(r.values)})")
        return ",".join(parts)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    parts.append("".join(current))
    return parts


def _check_key(key: str, text: str) -> str:
    prefix, slash, name = key.rpartition("/")
    prefix_ok = not slash or (0 < len(prefix) <= 253 and _PREFIX_RE.match(prefix) is not None)
    if not (prefix_ok and len(name) <= 63 and _NAME_RE.match(name)):
        raise SelectorError(
            f"invalid label key {key!r} in selector {text!r}: use an optional DNS prefix and '/', then a name of "
            "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return key


def _check_values(values: list[str], text: str) -> tuple[str, ...]:
    for v in values:
        if len(v) > 63 or not _VALUE_RE.match(v):
            raise SelectorError(
                f"invalid label value {v!r} in selector {text!r}: use at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )
    return tuple(values)


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")


def parse_selector(text: str | None) -> Selector:
    """Parse the string form used by `kubectl get -l` and `?labelSelector=`."""
    if text is None or not text.strip():
        return Selector()
    reqs: list[Requirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise SelectorError(f"empty requirement in selector {text!r}")
        if m := _SET_RE.match(part):
            values = [v.strip() for v in m.group("values").split(",") if v.strip()]
            if not values:
                raise SelectorError(
                    f"'{m.group('op')}' needs at least one value, as in a in (x,y), in selector {text!r}"
                )
            op: Operator = "In" if m.group("op") == "in" else "NotIn"
            reqs.append(Requirement(_check_key(m.group("key"), text), op, _check_values(values, text)))
        elif "!=" in part:
            key, value = (s.strip() for s in part.split("!=", 1))
            reqs.append(Requirement(_check_key(key, text), "NotIn", _check_values([value], text)))
        elif "==" in part or "=" in part:
            key, value = (s.strip() for s in re.split(r"==?", part, maxsplit=1))
            reqs.append(Requirement(_check_key(key, text), "In", _check_values([value], text)))
        elif part.startswith("!"):
            reqs.append(Requirement(_check_key(part[1:].strip(), text), "DoesNotExist"))
        else:
            reqs.append(Requirement(_check_key(part, text), "Exists"))
    return Selector(tuple(reqs))


def selector_from_object(
    match_labels: Mapping[str, str] | None,
    match_expressions: list[tuple[str, str, list[str]]] | None,
) -> Selector:
    """Build a Selector from a metav1.LabelSelector's parts (matchLabels, matchExpressions)."""
    reqs = [Requirement(k, "In", (v,)) for k, v in sorted((match_labels or {}).items())]
    for key, op, values in match_expressions or []:
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise SelectorError(f"unknown operator {op!r}; use In, NotIn, Exists or DoesNotExist")
        reqs.append(Requirement(key, op, tuple(values)))  # type: ignore[arg-type]
    return Selector(tuple(reqs))
