"""Errors raised by the state store.

Each error carries the object it is about (`kind`, `namespace`, `name`, any of which may be None)
and Kubernetes' `reason` and HTTP status, so an API server can map it to a `Status` without a
lookup table. Messages say what is wrong and what to do about it.
"""

from __future__ import annotations

from typing import ClassVar


class StoreError(Exception):
    """Base class of every error the store raises (also wraps SQLite failures)."""

    reason: ClassVar[str] = "InternalError"
    http_status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.namespace = namespace
        self.name = name


class NotFound(StoreError):
    """The object does not exist."""

    reason = "NotFound"
    http_status = 404


class AlreadyExists(StoreError):
    """An object with that kind, namespace and name already exists."""

    reason = "AlreadyExists"
    http_status = 409


class Conflict(StoreError):
    """Optimistic concurrency failed: the caller's resourceVersion is stale."""

    reason = "Conflict"
    http_status = 409


class Gone(StoreError):
    """A watch asked for events older than the retained event log (Kubernetes' 410 Expired)."""

    reason = "Expired"
    http_status = 410


class Invalid(StoreError):
    """The request cannot be applied as given (missing name, wrong scope, bad patch, ...)."""

    reason = "Invalid"
    http_status = 422
