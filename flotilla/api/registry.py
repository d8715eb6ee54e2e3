"""The kind registry: which kinds exist, in which versions, and how versions convert.

Each kind has one *internal* version (the first in `versions`, the newest) in which it is stored
and handed to policies; every other served version converts to and from it. The registry also
carries what a client needs to address and print a kind (plural, short names, printer columns).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flotilla.api.base import Resource

JSONDict = dict[str, Any]


def _identity(obj: JSONDict) -> JSONDict:
    return obj


@dataclass(frozen=True)
class Version:
    """One served version of a kind: the model that validates it and its conversions."""

    name: str
    model: type[Resource]
    to_internal: Callable[[JSONDict], JSONDict] = _identity
    from_internal: Callable[[JSONDict], JSONDict] = _identity


@dataclass(frozen=True)
class Column:
    """A printer column, like a CRD's additionalPrinterColumns; `wide` ones show with -o wide."""

    name: str
    value: Callable[[JSONDict], Any]
    wide: bool = False


@dataclass(frozen=True)
class Kind:
    group: str
    kind: str
    plural: str
    namespaced: bool
    versions: tuple[Version, ...]
    short_names: tuple[str, ...] = ()
    has_status: bool = True
    columns: tuple[Column, ...] = ()
    # Values never printed by the CLI (Secret data).
    sensitive_fields: tuple[str, ...] = field(default=())

    @property
    def internal(self) -> Version:
        return self.versions[0]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def api_version(self, version: str | None = None) -> str:
        v = version or self.internal.name
        return f"{self.group}/{v}" if self.group else v

    def version(self, name: str) -> Version | None:
        return next((v for v in self.versions if v.name == name), None)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def split_api_version(api_version: str) -> tuple[str, str]:
    """`kueue.x-k8s.io/v1beta2` -> (group, version); `v1` -> ("", "v1")."""
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return group, version
    return "", api_version


class UnknownKind(LookupError):
    """No such kind, or not in that version."""


class Registry:
    """Maps apiVersion/kind, plurals and short names to Kind entries."""

    def __init__(self, kinds: Iterable[Kind] = ()) -> None:
        self._by_group_kind: dict[tuple[str, str], Kind] = {}
        self._by_group_plural: dict[tuple[str, str], Kind] = {}
        for k in kinds:
            self.register(k)

    def register(self, kind: Kind) -> Kind:
        key = (kind.group, kind.kind)
        if key in self._by_group_kind:
            raise ValueError(f"kind {kind.kind} in group {kind.group!r} registered twice")
        self._by_group_kind[key] = kind
        self._by_group_plural[(kind.group, kind.plural)] = kind
        return kind

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._by_group_kind.values())

    def lookup(self, api_version: str, kind: str) -> tuple[Kind, Version]:
        group, version = split_api_version(api_version)
        entry = self._by_group_kind.get((group, kind))
        if entry is None:
            elsewhere = sorted(k.api_version() for k in self if k.kind == kind)
            if elsewhere:
                raise UnknownKind(f'{kind} is not in apiVersion "{api_version}"; use apiVersion: {elsewhere[0]}')
            versions = {k.kind: k.api_version() for k in self}
            close = difflib.get_close_matches(kind, sorted(versions), n=1, cutoff=0.8)
            if close:
                raise UnknownKind(
                    f'unknown kind "{kind}" in apiVersion "{api_version}"; '
                    f'did you mean "{close[0]}" ({versions[close[0]]})?'
                )
            known = sorted(f"{k.kind} ({k.api_version()})" for k in self)
            raise UnknownKind(f'unknown kind "{kind}" in apiVersion "{api_version}"; known kinds: ' + ", ".join(known))
        v = entry.version(version)
        if v is None:
            served = ", ".join(entry.api_version(x.name) for x in entry.versions)
            raise UnknownKind(f'{kind} is not served in apiVersion "{api_version}"; use one of: {served}')
        return entry, v

    def by_plural(self, group: str, plural: str) -> Kind:
        entry = self._by_group_plural.get((group, plural))
        if entry is None:
            raise UnknownKind(f'the server has no resource "{plural}" in group "{group or "core"}"')
        return entry

    def resolve(self, name: str) -> Kind:
        """Resolve what a user types (`cq`, `clusterqueues`, `ClusterQueue`, `jobs.batch`)."""
        wanted = name.strip()
        lowered = wanted.lower()
        matches = [
            k
            for k in self
            if lowered in (k.plural, k.singular, k.kind.lower(), k.qualified, f"{k.singular}.{k.group}")
            or lowered in k.short_names
        ]
        if not matches:
            known = sorted({k.plural for k in self} | {s for k in self for s in k.short_names})
            raise UnknownKind(f'unknown resource type "{name}"; known: ' + ", ".join(known))
        if len(matches) > 1:
            names = ", ".join(sorted(k.qualified for k in matches))
            raise UnknownKind(f'"{name}" is ambiguous ({names}); use the qualified name')
        return matches[0]
