"""`InferenceGateway.admit`: the one admission step both data planes take before the pick."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from flotilla.gateway.config import GatewayConfig
from flotilla.gateway.dispatch import NOT_ADMITTED, Admission, InferenceGateway
from flotilla.gateway.policy import Scheduling, default_scheduling
from flotilla.gateway.requests import GatewayError, ParsedBody
from flotilla.gateway.scheduling.types import InferenceRequest

from .builders import MODEL, FakeVllm, pool, serving, topology


class CountingFlow:
    """A flow controller that admits at once and counts what it hands out and gets back."""

    def __init__(self) -> None:
        self.acquired = self.released = 0

    async def acquire(self, request: InferenceRequest, tenant: str, saturated: Callable[[], bool]) -> None:
        self.acquired += 1

    def release(self) -> None:
        self.released += 1


def test_an_admission_is_released_once_however_often_it_is_released() -> None:
    flow = CountingFlow()
    admission = Admission(flow)
    admission.release()
    admission.release()
    assert flow.released == 1
    NOT_ADMITTED.release()  # nothing to give back


def _admit(fake: FakeVllm | None, scheduling: Scheduling, wait_fresh: bool) -> Admission:
    async def main() -> Admission:
        fakes = (fake,) if fake is not None else ()
        source = topology(pool("ml/chat", *fakes, addresses=() if fakes else ("127.0.0.1:9",), models={MODEL}))
        gw = InferenceGateway(source, scheduling, GatewayConfig(seed=1))
        await gw.start()
        try:
            if wait_fresh:
                await gw.data.wait_scraped(5.0)
            target = gw.resolve("POST", "/v1/chat/completions", {}, {}, MODEL)
            ireq = gw.inference_request(ParsedBody(MODEL, "hi"), {}, target)
            return await gw.admit(ireq, target)
        finally:
            await gw.stop()

    return asyncio.run(main())


def test_admit_refuses_with_503_when_no_endpoint_answers_its_metrics() -> None:
    with pytest.raises(GatewayError) as caught:
        _admit(None, default_scheduling(), wait_fresh=False)
    assert caught.value.status == 503 and "ml/chat" in caught.value.message


def test_admit_takes_a_flow_control_slot_that_release_gives_back() -> None:
    flow = CountingFlow()
    scheduling = default_scheduling()
    scheduling.flow = lambda: flow
    with serving(FakeVllm("a")) as (a,):
        admission = _admit(a, scheduling, wait_fresh=True)
    assert (flow.acquired, flow.released) == (1, 0)
    admission.release()
    assert flow.released == 1
