"""The ExternalProcessor server over a real gRPC channel, without Envoy: what it answers to each
message of the protocol, and PickDecision's rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from flotilla.gateway.envoy import DESTINATION_HEADER, SERVED_HEADER, PickDecision, serve_extproc
from flotilla.gateway.envoy.extproc import ATTRIBUTES_KEY, UPSTREAM_ADDRESS, PickFn, header_map

A = "10.0.0.7:8000"


def headers(end_of_stream: bool = False, **values: str) -> pb.ProcessingRequest:
    pairs = {":path": "/v1/chat/completions", ":method": "POST", **values}
    header_list = [base_pb2.HeaderValue(key=k.replace("_", "-"), raw_value=v.encode()) for k, v in pairs.items()]
    message = pb.HttpHeaders(headers=base_pb2.HeaderMap(headers=header_list), end_of_stream=end_of_stream)
    return pb.ProcessingRequest(request_headers=message)


def body(data: bytes, end_of_stream: bool = True) -> pb.ProcessingRequest:
    return pb.ProcessingRequest(request_body=pb.HttpBody(body=data, end_of_stream=end_of_stream))


def response_headers(upstream: str | None = None) -> pb.ProcessingRequest:
    request = pb.ProcessingRequest(response_headers=pb.HttpHeaders())
    if upstream is not None:
        request.attributes[ATTRIBUTES_KEY].update({UPSTREAM_ADDRESS: upstream})
    return request


def exchange(pick: PickFn, requests: Sequence[pb.ProcessingRequest]) -> list[pb.ProcessingResponse]:
    """Sends the requests on one Process stream (each after the previous answer), returns the answers."""

    async def main() -> list[pb.ProcessingResponse]:
        server = await serve_extproc(pick)
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                call = pb_grpc.ExternalProcessorStub(channel).Process()
                answers = []
                for request in requests:
                    await call.write(request)
                    answers.append(await call.read())
                await call.done_writing()
                return answers
        finally:
            await server.stop(0)

    return asyncio.run(main())


class Recorder:
    def __init__(self, decision: PickDecision) -> None:
        self.decision = decision
        self.calls: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, headers: Mapping[str, str], body: bytes) -> PickDecision:
        self.calls.append((dict(headers), body))
        return self.decision


def set_headers(mutation: pb.HeaderMutation) -> dict[str, str]:
    return {h.header.key: h.header.raw_value.decode() for h in mutation.set_headers}


def test_the_body_is_awaited_then_the_picked_address_is_set_as_header_and_metadata() -> None:
    pick = Recorder(PickDecision.route(A))
    answers = exchange(pick, [headers(x_user="u1"), body(b'{"model":"m"}'), response_headers(A)])

    assert answers[0].WhichOneof("response") == "request_headers"
    assert not answers[0].request_headers.response.HasField("header_mutation")
    routed = answers[1].request_body.response
    assert set_headers(routed.header_mutation) == {DESTINATION_HEADER: A}
    assert routed.clear_route_cache
    metadata: Any = json.loads(json.dumps(dict(answers[1].dynamic_metadata["envoy.lb"])))
    assert metadata == {DESTINATION_HEADER: A}
    assert pick.calls == [({":path": "/v1/chat/completions", ":method": "POST", "x-user": "u1"}, b'{"model":"m"}')]
    assert set_headers(answers[2].response_headers.response.header_mutation) == {SERVED_HEADER: A}


def test_streamed_body_chunks_are_answered_at_once_and_picked_on_the_last() -> None:
    pick = Recorder(PickDecision.route(A))
    answers = exchange(pick, [headers(), body(b'{"mo', end_of_stream=False), body(b'del":"m"}')])
    assert answers[1].WhichOneof("response") == "request_body"
    assert not answers[1].request_body.response.HasField("header_mutation")
    assert DESTINATION_HEADER in set_headers(answers[2].request_body.response.header_mutation)
    assert [b for _, b in pick.calls] == [b'{"model":"m"}']


def test_a_request_without_body_is_picked_on_its_headers() -> None:
    pick = Recorder(PickDecision.route(A))
    answers = exchange(pick, [headers(end_of_stream=True, **{":method": "GET"})])
    assert set_headers(answers[0].request_headers.response.header_mutation) == {DESTINATION_HEADER: A}
    assert pick.calls[0][1] == b""


@pytest.mark.parametrize(
    ("attribute", "served"),
    [("10.0.0.9:8000", "10.0.0.9:8000"), (None, A)],
    ids=["envoy-says-which-upstream", "else-the-picked-address"],
)
def test_the_served_endpoint_header_and_the_decision_headers_go_on_the_response(
    attribute: str | None, served: str
) -> None:
    pick = Recorder(PickDecision.route(A, headers={"x-flotilla-pool": "p"}))
    answers = exchange(pick, [headers(), body(b"{}"), response_headers(attribute)])
    assert set_headers(answers[2].response_headers.response.header_mutation) == {
        "x-flotilla-pool": "p",
        SERVED_HEADER: served,
    }


def test_a_rejection_is_an_immediate_response_with_an_openai_error() -> None:
    decision = PickDecision.reject(429, "too busy", headers={"Retry-After": "2"})
    answers = exchange(Recorder(decision), [headers(), body(b"{}")])
    immediate = answers[1].immediate_response
    assert immediate.status.code == 429
    assert set_headers(immediate.headers) == {"content-type": "application/json", "retry-after": "2"}
    assert json.loads(immediate.body) == {
        "error": {"message": "too busy", "type": "RateLimitError", "param": None, "code": 429}
    }


def test_a_failing_picker_ends_the_stream_so_envoy_applies_the_failure_mode() -> None:
    async def broken(headers: Mapping[str, str], body: bytes) -> PickDecision:
        raise RuntimeError("no snapshot")

    with pytest.raises(grpc.aio.AioRpcError) as error:
        exchange(broken, [headers(), body(b"{}")])
    assert error.value.code() == grpc.StatusCode.INTERNAL
    assert "no snapshot" in (error.value.details() or "")


def test_header_map_joins_repeated_headers_and_reads_old_style_values() -> None:
    message = pb.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[
                base_pb2.HeaderValue(key="accept", raw_value=b"a"),
                base_pb2.HeaderValue(key="accept", value="b"),
            ]
        )
    )
    assert header_map(message) == {"accept": "a, b"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, "exactly one of address"),
        ({"address": A, "status": 429}, "exactly one of address"),
        ({"address": "10.0.0.7"}, "ip:port"),
        ({"address": "10.0.0.7:0"}, "ip:port"),
        ({"status": 99}, "200..599"),
    ],
)
def test_pick_decision_rejects_what_envoy_could_not_act_on(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        PickDecision(**kwargs)
