"""The embedded control plane's HTTP API: Kubernetes-shaped paths over the resource service.

    /api/v1/{plural}[/{name}[/status]]                       core, cluster-scoped or all namespaces
    /api/v1/namespaces/{ns}/{plural}[/{name}[/status]]       core, namespaced
    /apis/{group}/{version}/...                              the same shapes for other groups
    /apis/flotilla.dev/v1/apply                              apply many documents in one transaction

Errors are metav1.Status objects with Kubernetes' codes (400, 404, 409, 410, 422).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import yaml
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flotilla import __version__
from flotilla.api.errors import ManifestErrors
from flotilla.api.labels import SelectorError, parse_selector
from flotilla.api.registry import Kind, UnknownKind
from flotilla.server.metrics import ApiMetrics
from flotilla.server.status import ApiError, bad_request, invalid, not_found
from flotilla.store import StoreError
from flotilla.store.service import ResourceService, resource_type

JSON = dict[str, Any]
APPLY_PATH = "/apis/flotilla.dev/v1/apply"


def _error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.to_status(), status_code=err.code)


def _from_store(exc: StoreError) -> ApiError:
    return ApiError(exc.http_status, exc.reason, exc.message, kind=exc.kind, name=exc.name)


async def _read_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise bad_request("the request body is empty; send a JSON (or YAML) object")
    ctype = request.headers.get("content-type", "application/json")
    try:
        if "yaml" in ctype:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the request body is not valid {'YAML' if 'yaml' in ctype else 'JSON'}: {exc}") from None


def create_app(
    service: ResourceService,
    *,
    ready: Callable[[], bool] | None = None,
    pod_logs: Callable[[str, str, str, int | None], str | None] | None = None,
) -> FastAPI:
    """Build the API app around a resource service (the store and registry it wraps).
    `pod_logs(namespace, pod, container, tail_lines)` reads a container's output (the runtime's;
    None: none yet) for `GET .../pods/NAME/log`."""
    app = FastAPI(
        title="Flotilla control plane",
        version=__version__,
        description="Kubernetes-shaped API over Flotilla's embedded store (Kueue, batch/v1, GAIE kinds).",
    )
    metrics = ApiMetrics()
    metrics.track_objects(service.store.count_by_kind)
    app.state.service = service
    app.state.metrics = metrics

    def resolve(group: str, version: str, plural: str) -> Kind:
        try:
            return service.kind_for(group, version, plural)
        except UnknownKind as exc:
            raise not_found(str(exc)) from None

    async def guarded(verb: str, resource: str, call: Callable[[], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        try:
            response = await call()
        except ApiError as err:
            response = _error_response(err)
        except ManifestErrors as exc:
            response = _error_response(invalid(exc))
        except StoreError as exc:
            response = _error_response(_from_store(exc))
        metrics.requests.labels(verb, resource, str(response.status_code)).inc()
        metrics.latency.labels(verb, resource).observe(time.perf_counter() - start)
        return response

    # -- health, metrics, discovery ------------------------------------------------------------------
    @app.get("/healthz", response_class=PlainTextResponse, tags=["health"])
    def healthz() -> str:
        return "ok"

    @app.get("/livez", response_class=PlainTextResponse, tags=["health"])
    def livez() -> str:
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse, tags=["health"])
    def readyz() -> Response:
        if ready is not None and not ready():
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse("ok")

    @app.get("/metrics", tags=["health"])
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/version", tags=["discovery"])
    def version() -> JSON:
        return {"gitVersion": f"flotilla-{__version__}", "platform": "embedded"}

    @app.get("/apis", tags=["discovery"])
    def api_groups() -> JSON:
        groups: dict[str, list[str]] = {}
        for kind in service.registry:
            if kind.group:
                versions = groups.setdefault(kind.group, [])
                versions.extend(v.name for v in kind.versions if v.name not in versions)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
                for g, vs in sorted(groups.items())
            ],
        }

    def resource_list(group: str, version: str) -> JSON:
        resources = [
            {
                "name": k.plural,
                "singularName": k.singular,
                "namespaced": k.namespaced,
                "kind": k.kind,
                "shortNames": list(k.short_names),
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for k in service.registry
            if k.group == group and k.version(version) is not None
        ]
        if not resources:
            raise not_found(f"the server has no API group version {group or 'core'}/{version}")
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    @app.get("/api/v1", tags=["discovery"])
    async def core_resources() -> Response:
        async def run() -> Response:
            return _json(resource_list("", "v1"))

        return await guarded("get", "discovery", run)

    @app.get("/apis/{group}/{version}", tags=["discovery"])
    async def group_resources(group: str, version: str) -> Response:
        async def run() -> Response:
            return _json(resource_list(group, version))

        return await guarded("get", "discovery", run)

    # -- apply (many documents, one transaction) --------------------------------------------------
    @app.get("/api/v1/namespaces/{namespace}/pods/{name}/log", tags=["resources"], response_class=PlainTextResponse)
    async def pod_log(
        namespace: str, name: str, container: str | None = None, tailLines: int | None = None
    ) -> Response:
        """A container's output, as `kubectl logs` reads it (the only container by default)."""

        async def run() -> Response:
            pod = service.get(service.registry.resolve("pods"), name, namespace)
            names = [c["name"] for c in pod["spec"]["containers"]]
            chosen = container or (names[0] if len(names) == 1 else None)
            if chosen is None:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: {names}")
            if chosen not in names:
                raise bad_request(f"container {chosen} is not valid for pod {name}")
            if tailLines is not None and tailLines < 0:
                raise bad_request("tailLines must be >= 0")
            text = None if pod_logs is None else await asyncio.to_thread(pod_logs, namespace, name, chosen, tailLines)
            if text is None:
                raise bad_request(f'container "{chosen}" in pod "{name}" has not started; no logs yet')
            return PlainTextResponse(text)

        return await guarded("get", "pods/log", run)

    @app.post(APPLY_PATH, tags=["apply"])
    async def apply(request: Request) -> Response:
        async def run() -> Response:
            body = await _read_body(request)
            docs = body.get("items") if isinstance(body, dict) else None
            if not isinstance(docs, list):
                raise bad_request('send {"items": [{"source": ..., "index": ..., "object": {...}}, ...]}')
            triples = []
            for i, d in enumerate(docs):
                if not isinstance(d, dict) or "object" not in d:
                    raise bad_request(f"items[{i}] must be an object with an 'object' field")
                triples.append((str(d.get("source", "request")), int(d.get("index", i + 1)), d["object"]))
            namespace = request.query_params.get("namespace")
            results = service.apply_many(triples, default_namespace=namespace)
            return _json(
                {
                    "kind": "ApplyResult",
                    "apiVersion": "flotilla.dev/v1",
                    "items": [
                        {
                            "kind": r.kind.kind,
                            "group": r.kind.group,
                            "name": r.object["metadata"]["name"],
                            "namespace": r.object["metadata"].get("namespace"),
                            "action": r.action,
                            "resourceVersion": r.object["metadata"]["resourceVersion"],
                        }
                        for r in results
                    ],
                }
            )

        return await guarded("apply", "many", run)

    # -- resources ----------------------------------------------------------------------------------
    def register(prefix: str, group_of: Callable[[dict[str, str]], str]) -> None:
        async def collection(request: Request) -> Response:
            p = request.path_params
            group, version = group_of(p), p["version"]
            kind = resolve(group, version, p["plural"])
            namespace = p.get("namespace")
            if request.method == "GET":
                return await _list_or_watch(service, metrics, kind, version, namespace, request)
            if request.method == "POST":
                body = await _read_body(request)
                if kind.namespaced and namespace is None:
                    raise bad_request(f"{kind.kind} is namespaced; POST to {prefix}/namespaces/NAMESPACE/{kind.plural}")
                _check_body_namespace(body, namespace)
                created = service.create(body, kind, namespace)
                return _json(service.out(kind, created, version), 201)
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on a collection")

        async def item(request: Request, sub: str | None = None) -> Response:
            p = request.path_params
            group, version = group_of(p), p["version"]
            kind = resolve(group, version, p["plural"])
            namespace, name = p.get("namespace"), p["name"]
            if kind.namespaced != (namespace is not None):
                where = "under /namespaces/NAMESPACE/" if kind.namespaced else "without /namespaces/NAMESPACE/"
                raise not_found(
                    f"{kind.kind} is {'namespaced' if kind.namespaced else 'cluster-scoped'}; address it {where}"
                )
            if request.method == "GET":
                return _json(service.get(kind, name, namespace, version))
            if request.method == "DELETE":
                return _json(service.out(kind, service.delete(kind, name, namespace), version))
            if request.method == "PATCH":
                patch = await _read_body(request)
                if not isinstance(patch, dict):
                    raise bad_request("a merge patch must be a JSON object")
                ctype = request.headers.get("content-type", "")
                if "json-patch+json" in ctype and "merge" not in ctype:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "JSON Patch is not supported; send application/merge-patch+json",
                    )
                return _json(service.out(kind, service.patch(kind, name, namespace, patch, sub), version))
            if request.method == "PUT":
                body = await _read_body(request)
                _check_body_namespace(body, namespace)
                meta = body.get("metadata") if isinstance(body, dict) else None
                if isinstance(meta, dict) and meta.get("name") not in (None, name):
                    raise bad_request(f'the name in the body ("{meta.get("name")}") does not match the URL ("{name}")')
                if isinstance(meta, dict):
                    meta["name"] = name
                    if namespace:
                        meta["namespace"] = namespace
                # The body may be in any served version: it is validated against that version's schema.
                updated = service.update_status(body, kind) if sub else service.update(body, kind)
                return _json(service.out(kind, updated, version))
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported here")

        def route(path: str, handler: Callable[[Request], Awaitable[Response]], methods: list[str], what: str) -> None:
            async def endpoint(request: Request) -> Response:
                return await guarded(
                    request.method.lower(), request.path_params.get("plural", "?"), lambda: handler(request)
                )

            scope = "namespaced" if "{namespace}" in path else "cluster"
            group = "core" if path.startswith("/api/") else "group"
            for method in methods:
                app.add_api_route(
                    path,
                    endpoint,
                    methods=[method],
                    tags=["resources"],
                    operation_id=f"{method.lower()}_{group}_{scope}_{what}",
                    summary=f"{method} {what} ({scope}, {group} API)",
                )

        async def status(request: Request) -> Response:
            return await item(request, "status")

        route(prefix + "/{plural}/{name}/status", status, ["GET", "PUT", "PATCH"], "status")
        route(prefix + "/namespaces/{namespace}/{plural}/{name}/status", status, ["GET", "PUT", "PATCH"], "status")
        route(
            prefix + "/namespaces/{namespace}/{plural}/{name}",
            item,
            ["GET", "PUT", "PATCH", "DELETE"],
            "object",
        )
        route(prefix + "/namespaces/{namespace}/{plural}", collection, ["GET", "POST"], "collection")
        route(prefix + "/{plural}/{name}", item, ["GET", "PUT", "PATCH", "DELETE"], "object")
        route(prefix + "/{plural}", collection, ["GET", "POST"], "collection")

    register("/api/{version}", lambda p: "")
    register("/apis/{group}/{version}", lambda p: p["group"])
    return app


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _check_body_namespace(body: Any, namespace: str | None) -> None:
    if not isinstance(body, dict) or namespace is None:
        return
    meta = body.get("metadata")
    if isinstance(meta, dict) and meta.get("namespace") not in (None, namespace):
        raise bad_request(
            f'the namespace of the object ("{meta.get("namespace")}") does not match '
            f'the namespace of the request ("{namespace}")'
        )


async def _list_or_watch(
    service: ResourceService,
    metrics: ApiMetrics,
    kind: Kind,
    version: str,
    namespace: str | None,
    request: Request,
) -> Response:
    q = request.query_params
    try:
        selector = parse_selector(q.get("labelSelector"))
    except SelectorError as exc:
        raise bad_request(str(exc)) from None
    field_name = None
    if fs := q.get("fieldSelector"):
        key, _, value = fs.partition("=")
        if key != "metadata.name":
            raise bad_request("only fieldSelector=metadata.name=NAME is supported")
        field_name = value.lstrip("=")

    def keep(obj: JSON) -> bool:
        return field_name is None or obj["metadata"]["name"] == field_name

    if q.get("watch") in ("1", "true", "True"):
        return _watch(service, metrics, kind, version, namespace, selector.matches, keep, q)
    items, rv = service.list_objects(kind, namespace, selector.matches, version)
    list_kind = f"{kind.kind}List"
    return _json(
        {
            "kind": list_kind,
            "apiVersion": kind.api_version(version),
            "metadata": {"resourceVersion": rv},
            "items": [o for o in items if keep(o)],
        }
    )


def _watch(
    service: ResourceService,
    metrics: ApiMetrics,
    kind: Kind,
    version: str,
    namespace: str | None,
    matches: Callable[[dict[str, str] | None], bool],
    keep: Callable[[JSON], bool],
    q: Any,
) -> Response:
    since = q.get("resourceVersion") or None
    timeout = float(q.get("timeoutSeconds") or 0) or None
    initial: list[JSON] = []
    if since in (None, "0"):
        # Like Kubernetes: without a resourceVersion, a watch starts with ADDED for what exists.
        items, since = service.store.list(resource_type(kind), namespace, None)
        initial = items
    watch = service.watch(kind, namespace, since)  # raises Gone before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        gauge = metrics.watches.labels(kind.plural)
        gauge.inc()
        deadline = time.monotonic() + timeout if timeout else None
        try:
            for obj in initial:
                if matches(obj["metadata"].get("labels")) and keep(obj):
                    yield _event("ADDED", service.out(kind, obj, version))
            while deadline is None or time.monotonic() < deadline:
                # Events already there go in one trip to a worker thread and one write, so a busy
                # watch keeps up.
                events = await asyncio.to_thread(watch.next_events, 0.5)
                chunk = b"".join(
                    _event(e.type, service.out(kind, e.object, version))
                    for e in events
                    if matches(e.object["metadata"].get("labels")) and keep(e.object)
                )
                if chunk:
                    yield chunk
        finally:
            gauge.dec()
            watch.close()

    return StreamingResponse(stream(), media_type="application/json")


def _event(event_type: str, obj: JSON) -> bytes:
    return (json.dumps({"type": event_type, "object": obj}) + "\n").encode()
