"""The inference gateway's HTTP front door (the Python data plane): an OpenAI-compatible API.

    POST /v1/chat/completions        routed by model (or an HTTPRoute), streamed through as sent
    POST /v1/completions             idem
    POST /v1/audio/transcriptions    multipart, routed by its `model` field
    GET  /v1/models                  the union of the models every pool serves
    GET  /health                     200 with a summary of pools and endpoints
    GET  /metrics                    GAIE's and Flotilla's series (see metrics.py)
    any  other path                  routed when an HTTPRoute rule matches it, else 404

Errors the gateway answers itself are OpenAI-shaped (`{"error": {"message", "type", "param",
"code"}}`): 400 bad body, 404 unknown model or path, 413 body too large, 429 shed by flow control,
500 a route whose backend cannot be used, 503 no endpoint (or the picker is unavailable and the
pool fails closed), 504 no answer in time. The model server's own errors pass through unchanged.

    gateway = InferenceGateway(StaticEndpoints(["http://127.0.0.1:8000"]), default_scheduling())
    app = create_gateway_app(gateway)          # its lifespan starts and stops the gateway
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import Message, Receive, Scope, Send

from flotilla.gateway.dispatch import InferenceGateway
from flotilla.gateway.requests import GatewayError

log = logging.getLogger("flotilla.gateway")
OWN_PATHS = frozenset({"/health", "/metrics", "/v1/models"})  # GET and HEAD; any other request is routed


class GatewayApp(FastAPI):
    """FastAPI for the gateway's own routes (OWN_PATHS); every other request goes straight to
    `InferenceGateway.serve`, without the router and middleware stack (the hot path)."""

    gateway: InferenceGateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] in ("GET", "HEAD") and scope["path"] in OWN_PATHS):
            await super().__call__(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.gateway.serve(scope, receive, send_tracked)
        except Exception:
            if not started:  # as Starlette's ServerErrorMiddleware: a 500, then the server logs the error
                await GatewayError(500, "Internal Server Error").response()(scope, receive, send)
            raise


def create_gateway_app(gateway: InferenceGateway) -> FastAPI:
    """The app serving `gateway` (a FastAPI app); its lifespan starts and stops it."""
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = GatewayApp(
        title="Flotilla inference gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.gateway = app.state.gateway = gateway

    @app.get("/health")
    async def health() -> JSONResponse:
        pools = gateway.topology.pools.values()
        endpoints = gateway.topology.endpoints()
        fresh = sum(1 for e in endpoints if gateway.data.metrics(e.address).fresh)
        body: dict[str, Any] = {
            "status": "ok",
            "pools": {p.name: len(p.endpoints) for p in pools},
            "endpoints": len(endpoints),
            "fresh_endpoints": fresh,
        }
        return JSONResponse(body)

    @app.get("/metrics")
    async def metrics() -> Response:
        topology = gateway.topology
        gateway.metrics.observe_pools(topology.pools.values(), gateway.data.metrics, gateway.data.in_flight)
        return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "flotilla", "pools": pools}
            for name, pools in gateway.models().items()
        ]
        return {"object": "list", "data": data}

    return app
