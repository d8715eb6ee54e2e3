"""One streaming request to an OpenAI-compatible endpoint, measured: TTFT, ITL, e2e, tokens, the endpoint.

POST `{target}/v1/chat/completions` (or `/v1/completions`) with `stream: true` and
`stream_options.include_usage`; the response's SSE `data:` lines are read as they arrive. TTFT is the
first chunk with non-empty content (chat `delta.content` or `delta.reasoning_content`, completions
`text`); tokens come from the usage chunk (fallback: one token per content chunk). HTTP errors,
connection errors, timeouts and streams cut short become a RequestRecord with `error` set; nothing
raises out of `send`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from flotilla.loadgen.datasets import Prompt
from flotilla.runs.records import RequestRecord
from flotilla.runs.stats import itl

EndpointType = Literal["chat", "completions"]
SERVED_HEADER = "x-gateway-destination-endpoint-served"  # GAIE: the endpoint that served the request
SESSION_HEADER = "x-session-token"
PATHS: dict[EndpointType, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
Clock = Callable[[], float]


class TargetError(RuntimeError):
    """The target cannot be used (unreachable, or it lists no model)."""


@dataclass(frozen=True)
class ClientConfig:
    target: str  # base URL, e.g. http://127.0.0.1:8080
    model: str
    endpoint_type: EndpointType = "chat"
    ignore_eos: bool = False
    api_key: str | None = None

    @property
    def url(self) -> str:
        return self.target.rstrip("/") + PATHS[self.endpoint_type]


def request_body(config: ClientConfig, prompt: Prompt) -> dict[str, Any]:
    """The JSON body for `prompt`: chat messages (system first, when any) or a completions prompt."""
    body: dict[str, Any] = {"model": config.model}
    if config.endpoint_type == "chat":
        messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
        body["messages"] = [*messages, {"role": "user", "content": prompt.text}]
    else:
        body["prompt"] = f"{prompt.system}\n\n{prompt.text}" if prompt.system else prompt.text
    body.update(max_tokens=prompt.output_tokens, stream=True, stream_options={"include_usage": True})
    if config.ignore_eos:
        body["ignore_eos"] = True
    return body


def request_headers(config: ClientConfig, prompt: Prompt) -> dict[str, str]:
    headers = {"Accept": "text/event-stream"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    if prompt.session:
        headers[SESSION_HEADER] = prompt.session
    return headers


@dataclass
class StreamState:
    """What the SSE lines of one response said so far (pure: times are passed in)."""

    first_token_at: float | None = None
    content_chunks: int = 0
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    done: bool = False
    errors: list[str] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)  # the answer (text or content, not reasoning)
    finish_reason: str = ""

    def feed(self, line: str, now: float) -> None:
        """One line of the event stream (blank lines, comments and other fields are ignored)."""
        if not line.startswith("data:"):
            return
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            self.errors.append(f"bad SSE data: {data[:80]}")
            return
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            err = chunk["error"]
            self.errors.append(str(err.get("message", err) if isinstance(err, dict) else err))
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            answer = choice.get("text") or delta.get("content")
            if answer:
                self.text_parts.append(answer)
            if answer or delta.get("reasoning_content"):
                self.content_chunks += 1
                if self.first_token_at is None:
                    self.first_token_at = now
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("prompt_tokens"), int):
                self.prompt_tokens = usage["prompt_tokens"]
            if isinstance(usage.get("completion_tokens"), int):
                self.output_tokens = usage["completion_tokens"]


async def send(
    http: httpx.AsyncClient,
    config: ClientConfig,
    prompt: Prompt,
    *,
    request_id: str,
    item: str,
    origin: float,
    clock: Clock = time.perf_counter,
) -> RequestRecord:
    """Send `prompt` and read the stream to its end; times are seconds since `origin` (on `clock`)."""
    state = StreamState()
    status, endpoint, error = 0, "", ""
    sent = clock() - origin
    try:
        async with http.stream(
            "POST", config.url, json=request_body(config, prompt), headers=request_headers(config, prompt)
        ) as response:
            status = response.status_code
            endpoint = response.headers.get(SERVED_HEADER, "")
            if status != 200:
                body = (await response.aread()).decode("utf-8", "replace")
                error = f"HTTP {status}: {error_text(body)}"
            else:
                async for line in response.aiter_lines():
                    state.feed(line, clock() - origin)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finished = clock() - origin
    if not error and state.errors:
        error = state.errors[0]
    tokens = state.output_tokens if state.output_tokens is not None else state.content_chunks
    record = RequestRecord(
        id=request_id,
        sent_at=sent,
        status=status,
        first_token_at=state.first_token_at,
        finished_at=finished,
        prompt_tokens=state.prompt_tokens if state.prompt_tokens is not None else prompt.prompt_tokens,
        output_tokens=tokens,
        endpoint=endpoint,
        item=item,
        session=prompt.session,
        error=error,
    )
    return record if error else record.model_copy(update={"itl_mean": itl(record)})


def error_text(body: str) -> str:
    """The message of an OpenAI error body, else the body itself (shortened)."""
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()[:200]
    if isinstance(value, dict):
        err = value.get("error", value)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:200]
        if isinstance(value.get("detail"), str):
            return str(value["detail"])[:200]
    return body.strip()[:200]


def default_model(target: str, api_key: str | None = None, timeout: float = 10.0) -> str:
    """The first model id of `GET {target}/v1/models`; TargetError says why there is none."""
    url = target.rstrip("/") + "/v1/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TargetError(f"cannot reach {url}: {exc}; is the server up (or pass --target URL)?") from None
    if response.status_code != 200:
        raise TargetError(f"GET {url}: HTTP {response.status_code}; pass --model NAME")
    try:
        models = response.json().get("data") or []
        return str(models[0]["id"])
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        raise TargetError(f"GET {url} lists no model; pass --model NAME") from None
