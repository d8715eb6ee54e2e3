"""The ASR model server: OpenAI's audio transcription API over one loaded Whisper model.

| route                           | answer                                                                      |
|---------------------------------|-----------------------------------------------------------------------------|
| `POST /v1/audio/transcriptions` | multipart `file`, `model`, `language`, `prompt`, `response_format`          |
|                                 | (json, text, srt, vtt, verbose_json), `temperature`, `timestamp_granularities[]` |
| `GET /v1/models`                | the served model, in OpenAI's list shape                                    |
| `GET /health`                   | `{"status": "ok", "model": ...}`                                            |
| `GET /metrics`                  | Prometheus text, every series prefixed `flotilla_asr_`                      |

Errors use OpenAI's shape `{"error": {"message", "type", "param", "code"}}`: 400 for a missing or
undecodable file and bad fields, 404 for a model this server does not serve, 413 for a file over
`max_upload_bytes` (refused from `Content-Length` before the body is read, and counted while streaming
otherwise), 503 when `max_pending` requests already wait.

Concurrency: transcriptions are **serialized**. Each runs in a worker thread (the event loop stays free
for health checks and metrics) behind a capacity limiter of one; at most `max_pending` requests wait or
run at once, later ones get 503 with `Retry-After`. One model replica on one device does one
transcription at a time; scale out with more replicas behind the gateway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from flotilla.serving.asr.audio import AudioError
from flotilla.serving.asr.transcriber import Transcript, TranscriptionError, to_srt, to_vtt

log = logging.getLogger("flotilla.serving.asr")
DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's limit
FORM_OVERHEAD_BYTES = 1024 * 1024  # room for the other fields and the multipart framing
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
OPENAI_ALIASES = ("whisper-1",)  # what OpenAI's SDKs send; served by whatever model this server has
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class SupportsTranscribe(Protocol):
    """What the server needs of a transcriber (`Transcriber` or a test double)."""

    def transcribe(
        self,
        audio: bytes,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        *,
        name: str | None = None,
    ) -> Transcript: ...


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None, kind: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def response(self, headers: Mapping[str, str] | None = None) -> JSONResponse:
        """The JSON response: `{"error": {"message", "type", "param", "code"}}`."""
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=dict(headers or {}))


class AsrMetrics:
    """The server's Prometheus series, in a registry of their own (several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flotilla_asr_requests", "Transcription requests by HTTP status.", ["status"], registry=self.registry
        )
        self.latency = Histogram(
            "flotilla_asr_request_duration_seconds",
            "Transcription request latency (receiving, waiting, decoding and transcribing).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "flotilla_asr_audio_seconds", "Seconds of audio transcribed.", registry=self.registry
        )
        self.rtf = Histogram(
            "flotilla_asr_real_time_factor",
            "Processing seconds per second of audio, per transcription (lower is faster).",
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.pending = Gauge(
            "flotilla_asr_requests_pending", "Transcriptions waiting or running.", registry=self.registry
        )


def create_asr_app(
    transcriber: SupportsTranscribe,
    model_name: str,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pending: int = 16,
    aliases: tuple[str, ...] = OPENAI_ALIASES,
) -> FastAPI:
    """The FastAPI app serving `transcriber` under `model_name` (and `aliases`)."""
    app = FastAPI(title="Flotilla ASR", summary=f"OpenAI-compatible speech recognition ({model_name})")
    metrics = AsrMetrics()
    limiter = anyio.CapacityLimiter(1)
    served = {model_name, *aliases}
    created = int(time.time())
    state = {"pending": 0}
    app.state.metrics = metrics

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail)).response(exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return ApiError(400, str(exc.errors())).response()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": model_name, "object": "model", "created": created, "owned_by": "flotilla"}]
        return {"object": "list", "data": data}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/audio/transcriptions", openapi_extra=_OPENAPI_REQUEST)
    async def transcriptions(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if state["pending"] >= max_pending:
                raise ApiError(503, f"{max_pending} transcriptions are already pending: retry later", code="overloaded")
            state["pending"] += 1
            metrics.pending.inc()
            try:
                response = await _transcribe(request)
            finally:
                state["pending"] -= 1
                metrics.pending.dec()
        except ApiError as err:
            response = err.response({"Retry-After": "1"} if err.status == 503 else None)
        except Exception as exc:  # a bug or a device failure: answer in OpenAI's shape, keep the traceback in the log
            log.exception("transcription failed")
            response = ApiError(500, f"transcription failed: {type(exc).__name__}: {exc}").response()
        finally:
            metrics.latency.observe(time.perf_counter() - started)
        metrics.requests.labels(status=str(response.status_code)).inc()
        return response

    async def _transcribe(request: Request) -> Response:
        form = await _read_form(request, max_upload_bytes)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "a multipart file field named 'file' is required", param="file")
        model = _text(form, "model") or model_name
        if model not in served:
            message = f"model {model!r} is not served here: this server serves {model_name!r}"
            raise ApiError(404, message, param="model", code="model_not_found")
        response_format = _text(form, "response_format") or "json"
        if response_format not in RESPONSE_FORMATS:
            message = f"response_format {response_format!r}: use one of {', '.join(RESPONSE_FORMATS)}"
            raise ApiError(400, message, param="response_format")
        temperature = _temperature(_text(form, "temperature"))
        granularities = [str(v) for v in form.getlist("timestamp_granularities[]")]
        data = await upload.read()
        if len(data) > max_upload_bytes:
            raise _too_large(max_upload_bytes)
        name = upload.filename or "<upload>"

        def run() -> Transcript:
            return transcriber.transcribe(
                data,
                language=_text(form, "language") or None,
                prompt=_text(form, "prompt") or None,
                temperature=temperature,
                word_timestamps="word" in granularities,
                name=name,
            )

        try:
            transcript = await anyio.to_thread.run_sync(run, limiter=limiter)
        except AudioError as exc:
            raise ApiError(400, str(exc), param="file", code="invalid_audio") from None
        except TranscriptionError as exc:
            raise ApiError(400, str(exc), param=exc.param) from None
        metrics.audio_seconds.inc(transcript.duration)
        metrics.rtf.observe(transcript.real_time_factor)
        return _render(transcript, response_format, granularities)

    return app


async def _read_form(request: Request, max_upload_bytes: int) -> FormData:
    """The multipart form, refusing (413) a body larger than the file limit plus FORM_OVERHEAD_BYTES."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "send the audio as multipart/form-data with a 'file' field", param="file")
    limit = max_upload_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(max_upload_bytes)

    async def limited() -> AsyncGenerator[bytes, None]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(max_upload_bytes)
            yield chunk

    try:
        return await MultiPartParser(request.headers, limited(), max_files=1, max_fields=16).parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart form: {exc.message}", param="file") from None


def _too_large(max_upload_bytes: int) -> ApiError:
    return ApiError(
        413, f"the file is larger than the limit of {max_upload_bytes} bytes", param="file", code="file_too_large"
    )


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _temperature(raw: str) -> float:
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"temperature {raw!r} is not a number", param="temperature") from None
    if not 0.0 <= value <= 1.0:
        raise ApiError(400, f"temperature {value} is out of range: use 0 to 1", param="temperature")
    return value


def _render(transcript: Transcript, response_format: str, granularities: list[str]) -> Response:
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(to_srt(transcript))
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(transcript), media_type="text/vtt")
    if response_format == "json":
        return JSONResponse({"text": transcript.text})
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if not granularities or "segment" in granularities:
        body["segments"] = [s.model_dump(exclude={"words"}) for s in transcript.segments]
    if "word" in granularities:
        body["words"] = [w.model_dump(exclude={"probability"}) for w in transcript.words]
    return JSONResponse(body)


_OPENAPI_REQUEST: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "MP3, WAV, FLAC, ..."},
                        "model": {"type": "string", "description": "the served model or whisper-1"},
                        "language": {"type": "string", "description": "ISO 639-1 code; detected if absent"},
                        "prompt": {"type": "string"},
                        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
                        "timestamp_granularities[]": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["word", "segment"]},
                        },
                    },
                }
            }
        },
    }
}
