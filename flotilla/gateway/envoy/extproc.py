"""Flotilla as Envoy's endpoint picker: an `envoy.service.ext_proc.v3.ExternalProcessor` gRPC server.

One `Process` stream per HTTP request. Envoy's ext_proc filter (configured by `config.build_config`)
sends the request headers, then the whole request body (BUFFERED), then the response headers:

- request headers: answered with an empty HeadersResponse (the body follows); a request without a
  body (`end_of_stream` on the headers) is picked here, with an empty body.
- request body: `pick(headers, body)` is awaited once the body is complete (`end_of_stream`).
  BUFFERED sends one message. Chunks (STREAMED) are answered at once and accumulated, so the
  protocol holds, but in STREAMED mode Envoy has already sent the headers upstream by then and the
  pick cannot move the request: the config uses BUFFERED. FULL_DUPLEX_STREAMED (GAIE's choice,
  which echoes the body back as `streamed_response`) is not implemented.
  A routed decision answers with a header mutation setting `x-gateway-destination-endpoint` (read
  by Envoy's ORIGINAL_DST cluster), the same address as dynamic metadata under `envoy.lb` (the GAIE
  endpoint-picker protocol asks for both), and `clear_route_cache` so that Envoy matches the route
  again, now with the header. A rejection answers with an ImmediateResponse (status, JSON body).
- response headers: `x-gateway-destination-endpoint-served` is set to the endpoint that served
  (the `upstream.address` attribute when Envoy sends it, else the picked address), plus the
  decision's extra headers.
- end: Envoy keeps the stream open until the HTTP request is over (the response's last byte sent,
  or the request reset) and then closes it; a routed decision's `on_finish(status)` is called then,
  once, with the response's `:status` (None when no response headers came).

The picker decides; this module only speaks the protocol. An exception from `pick` aborts the
stream, so Envoy applies the filter's failure mode (FailOpen: the fallback cluster; FailClose: 503).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from flotilla.gateway.requests import openai_error

log = logging.getLogger("flotilla.gateway.envoy")

DESTINATION_HEADER = "x-gateway-destination-endpoint"
SERVED_HEADER = "x-gateway-destination-endpoint-served"
METADATA_NAMESPACE = "envoy.lb"
# Envoy puts the values of `request_attributes` / `response_attributes` under the filter's name.
ATTRIBUTES_KEY = "envoy.filters.http.ext_proc"
UPSTREAM_ADDRESS = "upstream.address"
# The response-code details of the picker's immediate responses (access log, local reply mapping).
PICKER_DETAILS = "flotilla_picker"


def openai_error_body(status: int, message: str, param: str | None = None) -> bytes:
    """The Python front door's error shape (`flotilla.gateway.requests.openai_error`), as bytes."""
    return json.dumps(openai_error(status, message, param), separators=(",", ":")).encode()


def _check_address(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"PickDecision.address must be ip:port (e.g. 10.0.0.7:8000), got {address!r}")


@dataclass(frozen=True)
class PickDecision:
    """What the picker decided for one request: exactly one of

    - `address`: the endpoint (`ip:port`) Envoy forwards the request to;
    - `status`: an immediate response with this HTTP status (e.g. 429 shed, 503 no ready endpoint,
      404 unknown model) and `body` (build one with `reject`, an OpenAI-shaped JSON error).

    `headers` are extra response headers: added to the upstream's response, or sent with the
    immediate response. `on_finish(status)` (routed decisions) is called once when Envoy closes the
    request's stream, i.e. when the HTTP request is over, with the response's status (None: none came).
    """

    address: str | None = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    on_finish: Callable[[int | None], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.address is None) == (self.status is None):
            raise ValueError("PickDecision needs exactly one of address (route) or status (immediate response)")
        if self.address is not None:
            _check_address(self.address)
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError(f"PickDecision.status must be an HTTP status in 200..599, got {self.status}")

    @classmethod
    def route(
        cls,
        address: str,
        headers: Mapping[str, str] | None = None,
        on_finish: Callable[[int | None], None] | None = None,
    ) -> PickDecision:
        """Forward the request to `address` (`ip:port`); `on_finish(status)` when the request is over."""
        return cls(address=address, headers=dict(headers or {}), on_finish=on_finish)

    @classmethod
    def reject(
        cls, status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> PickDecision:
        """Answer the client at once with `status` and an OpenAI-shaped JSON error."""
        return cls(
            status=status,
            headers={"content-type": "application/json", **(headers or {})},
            body=openai_error_body(status, message, param),
        )


PickFn = Callable[[Mapping[str, str], bytes], Awaitable[PickDecision]]


def header_map(headers: pb.HttpHeaders) -> dict[str, str]:
    """Envoy's header list as a dict (lower-case names, pseudo-headers such as `:path` included);
    a repeated header's values are joined with ", ". Envoy sends `raw_value` (bytes); older
    versions sent `value`."""
    out: dict[str, str] = {}
    for h in headers.headers.headers:
        value = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
        out[h.key] = f"{out[h.key]}, {value}" if h.key in out else value
    return out


def _status(headers: pb.HttpHeaders) -> int | None:
    value = header_map(headers).get(":status", "")
    return int(value) if value.isdigit() else None


def _set_headers(mutation: pb.HeaderMutation, headers: Mapping[str, str]) -> None:
    for key, value in headers.items():
        mutation.set_headers.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=key.lower(), raw_value=value.encode()),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        )


def routed(address: str, after_body: bool) -> pb.ProcessingResponse:
    """The answer that sends the request to `address`: header, `envoy.lb` metadata, route re-match."""
    common = pb.CommonResponse(clear_route_cache=True)
    _set_headers(common.header_mutation, {DESTINATION_HEADER: address})
    response = (
        pb.ProcessingResponse(request_body=pb.BodyResponse(response=common))
        if after_body
        else pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=common))
    )
    response.dynamic_metadata.update({METADATA_NAMESPACE: {DESTINATION_HEADER: address}})
    return response


def immediate(decision: PickDecision) -> pb.ProcessingResponse:
    """The answer that ends the request at Envoy with the decision's status, headers and body."""
    assert decision.status is not None
    answer = pb.ImmediateResponse(body=decision.body, details=f"{PICKER_DETAILS}_{decision.status}")
    answer.status.code = decision.status  # envoy.type.v3.StatusCode numbers are the HTTP codes
    _set_headers(answer.headers, decision.headers)
    return pb.ProcessingResponse(immediate_response=answer)


def served_address(request: pb.ProcessingRequest, picked: str | None) -> str | None:
    """The endpoint that served: Envoy's `upstream.address` attribute, else what was picked."""
    attributes = request.attributes.get(ATTRIBUTES_KEY)
    if attributes is not None and UPSTREAM_ADDRESS in attributes.fields:
        value = attributes.fields[UPSTREAM_ADDRESS].string_value
        if value:
            return str(value)
    return picked


@dataclass
class _Stream:
    """What one HTTP request's stream remembers between messages."""

    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    decision: PickDecision | None = None
    status: int | None = None  # the response's :status, from the response headers

    def finish(self) -> None:
        """Tell the decision's `on_finish` that the request is over (once)."""
        decision, self.decision = self.decision, None
        if decision is not None and decision.on_finish is not None:
            try:
                decision.on_finish(self.status)
            except Exception:
                log.exception("on_finish failed for %s", self.headers.get(":path", "?"))


class ExtProcServicer(pb_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """ExternalProcessor.Process over an injected `pick` callback."""

    def __init__(self, pick: PickFn) -> None:
        self._pick = pick

    async def Process(
        self, requests: AsyncIterator[pb.ProcessingRequest], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.ProcessingResponse]:
        stream = _Stream()
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "request_headers":
                    stream.headers = header_map(request.request_headers)
                    if request.request_headers.end_of_stream:
                        yield await self._decide(stream, after_body=False, context=context)
                    else:
                        yield pb.ProcessingResponse(request_headers=pb.HeadersResponse())
                elif kind == "request_body":
                    stream.body += request.request_body.body
                    if request.request_body.end_of_stream:
                        yield await self._decide(stream, after_body=True, context=context)
                    else:
                        yield pb.ProcessingResponse(request_body=pb.BodyResponse())
                elif kind == "response_headers":
                    stream.status = _status(request.response_headers)
                    yield self._response_headers(request, stream)
                elif kind == "response_body":
                    yield pb.ProcessingResponse(response_body=pb.BodyResponse())
                elif kind == "request_trailers":
                    yield pb.ProcessingResponse(request_trailers=pb.TrailersResponse())
                elif kind == "response_trailers":
                    yield pb.ProcessingResponse(response_trailers=pb.TrailersResponse())
        finally:
            stream.finish()  # Envoy closed the stream (or it broke): the HTTP request is over

    async def _decide(
        self, stream: _Stream, after_body: bool, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ProcessingResponse:
        try:
            decision = await self._pick(stream.headers, bytes(stream.body))
        except Exception as exc:
            # Let Envoy apply failure_mode_allow: the fallback cluster (FailOpen) or a 503 (FailClose).
            log.exception("the endpoint picker failed for %s", stream.headers.get(":path", "?"))
            await context.abort(grpc.StatusCode.INTERNAL, f"endpoint picker failed: {exc}")
            raise  # unreachable: abort raises
        stream.decision = decision
        if decision.address is None:
            return immediate(decision)
        return routed(decision.address, after_body)

    @staticmethod
    def _response_headers(request: pb.ProcessingRequest, stream: _Stream) -> pb.ProcessingResponse:
        decision = stream.decision
        headers = dict(decision.headers) if decision is not None else {}
        served = served_address(request, decision.address if decision is not None else None)
        if served is not None:
            headers[SERVED_HEADER] = served
        common = pb.CommonResponse()
        _set_headers(common.header_mutation, headers)
        return pb.ProcessingResponse(response_headers=pb.HeadersResponse(response=common))


@dataclass
class ExtProcServer:
    """A running picker: `address` is what Envoy's grpc_service points at."""

    server: grpc.aio.Server
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop accepting streams; open streams get `grace` seconds to finish."""
        await self.server.stop(grace)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def serve_extproc(pick: PickFn, host: str = "127.0.0.1", port: int = 0) -> ExtProcServer:
    """Start the ExternalProcessor gRPC server on `host:port` (0: a free port) and return it.
    Plaintext: meant for loopback (Envoy beside the picker), as GAIE's EPP without TLS."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_ExternalProcessorServicer_to_server(ExtProcServicer(pick), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"the endpoint picker could not listen on {host}:{port}")
    await server.start()
    return ExtProcServer(server=server, host=host, port=bound)
