"""The ASR server's OpenAI API: each response_format, errors in OpenAI's shape, /v1/models, /metrics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from flotilla.serving.asr.server import create_asr_app
from flotilla.serving.asr.transcriber import Transcriber, Transcript

from .speech import SPEECH, reference, truncated_wav, wer

CLIP = SPEECH / "cluster.wav"
URL = "/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def client(tiny: Transcriber) -> Iterator[TestClient]:
    with TestClient(create_asr_app(tiny, "whisper-tiny.en", max_upload_bytes=400_000)) as c:
        yield c


def post(client: TestClient, path: Path = CLIP, **fields: str):
    return client.post(URL, files={"file": (path.name, path.read_bytes(), "audio/wav")}, data=fields)


def assert_error(response, status: int, param: str | None, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    return str(error["message"])


def test_json_is_the_default(client: TestClient) -> None:
    response = post(client, model="whisper-tiny.en")
    assert response.status_code == 200
    assert list(response.json()) == ["text"]
    assert wer([reference(CLIP)], [response.json()["text"]]) <= 0.1


def test_openai_model_alias_and_text(client: TestClient) -> None:
    response = post(client, model="whisper-1", response_format="text")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.endswith("\n")
    assert wer([reference(CLIP)], [response.text]) <= 0.1


def test_srt_and_vtt(client: TestClient) -> None:
    srt = post(client, response_format="srt")
    assert srt.text.startswith("1\n00:00:00,000 --> 00:00:0")
    vtt = post(client, response_format="vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:0")


def test_verbose_json_with_words(client: TestClient) -> None:
    body = post(client, response_format="verbose_json", language="en", temperature="0.2").json()
    assert body["task"] == "transcribe"
    assert body["language"] == "en"
    assert body["duration"] == pytest.approx(4.37, abs=0.01)
    assert body["segments"][0]["id"] == 0
    assert {"start", "end", "text", "tokens", "avg_logprob", "no_speech_prob"} <= set(body["segments"][0])
    assert "words" not in body
    worded = client.post(
        URL,
        files={"file": ("c.wav", CLIP.read_bytes())},
        data={"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
    ).json()
    assert worded["words"][0]["word"].strip() == "We"
    assert set(worded["words"][0]) == {"start", "end", "word"}


def test_flac_upload(client: TestClient) -> None:
    assert post(client, SPEECH / "summary.flac").status_code == 200


def test_broken_and_missing_uploads_are_400(client: TestClient, tmp_path: Path) -> None:
    message = assert_error(post(client, truncated_wav(tmp_path)), 400, "file", "invalid_audio")
    assert message.startswith("truncated.wav: cannot decode audio")
    assert_error(client.post(URL, files={"file": ("empty.wav", b"")}), 400, "file", "invalid_audio")
    assert_error(client.post(URL, data={"model": "whisper-tiny.en"}), 400, "file")
    assert_error(client.post(URL, json={"file": "x"}), 400, "file")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "docx"}, "response_format"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": "2"}, "temperature"),
        ({"language": "fr"}, "language"),
    ],
)
def test_bad_fields_are_400(client: TestClient, fields: dict[str, str], param: str) -> None:
    assert_error(post(client, **fields), 400, param)


def test_unknown_model_is_404(client: TestClient) -> None:
    message = assert_error(post(client, model="whisper-large"), 404, "model", "model_not_found")
    assert "'whisper-large'" in message
    assert_error(client.get("/v1/nothing"), 404, None)


def test_oversize_upload_is_413(client: TestClient) -> None:
    big = b"RIFF" + b"\0" * 500_000
    assert_error(client.post(URL, files={"file": ("big.wav", big)}), 413, "file", "file_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * 65_536

    response = client.post(URL, content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(response, 413, "file", "file_too_large")


def test_models_and_health(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in models["data"]] == [("whisper-tiny.en", "model", "flotilla")]
    assert isinstance(models["data"][0]["created"], int)
    assert client.get("/health").json() == {"status": "ok", "model": "whisper-tiny.en"}


def test_metrics(tiny: Transcriber, tmp_path: Path) -> None:
    with TestClient(create_asr_app(tiny, "whisper-tiny.en")) as c:
        post(c)
        post(c, truncated_wav(tmp_path))
        post(c, model="nope")
        text = c.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("flotilla_asr_requests_total", (("status", "200"),))] == 1
    assert samples[("flotilla_asr_requests_total", (("status", "400"),))] == 1
    assert samples[("flotilla_asr_requests_total", (("status", "404"),))] == 1
    assert samples[("flotilla_asr_request_duration_seconds_count", ())] == 3
    assert samples[("flotilla_asr_audio_seconds_total", ())] == pytest.approx(4.37, abs=0.01)
    assert samples[("flotilla_asr_real_time_factor_count", ())] == 1
    assert samples[("flotilla_asr_requests_pending", ())] == 0
    assert all(name.startswith("flotilla_asr_") for name, _ in samples)


class BlockingTranscriber:
    """A fake that holds each transcription until `release` is set, to observe the server meanwhile."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def transcribe(
        self, audio: bytes, language=None, prompt=None, temperature=0.0, word_timestamps=False, *, name=None
    ):
        self.started.set()
        assert self.release.wait(timeout=30)
        return Transcript(
            model="fake", text="done", segments=[], language="en", language_probability=1.0,
            duration=1.0, processing_seconds=0.1, real_time_factor=0.1,
        )  # fmt: skip


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_transcription_runs_off_the_event_loop_and_pending_requests_are_bounded() -> None:
    fake = BlockingTranscriber()
    app = create_asr_app(fake, "fake", max_pending=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://asr") as c:
        files = {"file": ("a.wav", b"RIFF")}
        first = asyncio.create_task(c.post(URL, files=files))
        await asyncio.to_thread(fake.started.wait, 30)
        assert (await c.get("/health")).status_code == 200  # the loop is free while the model works
        busy = await c.post(URL, files=files)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["code"] == "overloaded"
        fake.release.set()
        assert (await first).json() == {"text": "done"}
        assert (await c.post(URL, files=files)).status_code == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
