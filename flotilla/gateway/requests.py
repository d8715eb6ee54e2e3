"""Reading a client's request: the body (size-capped), its JSON or multipart form, the model asked
for, the text that decides prefix reuse, and errors in OpenAI's shape.

The prompt text for chat requests is the messages rendered in ChatML
(`<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, then `<|im_start|>assistant\\n`), the
template the emulated and Qwen-family engines apply; two conversations that share leading turns
share a leading text, which is all prefix-aware scoring needs. A completion's prompt is used as
sent (a list of prompts is joined; token-id prompts give no text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Receive

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
INFERENCE_PATHS = (CHAT_PATH, COMPLETIONS_PATH, TRANSCRIPTIONS_PATH)
_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    413: "BadRequestError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


def openai_error(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}` (code: the HTTP status, as vLLM sends it):
    the shape of every error the gateway answers itself, on either data plane."""
    error = {"message": message, "type": _ERROR_TYPES.get(status, "APIError"), "param": param, "code": status}
    return {"error": error}


class ClientGone(Exception):
    """The client disconnected while its request body was being read."""


class GatewayError(Exception):
    """An error the gateway answers itself, in OpenAI's shape:
    `{"error": {"message", "type", "param", "code"}}` (code: the HTTP status, as vLLM sends it)."""

    def __init__(self, status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(
            openai_error(self.status, self.message, self.param), status_code=self.status, headers=self.headers
        )


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body of an ASGI request, refused with 413 beyond `limit` bytes (from its declared
    Content-Length before reading, else counted as it comes)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"the request body ({declared} bytes) is over the gateway's limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise GatewayError(413, f"the request body is over the gateway's limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass(frozen=True)
class ParsedBody:
    """What the gateway reads from a request body."""

    model: str
    prompt: str = ""
    stream: bool = False
    include_usage: bool = False
    data: Mapping[str, Any] | None = None


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def chat_prompt(messages: Any) -> str:
    """The messages in ChatML, with the assistant's turn opened."""
    turns = [
        f"<|im_start|>{m.get('role', 'user')}\n{_message_text(m.get('content'))}<|im_end|>\n"
        for m in messages
        if isinstance(m, dict)
    ]
    return "".join(turns) + "<|im_start|>assistant\n"


def completion_prompt(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return "".join(prompt)
    return ""


def parse_json_body(raw: bytes, path: str) -> ParsedBody:
    """Parse an OpenAI chat or completions body (400 when it is not a JSON object with a model)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GatewayError(400, f"the body must be a JSON object, got {type(data).__name__}")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "`model` is required: the name of the model to use", "model")
    if path == CHAT_PATH:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise GatewayError(400, "`messages` must be a non-empty list", "messages")
        prompt = chat_prompt(messages)
    else:
        prompt = completion_prompt(data.get("prompt"))
    options = data.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return ParsedBody(model, prompt, bool(data.get("stream")), include_usage, data)


def parse_loose_body(raw: bytes) -> ParsedBody:
    """Best effort for a request an HTTPRoute matched on any path: a JSON body's model and prompt."""
    try:
        data = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return ParsedBody(model="")
    model = data.get("model") if isinstance(data.get("model"), str) else ""
    messages = data.get("messages")
    prompt = chat_prompt(messages) if isinstance(messages, list) else completion_prompt(data.get("prompt"))
    return ParsedBody(str(model), prompt, bool(data.get("stream")), False, data)


async def parse_form_model(raw: bytes, content_type: str) -> str:
    """The `model` field of a multipart/form-data (or urlencoded) body; 400 when missing or unreadable."""
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise GatewayError(400, "a transcription request is multipart/form-data with `file` and `model`")
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type.encode())]}
    form_request = Request(scope, receive)
    try:
        async with form_request.form(max_part_size=len(raw) + 1) as form:
            model = form.get("model")
            has_file = isinstance(form.get("file"), UploadFile)
    except Exception as exc:  # malformed multipart: python-multipart raises several kinds
        raise GatewayError(400, f"the form could not be read: {exc}") from None
    if not has_file:
        raise GatewayError(400, "`file` is required: the audio to transcribe", "file")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "`model` is required: the name of the model to use", "model")
    return model
