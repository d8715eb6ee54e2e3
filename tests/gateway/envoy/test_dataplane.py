"""`--data-plane envoy` end to end: real Envoy, Flotilla's picker over ext_proc, and model servers on
loopback (fake vLLM servers whose queue the test sets, and two vLLM emulators).

What a user relies on: requests reach the endpoint the pool's profile picks (shortest queue, the
session's endpoint, the one holding the prompt's KV blocks) and say who served; streams pass through;
errors come in OpenAI's shape; the official `openai` client works; the picker counts a request in
flight until Envoy has sent its last byte; FailOpen keeps serving with the picker gone; the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import typer
from typer.testing import CliRunner

from flotilla.gateway.cli import gateway
from flotilla.gateway.config import GatewayConfig
from flotilla.gateway.endpoints import EndpointSource, FailureMode, Pool, StaticEndpoints, Topology
from flotilla.gateway.envoy.dataplane import EnvoyDataPlane, create_plane_app, failure_mode_of
from flotilla.gateway.policy import Scheduling, default_scheduling
from flotilla.gateway.scheduling import PrecisePrefixIndex
from flotilla.gateway.scheduling.types import SERVED_HEADER, SESSION_HEADER
from flotilla.serving.emulator.cli import build_driver
from flotilla.serving.emulator.engine import EngineConfig
from flotilla.serving.emulator.server import ServerThread as EmulatorThread
from flotilla.serving.emulator.server import create_app

from ..builders import MODEL, FakeVllm, ServerThread, chat, free_port, pool, serving, topology
from ..test_frontdoor import STICKY_PROFILE

CHAT = "/v1/chat/completions"
EMULATED = "smollm2-135m"
SMOLLM2_VOCAB = 49152
LAUNCH = "import typer; from flotilla.gateway.cli import gateway; typer.run(gateway)"


@dataclass
class RunningPlane:
    plane: EnvoyDataPlane
    metrics_url: str  # the plane's own app: /metrics, /health

    @property
    def url(self) -> str:
        return self.plane.url

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the plane's event loop (the picker's objects live there)."""
        assert self.plane.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.plane.loop).result(10)

    def wait_scrape(self) -> None:
        """Until every endpoint has been scraped twice more (the picker saw the latest load)."""
        data = self.plane.gateway.data
        seen, count = data.scrapes, len(self.plane.gateway.topology.endpoints())
        wait_until(lambda: data.scrapes >= seen + 2 * count, "no scrape happened")


def wait_until(predicate: Callable[[], bool], message: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.01)


@contextlib.contextmanager
def running_plane(
    envoy_binary: Path, source: EndpointSource, scheduling: Scheduling | None = None, **config: Any
) -> Iterator[RunningPlane]:
    """The plane (Envoy on a free port) run by its app's lifespan, as `flotilla gateway` runs it."""
    config.setdefault("seed", 7)
    plane = EnvoyDataPlane(
        source, scheduling or default_scheduling(), GatewayConfig(**config), port=0, envoy_binary=envoy_binary
    )
    with ServerThread(create_plane_app(plane)) as server:
        yield RunningPlane(plane, server.url)


def emulator() -> EmulatorThread:
    driver = build_driver("A100-80GB", EMULATED, EngineConfig(max_num_seqs=8), speed=20.0)
    return EmulatorThread(create_app(driver))


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeVllm, FakeVllm]]:
    with serving(FakeVllm("a", waiting=3), FakeVllm("b", waiting=0)) as (a, b):
        yield a, b


@pytest.fixture(scope="module")
def emulators() -> Iterator[list[EmulatorThread]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(emulator()) for _ in range(2)]


@pytest.fixture(scope="module")
def plane(
    envoy_binary: Path,
    fakes: tuple[FakeVllm, FakeVllm],
    emulators: list[EmulatorThread],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningPlane]:
    """Two pools behind one Envoy: the fakes (profile `sticky`: queue + session affinity) and the
    emulators (profile `precise-prefix`, on their KV-cache events)."""
    profile = tmp_path_factory.mktemp("profiles") / "sticky.yaml"
    profile.write_text(STICKY_PROFILE)
    fake_pool = dataclasses.replace(pool("ml/fake", *fakes, models={MODEL}, failure_mode="FailOpen"), profile="sticky")
    addresses = tuple(e.url.removeprefix("http://") for e in emulators)
    emu_pool = pool("ml/emu", models={EMULATED}, failure_mode="FailOpen", addresses=addresses)
    source = topology(fake_pool, dataclasses.replace(emu_pool, profile="precise-prefix"))
    scheduling = default_scheduling(profile, kv_events_vocab=SMOLLM2_VOCAB)
    with running_plane(envoy_binary, source, scheduling, kv_events=True) as running:
        yield running


@pytest.fixture
def loads(plane: RunningPlane, fakes: tuple[FakeVllm, FakeVllm]) -> Iterator[None]:
    """The fakes' queues as the module starts them (a: 3 waiting, b: none), again after the test."""
    yield
    a, b = fakes
    a.waiting, b.waiting, b.gate = 3, 0, None
    plane.wait_scrape()


def test_chat_and_streams_go_to_the_shortest_queue_and_stay_in_flight_to_the_end(
    plane: RunningPlane, fakes: tuple[FakeVllm, FakeVllm], loads: None
) -> None:
    a, b = fakes
    for i in range(3):
        r = httpx.post(f"{plane.url}{CHAT}", json=chat(content=f"q{i}"), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["served_by"] == "b"
        assert r.headers[SERVED_HEADER] == b.address == r.json()["destination"]
        assert r.headers["x-request-id"]

    data = plane.plane.gateway.data
    wait_until(lambda: data.in_flight(b.address) == 0, "the requests' ends were not seen")
    b.gate = gate = threading.Event()
    with httpx.stream("POST", f"{plane.url}{CHAT}", json=chat(stream=True), timeout=10) as r:
        assert r.status_code == 200 and r.headers[SERVED_HEADER] == b.address
        chunks = r.iter_raw()
        assert b"t0" in next(chunks)
        assert data.in_flight(b.address) == 1  # counted from the pick while the stream is open
        gate.set()
        rest = b"".join(chunks)
    assert rest.endswith(b"data: [DONE]\n\n")
    wait_until(lambda: data.in_flight(b.address) == 0, "the stream's end was not seen")

    b.gate = gate = threading.Event()
    try:
        with (
            httpx.Client(timeout=10) as client,
            client.stream("POST", f"{plane.url}{CHAT}", json=chat(stream=True)) as r,
        ):
            assert b"t0" in next(r.iter_raw()) and data.in_flight(b.address) == 1
        # the client left mid-stream: Envoy resets the request, and the picker hears of it
        wait_until(lambda: data.in_flight(b.address) == 0, "the abandoned stream was not seen")
    finally:
        gate.set()

    a.waiting, b.waiting = 0, 4
    plane.wait_scrape()
    assert httpx.post(f"{plane.url}{CHAT}", json=chat(content="next"), timeout=10).json()["served_by"] == "a"


def test_a_session_sticks_to_the_endpoint_that_served_it(
    plane: RunningPlane, fakes: tuple[FakeVllm, FakeVllm], loads: None
) -> None:
    a, b = fakes

    def served(session: str | None) -> str:
        headers = {SESSION_HEADER: session} if session else {}
        r = httpx.post(f"{plane.url}{CHAT}", json=chat(), headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["served_by"])

    assert served("s1") == "b"
    a.waiting, b.waiting = 0, 3
    plane.wait_scrape()
    assert (served("s1"), served("s2"), served(None)) == ("b", "a", "a")


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{not json", 400, None),
        (b'{"model": "fake-model"}', 400, "messages"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}', 404, "model"),
    ],
)
def test_errors_come_in_openai_shape(plane: RunningPlane, content: bytes, status: int, param: str | None) -> None:
    r = httpx.post(f"{plane.url}{CHAT}", content=content, headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == (param, status)


def test_the_openai_client_works_through_envoy(plane: RunningPlane, emulators: list[EmulatorThread]) -> None:
    client = openai.OpenAI(base_url=f"{plane.url}/v1", api_key="unused", max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model=EMULATED, messages=[{"role": "user", "content": "Say hello"}], max_tokens=6
    )
    assert raw.headers[SERVED_HEADER] in {e.url.removeprefix("http://") for e in emulators}
    reply = raw.parse()
    assert reply.choices[0].message.content and reply.usage is not None and reply.usage.completion_tokens == 6

    stream = client.chat.completions.create(
        model=EMULATED,
        messages=[{"role": "user", "content": "Count to ten"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8

    assert client.completions.create(model=EMULATED, prompt="Once upon a time", max_tokens=4).choices[0].text
    assert sorted(m.id for m in client.models.list()) == [MODEL, EMULATED]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_precise_prefix_routing_follows_the_engines_kv_events(plane: RunningPlane) -> None:
    index = plane.plane.gateway.scheduling.precise_prefix
    assert isinstance(index, PrecisePrefixIndex)
    client = openai.OpenAI(base_url=f"{plane.url}/v1", api_key="unused", max_retries=0, timeout=30)
    for n in range(3):
        document = f"Document {n}: " + " ".join(f"word{n}x{i}" for i in range(120))
        first = client.chat.completions.with_raw_response.create(
            model=EMULATED, messages=[{"role": "user", "content": document}], max_tokens=2
        )
        served = first.headers[SERVED_HEADER]
        wait_until(lambda: index.size(served) > 0, "no KV events arrived")  # noqa: B023
        again = client.chat.completions.with_raw_response.create(
            model=EMULATED, messages=[{"role": "user", "content": document + " Summarize it."}], max_tokens=2
        )
        assert again.headers[SERVED_HEADER] == served, f"document {n}"


def test_the_plane_serves_the_pickers_metrics_and_health(plane: RunningPlane) -> None:
    httpx.post(f"{plane.url}{CHAT}", json=chat(), timeout=10)
    health = httpx.get(f"{plane.metrics_url}/health").json()
    assert health["data_plane"] == "envoy" and health["failure_mode"] == "FailOpen"
    assert health["pools"] == {"ml/fake": 2, "ml/emu": 2} and health["fresh_endpoints"] == 4
    text = httpx.get(f"{plane.metrics_url}/metrics").text
    assert 'inference_objective_request_total{model_name="fake-model",target_model_name="fake-model"}' in text
    assert 'inference_objective_request_duration_seconds_count{model_name="fake-model"' in text
    assert 'inference_pool_ready_pods{name="ml/fake"} 2.0' in text
    assert 'flotilla_gateway_scheduling_duration_seconds_count{profile="sticky"}' in text


@pytest.mark.parametrize(("mode", "status"), [("FailOpen", 200), ("FailClose", 503)])
def test_with_the_picker_stopped_envoy_applies_the_pools_failure_mode(
    envoy_binary: Path, mode: FailureMode, status: int
) -> None:
    with (
        serving(FakeVllm("only")) as (fake,),
        running_plane(envoy_binary, StaticEndpoints([fake.url], mode)) as running,
    ):
        assert running.plane.envoy_config is not None and running.plane.envoy_config.failure_mode == mode
        assert httpx.post(f"{running.url}{CHAT}", json=chat(), timeout=10).status_code == 200
        extproc = running.plane.extproc
        assert extproc is not None
        running.call(extproc.stop(0))
        r = httpx.post(f"{running.url}{CHAT}", json=chat(), timeout=10)
        assert r.status_code == status, r.text
        if status == 200:
            assert r.json()["served_by"] == "only" and r.headers[SERVED_HEADER] == fake.address
        else:
            assert r.json()["error"]["code"] == 503


@pytest.mark.parametrize(
    ("modes", "expected"),
    [((), "FailClose"), (("FailOpen",), "FailOpen"), (("FailOpen", "FailClose"), "FailClose")],
)
def test_envoy_fails_open_only_when_every_pool_does(modes: tuple[FailureMode, ...], expected: str) -> None:
    pools = {f"p{i}": Pool(f"p{i}", (), mode) for i, mode in enumerate(modes)}
    assert failure_mode_of(Topology(pools)) == expected


def test_the_envoy_plane_needs_ip_endpoints() -> None:
    app = typer.Typer()
    app.command()(gateway)
    result = CliRunner().invoke(app, ["--data-plane", "envoy", "--endpoints", "http://localhost:8000"])
    assert result.exit_code == 2 and "IP addresses" in result.output


def test_the_command_runs_envoy_and_stops_it(envoy_binary: Path) -> None:
    port, metrics_port = free_port(), free_port()
    with serving(FakeVllm("a")) as (a,):
        args = ["--data-plane", "envoy", "--endpoints", a.url, "--port", str(port), "--metrics-port", str(metrics_port)]
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "FLOTILLA_ENVOY": str(envoy_binary)},
        )
        try:

            def healthy() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"the gateway exited:\n{proc.communicate()[0]}")
                with contextlib.suppress(httpx.HTTPError):
                    return bool(httpx.get(f"http://127.0.0.1:{metrics_port}/health").json()["fresh_endpoints"])
                return False

            wait_until(healthy, "the gateway did not come up", timeout=30)
            r = httpx.post(f"http://127.0.0.1:{port}{CHAT}", json=chat(), timeout=10)
            assert r.status_code == 200 and r.headers[SERVED_HEADER] == a.address
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, proc.communicate()[0]
        with pytest.raises(httpx.ConnectError):  # Envoy is gone with it
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
