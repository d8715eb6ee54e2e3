"""Request streams for the online serving simulator (sim/online.py): what is sent, and when.

A stream is a `Benchmark`: a finite sequence of `SimRequest`s and how they are sent, GuideLLM's way:

    open loop    each request at its own time `at` (seconds from the benchmark's start), at most
                 `max_concurrency` in flight (a request whose time has come waits for a free slot)
    closed loop  `streams` workers; each sends the next request in order when its last one ends
                 (`cycle`: after the last, the first again, until `max_seconds`)

What a request asks is a load generator `Prompt` (flotilla/loadgen/datasets.py: text, output tokens,
session, system message), so every dataset `flotilla bench serve --data` reads works here too
(synthetic prompts with length distributions, shared-prefix groups and sessions; CSV/JSONL files;
transcript folders). When they are sent comes from the load generator's profiles
(flotilla/loadgen/profiles.py): `from_step(Step(...), prompts, ...)` gives the benchmark of a
`constant`, `poisson`, `concurrent`, `synchronous` or `throughput` step, with the prompts taken in
order and cycled exactly as `flotilla bench serve` takes them. Rate sweeps are a list of steps (or
the `sweep` profile, which online.py runs adaptively). `draw` samples prompts with replacement (a
pool of documents that recur), `conversations` builds multi-turn sessions that replay their history.

Traces (replay your own arrivals), CSV or JSONL by extension, one request per row:

    time           required  seconds from the start of the trace
    output_tokens  required  tokens to generate (exactly that many: ignore_eos)
    prompt         the prompt text, or instead:
    prompt_tokens  the prompt's length in tokens; the text is synthesized (seeded words), and
    prefix_group   optional: rows of a group start with the same `prefix_tokens` tokens (default:
    prefix_tokens  the whole prompt, i.e. the same document each time; one length per group)
    session        optional: the session token (x-session-token)
    system         optional: a system message (chat)
    id             optional: the request's id (default row-N, N the line)

Everything here is pure: the same arguments give the same requests.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flotilla.api.configfile import read_rows
from flotilla.loadgen.datasets import Prompt, TextMaker
from flotilla.loadgen.profiles import Step, arrivals

TRACE_COLUMNS = ("time", "id", "output_tokens", "prompt", "prompt_tokens", "prefix_group", "prefix_tokens")
TRACE_OPTIONAL = ("session", "system")


class TraceError(ValueError):
    """A trace that cannot be replayed; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class SimRequest:
    """One request of a stream: its prompt, and (open loop) when it is sent. `group` names what it is
    about (a shared-prefix group, a transcript) and `prefix_tokens` how much of the prompt the group
    shares, for traces and reports; the text alone decides what the caches see."""

    id: str
    prompt: Prompt
    at: float | None = None
    group: str = ""
    prefix_tokens: int = 0


@dataclass(frozen=True)
class Benchmark:
    """A finite stream: open loop (`streams` None: each request at its `at`) or closed loop (`streams`
    workers). `max_seconds` stops issuing requests that long after the start (requests in flight end)."""

    name: str
    requests: tuple[SimRequest, ...]
    streams: int | None = None
    max_concurrency: int | None = None
    max_seconds: float | None = None
    step: Step | None = None  # the load-generator step it was made from (its strategy and rate, for summaries)
    cycle: bool = False  # closed loop: send the requests again from the first until max_seconds

    def __post_init__(self) -> None:
        if self.streams is not None and self.streams < 1:
            raise ValueError(f"benchmark {self.name}: streams must be >= 1, got {self.streams}")
        if self.cycle and (self.streams is None or self.max_seconds is None or not self.requests):
            raise ValueError(f"benchmark {self.name}: only a closed loop with max_seconds and requests can cycle")
        if self.streams is None and any(r.at is None for r in self.requests):
            raise ValueError(f"benchmark {self.name}: an open-loop benchmark needs a time (`at`) on every request")

    @property
    def closed_loop(self) -> bool:
        return self.streams is not None


def from_step(
    step: Step,
    prompts: Sequence[Prompt],
    *,
    max_requests: int | None = None,
    max_seconds: float | None = None,
    index: int = 0,
) -> Benchmark:
    """The benchmark a load-generator step describes: its arrivals (open loop) or its streams (closed
    loop), with `prompts` taken in order and cycled, ids `b{index}-{seq}-{prompt id}` as
    `flotilla bench serve` names them. Give `max_requests`, `max_seconds` or both."""
    if not prompts:
        raise ValueError("no prompts to send")
    if max_requests is None and max_seconds is None:
        raise ValueError(f"{step.name}: give max_requests or max_seconds (a simulated benchmark is finite)")
    limit = max_requests if max_requests is not None else math.inf

    def request(seq: int, at: float | None) -> SimRequest:
        prompt = prompts[seq % len(prompts)]
        return SimRequest(f"b{index}-{seq}-{prompt.id}", prompt, at, group=prompt.id)

    if step.closed_loop:
        count = max_requests if max_requests is not None else len(prompts)
        requests = tuple(request(seq, None) for seq in range(count))
        cycle = max_requests is None
        return Benchmark(step.name, requests, step.streams or 1, None, max_seconds, step=step, cycle=cycle)
    out: list[SimRequest] = []
    for seq, offset in enumerate(arrivals(step)):
        if seq >= limit or (max_seconds is not None and offset >= max_seconds):
            break
        out.append(request(seq, offset))
    return Benchmark(step.name, tuple(out), max_concurrency=step.max_concurrency, max_seconds=max_seconds, step=step)


def draw(prompts: Sequence[Prompt], count: int, seed: int) -> list[Prompt]:
    """`count` prompts drawn uniformly with replacement (a pool of documents that recur), seeded."""
    if not prompts:
        raise ValueError("no prompts to draw from")
    rng = random.Random(f"draw:{seed}")
    return [prompts[rng.randrange(len(prompts))] for _ in range(count)]


def document_pool(
    count: int,
    tokens: int,
    *,
    instruction: str = "",
    stdev: float = 0.0,
    output_tokens: int = 128,
    seed: int = 0,
    name: str = "doc",
) -> list[Prompt]:
    """`count` distinct documents (seeded words) of about `tokens` tokens each (normal, `stdev`, at
    least 1), each after `instruction` (e.g. "Summarize this transcript: "): a prefix group per document."""
    maker = TextMaker()
    sizes = random.Random(f"{seed}:{name}:sizes")
    out: list[Prompt] = []
    for i in range(count):
        n = max(1, round(sizes.gauss(tokens, stdev))) if stdev > 0 else tokens
        text = instruction + maker.words(random.Random(f"{seed}:{name}:{i}"), n, first=not instruction)
        out.append(Prompt(f"{name}-{i}", text, output_tokens, maker.count(text)))
    return out


def conversations(
    sessions: int,
    turns: int,
    *,
    turn_tokens: int,
    output_tokens: int,
    system_tokens: int = 0,
    seed: int = 0,
) -> list[Prompt]:
    """Multi-turn chats that replay their history: turn k's prompt is turn k-1's prompt, a stand-in
    for its answer (`output_tokens` words) and `turn_tokens` new words, so each turn extends the last
    one's prefix. Session s, turn k is `chat-s-k` with session `chat-s`; sessions follow each other
    (interleave them with `draw` or by arranging the list)."""
    maker = TextMaker()
    system = maker.words(random.Random(f"{seed}:system"), system_tokens) if system_tokens else ""
    out: list[Prompt] = []
    for s in range(sessions):
        rng = random.Random(f"{seed}:chat:{s}")
        history = ""
        for k in range(turns):
            history += maker.words(rng, turn_tokens, first=not history)
            out.append(Prompt(f"chat-{s}-{k}", history, output_tokens, maker.count(history), f"chat-{s}", system))
            history += maker.words(rng, output_tokens, first=False)
    return out


# -- traces -----------------------------------------------------------------------------------------------
def write_trace(requests: Iterable[SimRequest], path: Path, *, text: bool = True) -> None:
    """Write open-loop requests as a trace (CSV or JSONL by extension). `text`: the prompt text (exact);
    otherwise prompt_tokens, prefix_group and prefix_tokens (compact; read back, the text is synthesized)."""
    rows: list[dict[str, Any]] = []
    for r in requests:
        if r.at is None:
            raise TraceError(f"request {r.id} has no time: only open-loop requests make a trace")
        row: dict[str, Any] = {"time": r.at, "id": r.id, "output_tokens": r.prompt.output_tokens}
        if text:
            row["prompt"] = r.prompt.text
        else:
            row |= {"prompt_tokens": r.prompt.prompt_tokens, "prefix_group": r.group, "prefix_tokens": r.prefix_tokens}
        row |= {"session": r.prompt.session, "system": r.prompt.system}
        rows.append(row)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        out = io.StringIO()
        columns = [c for c in (*TRACE_COLUMNS, *TRACE_OPTIONAL) if any(c in row for row in rows)]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        path.write_text(out.getvalue(), encoding="utf-8")
    elif suffix in (".jsonl", ".ndjson"):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        raise TraceError(f"{path}: use a .csv or .jsonl trace")


def read_trace(path: Path, name: str | None = None, max_concurrency: int | None = None) -> Benchmark:
    """The open-loop benchmark a trace describes (rows sorted by time; see the module docstring)."""
    rows = _trace_rows(path)
    maker = TextMaker()
    groups: dict[str, tuple[int, str, int]] = {}  # group -> (its prefix tokens, its text, the line that set it)
    out: list[SimRequest] = []
    for line, row in rows:
        where = f"{path}:{line}"
        at = _number(row, "time", where, float, low=0.0)
        output = _number(row, "output_tokens", where, int, low=1)
        rid = str(row.get("id") or f"row-{line}")
        group = str(row.get("prefix_group") or "")
        prompt_text = row.get("prompt")
        prefix = 0
        if isinstance(prompt_text, str) and prompt_text:
            text = prompt_text
        elif _blank(row.get("prompt_tokens")):
            raise TraceError(f"{where}: give `prompt` (text) or `prompt_tokens` (a length)")
        else:
            tokens = _number(row, "prompt_tokens", where, int, low=1)
            prefix = _number(row, "prefix_tokens", where, int, low=0) if not _blank(row.get("prefix_tokens")) else 0
            if group and _blank(row.get("prefix_tokens")):
                prefix = tokens
            if prefix > tokens:
                raise TraceError(f"{where}: prefix_tokens {prefix} is more than prompt_tokens {tokens}")
            shared = ""
            if group and prefix:
                known = groups.get(group)
                if known is None:
                    known = groups[group] = (prefix, maker.words(random.Random(f"trace-prefix:{group}"), prefix), line)
                elif known[0] != prefix:
                    raise TraceError(
                        f"{where}: prefix_group {group!r} has prefix_tokens {known[0]} (line {known[2]}), not "
                        f"{prefix}; one shared length per group"
                    )
                shared = known[1]
            own = tokens - prefix
            text = shared + (maker.words(random.Random(f"trace-prompt:{rid}"), own, first=not shared) if own else "")
        system = str(row.get("system") or "")
        prompt = Prompt(rid, text, output, maker.count(text), str(row.get("session") or ""), system)
        out.append(SimRequest(rid, prompt, at, group=group or rid, prefix_tokens=prefix))
    if not out:
        raise TraceError(f"{path}: no requests in it")
    out.sort(key=lambda r: r.at or 0.0)
    return Benchmark(name or path.stem, tuple(out), max_concurrency=max_concurrency)


def shifted(requests: Sequence[SimRequest], offset: float) -> list[SimRequest]:
    """The same requests `offset` seconds later (open loop)."""
    return [replace(r, at=(r.at or 0.0) + offset) for r in requests]


def _trace_rows(path: Path) -> list[tuple[int, Mapping[str, Any]]]:
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    columns, rows = read_rows(path, TraceError, json_hint="`time` and `output_tokens`", kind="trace")
    missing = [c for c in ("time", "output_tokens") if columns is not None and c not in columns]
    if missing:
        raise TraceError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(columns or [])})")
    return rows


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _number(row: Mapping[str, Any], key: str, where: str, kind: type[int] | type[float], low: float) -> Any:
    raw = row.get(key)
    if _blank(raw):
        raise TraceError(f"{where}: `{key}` is missing")
    noun = "a whole number" if kind is int else "a number"
    try:
        number = float(str(raw))  # any JSON or CSV value; bad ones are reported below
    except (TypeError, ValueError):
        raise TraceError(f"{where}: {key}={raw!r} is not {noun}") from None
    if not math.isfinite(number) or (kind is int and not number.is_integer()):
        raise TraceError(f"{where}: {key}={raw!r} is not {noun}")
    if number < low:
        raise TraceError(f"{where}: {key} must be >= {low:g}")
    return int(number) if kind is int else number
