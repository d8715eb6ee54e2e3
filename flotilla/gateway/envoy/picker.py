"""Flotilla's endpoint picker for Envoy: the ext_proc `pick(headers, body)` callback, made of the
front door's own parts (one `InferenceGateway`: its topology, data layer, scheduling, flow
controllers and metrics), so both data planes decide the same way.

For each request Envoy hands over (request headers and the whole, buffered body):

    GET /v1/models -> 200 with the union of the pools' models (answered by the picker itself)
    parse the body (400)  ->  HTTPRoute rule, else the pools serving the model (404, 500)
    -> 503 at once when no endpoint of those pools is fresh
    -> flow control: wait while the pool is saturated, 429 when shed (503 when waited too long)
    -> pick with the pool's scheduling profile (its failure mode when the profile raises; 503 when no
       endpoint is left)  ->  record prefix and session  ->  route to the chosen `ip:port`

Every refusal is an immediate response in OpenAI's error shape. In-flight accounting: the chosen
endpoint's count (`DataLayer.begin`), the flow controller's slot and GAIE's running-requests gauge
are taken at the pick and given back when Envoy closes the request's ext_proc stream, which it
does when the HTTP request is over: the response's last byte sent, or the request reset
(`PickDecision.on_finish`). The request's duration is counted from the pick to that moment.

What Envoy does not show the picker (response bodies are not sent to it, so SSE streams pass
through untouched): token counts and the time to the first token; those series stay empty here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qsl, urlsplit

from flotilla.gateway.dispatch import Admission, InferenceGateway
from flotilla.gateway.envoy.extproc import PickDecision
from flotilla.gateway.requests import GatewayError

MODELS_PATH = "/v1/models"
CLIENT_CLOSED = 499  # nginx's code for a request that ended without a response (metrics only)


@dataclass(frozen=True)
class RequestLine:
    """What the picker reads from Envoy's request headers: method, path, query, and the plain headers
    (lower-case names, no pseudo-headers, `host` from `:authority`) as the front door sees them."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


def request_line(envoy_headers: Mapping[str, str]) -> RequestLine:
    parts = urlsplit(envoy_headers.get(":path", "/"))
    headers = {k.lower(): v for k, v in envoy_headers.items() if not k.startswith(":")}
    authority = envoy_headers.get(":authority")
    if authority is not None:
        headers["host"] = authority
    return RequestLine(envoy_headers.get(":method", "GET"), parts.path, dict(parse_qsl(parts.query)), headers)


def reject(error: GatewayError) -> PickDecision:
    """The front door's GatewayError as Envoy's immediate response, in the same OpenAI shape."""
    return PickDecision.reject(error.status, error.message, error.param, error.headers)


class EnvoyPicker:
    """`await picker(headers, body) -> PickDecision`, over `gateway`'s state (start it first)."""

    def __init__(self, gateway: InferenceGateway, clock: Callable[[], float] = time.monotonic) -> None:
        self.gateway = gateway
        self._clock = clock
        self._created = int(time.time())

    async def __call__(self, envoy_headers: Mapping[str, str], body: bytes) -> PickDecision:
        line = request_line(envoy_headers)
        if line.method == "GET" and line.path == MODELS_PATH:
            return self.models()
        gw, model = self.gateway, ""
        try:
            parsed = await gw.parse(line.method, line.path, body, line.headers)
            model = parsed.model
            target = gw.resolve(line.method, line.path, line.headers, line.query, model)
        except GatewayError as exc:
            gw.metrics.requests.labels(model, model).inc()
            return self._refused(model, exc)
        ireq = gw.inference_request(parsed, line.headers, target)
        gw.metrics.requests.labels(model, model).inc()
        try:
            admission = await gw.admit(ireq, target)
        except GatewayError as exc:
            return self._refused(model, exc)
        try:
            chosen, _fallbacks = gw.pick(ireq, target)
        except GatewayError as exc:
            admission.release()
            return self._refused(model, exc)
        gw.record(ireq, chosen.address)
        gw.data.begin(chosen.address)
        gw.metrics.running.labels(model).inc()
        finish = partial(self._finished, chosen.address, model, admission, self._clock())
        return PickDecision.route(chosen.address, {"x-request-id": ireq.request_id}, on_finish=finish)

    def _refused(self, model: str, error: GatewayError) -> PickDecision:
        self.gateway.metrics.errors.labels(model, model, str(error.status)).inc()
        return reject(error)

    def _finished(self, address: str, model: str, admission: Admission, picked: float, status: int | None) -> None:
        """Envoy closed the request's stream: give back what the pick took, count the outcome."""
        gw = self.gateway
        gw.data.end(address)
        admission.release()
        gw.metrics.running.labels(model).dec()
        gw.metrics.finished(
            model,
            status or 0,
            str(CLIENT_CLOSED),
            completed=status is not None,
            elapsed=self._clock() - picked,
            ttft=None,
            input_tokens=0,
            output_tokens=0,
        )

    def models(self) -> PickDecision:
        """GET /v1/models: every model the pools serve, as the front door lists them."""
        data = [
            {"id": name, "object": "model", "created": self._created, "owned_by": "flotilla", "pools": pools}
            for name, pools in self.gateway.models().items()
        ]
        body = json.dumps({"object": "list", "data": data}, separators=(",", ":")).encode()
        return PickDecision(status=200, headers={"content-type": "application/json"}, body=body)
