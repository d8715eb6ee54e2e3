"""The official `openai` client through the gateway, to real Flotilla model servers in process:
two vLLM emulators (chat, streaming, completions, precise prefix routing on their KV events) and
the Whisper ASR server (transcription)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from flotilla.gateway.endpoints import StaticEndpoints
from flotilla.gateway.policy import default_scheduling
from flotilla.gateway.scheduling import PrecisePrefixIndex
from flotilla.gateway.scheduling.types import SERVED_HEADER
from flotilla.serving.emulator.cli import build_driver
from flotilla.serving.emulator.engine import EngineConfig
from flotilla.serving.emulator.server import create_app

from .builders import RunningGateway, ServerThread, running_gateway

MODEL = "smollm2-135m"
SMOLLM2_VOCAB = 49152
CLIP = Path(__file__).resolve().parents[1] / "data" / "speech" / "cluster.wav"


def emulator() -> ServerThread:
    driver = build_driver("A100-80GB", MODEL, EngineConfig(max_num_seqs=8), speed=20.0)
    return ServerThread(create_app(driver, MODEL))


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[RunningGateway, list[ServerThread]]]:
    """Two emulators behind a gateway picking with `precise-prefix` on their KV-cache events."""
    scheduling = default_scheduling(kv_events_vocab=SMOLLM2_VOCAB)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(emulator()) for _ in range(2)]
        source = StaticEndpoints([s.url for s in servers])
        gw = stack.enter_context(running_gateway(source, scheduling, fresh=2, profile="precise-prefix", kv_events=True))
        yield gw, servers


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)


def test_chat_streaming_and_completions(gateway: tuple[RunningGateway, list[ServerThread]]) -> None:
    gw, servers = gateway
    c = client(gw)
    raw = c.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}], max_tokens=8
    )
    assert raw.headers[SERVED_HEADER] in {s.address for s in servers}
    reply = raw.parse()
    assert reply.choices[0].message.content and reply.usage is not None and reply.usage.completion_tokens == 8

    stream = c.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count to ten"}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12

    completion = c.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert completion.choices[0].text
    assert [m.id for m in c.models.list()] == [MODEL]
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_precise_prefix_routing_follows_the_engines_kv_events(
    gateway: tuple[RunningGateway, list[ServerThread]],
) -> None:
    gw, _ = gateway
    index = gw.gateway.scheduling.precise_prefix
    assert isinstance(index, PrecisePrefixIndex)
    c = client(gw)
    for n in range(5):
        document = f"Document {n}: " + " ".join(f"word{n}x{i}" for i in range(120))
        first = c.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": document}], max_tokens=2
        )
        served = first.headers[SERVED_HEADER]
        deadline = time.monotonic() + 5
        while index.size(served) == 0 and time.monotonic() < deadline:  # the KV events arrive
            time.sleep(0.02)
        again = c.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": document + " Summarize it."}], max_tokens=2
        )
        assert again.headers[SERVED_HEADER] == served, f"document {n}"


@pytest.fixture(scope="module")
def asr() -> Iterator[RunningGateway]:
    from flotilla.serving.asr.server import create_asr_app
    from flotilla.serving.asr.transcriber import Transcriber

    app = create_asr_app(Transcriber("whisper-tiny.en", cpu_threads=2), "whisper-tiny.en")
    with ServerThread(app) as server, running_gateway(StaticEndpoints([server.url]), fresh=1) as gw:
        yield gw


def test_transcription_through_the_gateway(asr: RunningGateway) -> None:
    with CLIP.open("rb") as audio:
        result = client(asr).audio.transcriptions.create(model="whisper-tiny.en", file=audio)
    assert "graphics cards" in result.text.lower()
    r = httpx.post(f"{asr.url}/v1/audio/transcriptions", data={"model": "whisper-tiny.en"}, files={"x": ("a", b"")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = httpx.post(f"{asr.url}/v1/audio/transcriptions", files={"file": ("a.wav", CLIP.read_bytes())})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
