"""Kubernetes `Status` errors: what the API returns when a request fails."""

from __future__ import annotations

from typing import Any

from flotilla.api.errors import ManifestErrors


class ApiError(Exception):
    """A failed request, rendered as a metav1.Status with the matching HTTP code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        kind: str | None = None,
        name: str | None = None,
        group: str | None = None,
        causes: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = {}
        if name:
            self.details["name"] = name
        if group:
            self.details["group"] = group
        if kind:
            self.details["kind"] = kind
        if causes:
            self.details["causes"] = causes

    def to_status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def not_found(message: str, kind: str | None = None, name: str | None = None) -> ApiError:
    return ApiError(404, "NotFound", message, kind=kind, name=name)


def invalid(exc: ManifestErrors, kind: str | None = None, name: str | None = None) -> ApiError:
    """422 Invalid, with one cause per field issue (as the Kubernetes API server reports them)."""
    causes = [
        {"reason": "FieldValueInvalid", "field": issue.path, "message": issue.message}
        for err in exc.errors
        for issue in err.issues
    ]
    return ApiError(422, "Invalid", str(exc), kind=kind, name=name, causes=causes)
