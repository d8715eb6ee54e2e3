"""How the store addresses a kind of object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    """A kind the store can hold.

    The store keys objects by (group, kind), never by version: callers always hand it objects in
    one internal version per kind, and `apiVersion` is stored exactly as given.
    """

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    has_status: bool = True  # a status subresource: update() keeps status, update_status() sets it

    @property
    def api_version(self) -> str:
        """`apiVersion` as Kubernetes spells it: "v1" for core, "group/version" otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        """ "Kind.group" (or just "Kind" for core), as Kubernetes names a kind in messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind
