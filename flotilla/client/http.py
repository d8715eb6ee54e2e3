"""A small httpx client for the control plane's Kubernetes-shaped API."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from flotilla.api.registry import Kind

JSON = dict[str, Any]
DEFAULT_SERVER = "http://127.0.0.1:8470"
APPLY_PATH = "/apis/flotilla.dev/v1/apply"


def default_server_url() -> str:
    """`$FLOTILLA_SERVER`, else http://127.0.0.1:8470."""
    return os.environ.get("FLOTILLA_SERVER") or DEFAULT_SERVER


class ServerUnavailable(ConnectionError):
    """Nothing answers at the server URL."""

    def __init__(self, url: str) -> None:
        super().__init__(
            f"no Flotilla control plane answers at {url}.\n"
            "Start one with `flotilla up` (or pass --server URL / set FLOTILLA_SERVER)."
        )


class ApiError(RuntimeError):
    """The server answered with a Status failure."""

    def __init__(self, status: JSON, code: int) -> None:
        self.status = status
        self.code = code
        self.reason = str(status.get("reason", ""))
        super().__init__(str(status.get("message") or f"HTTP {code}"))

    @property
    def causes(self) -> list[JSON]:
        return list((self.status.get("details") or {}).get("causes") or [])


def collection_path(kind: Kind, namespace: str | None, version: str | None = None) -> str:
    v = version or kind.internal.name
    base = f"/apis/{kind.group}/{v}" if kind.group else f"/api/{v}"
    if kind.namespaced and namespace:
        return f"{base}/namespaces/{namespace}/{kind.plural}"
    return f"{base}/{kind.plural}"


def object_path(kind: Kind, name: str, namespace: str | None, version: str | None = None) -> str:
    return f"{collection_path(kind, namespace if kind.namespaced else None, version)}/{name}"


class FlotillaClient:
    """Talks to `flotilla up` over HTTP. Pass `transport` to use an in-process app in tests."""

    def __init__(
        self,
        server: str | None = None,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.server = (server or default_server_url()).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, transport=transport, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FlotillaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response, or ServerUnavailable / ApiError (the server's Status)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ServerUnavailable(self.server) from None
        if response.status_code >= 400:
            try:
                status = response.json()
            except ValueError:
                status = {"message": response.text or f"HTTP {response.status_code}"}
            raise ApiError(status if isinstance(status, dict) else {"message": str(status)}, response.status_code)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> JSON:
        response = self._send(method, path, **kwargs)
        return response.json() if response.content else {}

    def logs(self, namespace: str, pod: str, container: str | None = None, tail_lines: int | None = None) -> str:
        """A pod container's output (`GET /api/v1/namespaces/NS/pods/NAME/log`)."""
        params: dict[str, Any] = {}
        if container:
            params["container"] = container
        if tail_lines is not None:
            params["tailLines"] = tail_lines
        return self._send("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params=params).text

    def healthy(self) -> bool:
        try:
            return self._http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    # -- verbs ---------------------------------------------------------------------------------------
    def apply(self, documents: Sequence[tuple[str, int, JSON]], namespace: str | None = None) -> list[JSON]:
        """Create or update all documents in one transaction (all or nothing)."""
        items = [{"source": s, "index": i, "object": o} for s, i, o in documents]
        params = {"namespace": namespace} if namespace else None
        return list(self.request("POST", APPLY_PATH, json={"items": items}, params=params)["items"])

    def create(self, kind: Kind, obj: JSON, namespace: str | None = None) -> JSON:
        ns = namespace or obj.get("metadata", {}).get("namespace") or ("default" if kind.namespaced else None)
        return self.request("POST", collection_path(kind, ns), json=obj)

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> JSON:
        return self.request("GET", object_path(kind, name, namespace or "default"))

    def list(self, kind: Kind, namespace: str | None = None, selector: str | None = None) -> JSON:
        """List in one namespace, or across all namespaces when `namespace` is None."""
        params = {"labelSelector": selector} if selector else None
        return self.request("GET", collection_path(kind, namespace), params=params)

    def update(self, kind: Kind, obj: JSON, status: bool = False) -> JSON:
        meta = obj["metadata"]
        path = object_path(kind, meta["name"], meta.get("namespace") or "default") + ("/status" if status else "")
        return self.request("PUT", path, json=obj)

    def patch(self, kind: Kind, name: str, patch: JSON, namespace: str | None = None, status: bool = False) -> JSON:
        path = object_path(kind, name, namespace or "default") + ("/status" if status else "")
        return self.request(
            "PATCH", path, content=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"}
        )

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> JSON:
        return self.request("DELETE", object_path(kind, name, namespace or "default"))

    def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: float | None = None,
    ) -> Iterator[JSON]:
        """Stream watch events (`{"type": ..., "object": ...}`) until the server closes."""
        params: dict[str, str] = {"watch": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if timeout_seconds:
            params["timeoutSeconds"] = str(timeout_seconds)
        try:
            with self._http.stream("GET", collection_path(kind, namespace), params=params, timeout=None) as r:
                if r.status_code >= 400:
                    r.read()
                    raise ApiError(r.json(), r.status_code)
                for line in r.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.ConnectError:
            raise ServerUnavailable(self.server) from None
