"""`flotilla bench serve`: load the dataset, run the profile's benchmarks, write and print the results."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from flotilla.loadgen.client import ClientConfig, EndpointType, TargetError, default_model, send
from flotilla.loadgen.datasets import DatasetError, Prompt, load_dataset
from flotilla.loadgen.plots import serve_plots
from flotilla.loadgen.profiles import ProfileError, ProfileParams, Step, check
from flotilla.loadgen.runner import BenchmarkOutcome, Sender, StopCondition, run_profile
from flotilla.runs.records import RequestRecord, RunDir, RunInfo, utc_now


@dataclass(frozen=True)
class ServeOptions:
    """The flags of `flotilla bench serve` (see docs/loadgen.md)."""

    target: str
    profile: str = "synchronous"
    rates: tuple[float, ...] = ()
    max_requests: int | None = None
    max_seconds: float | None = None
    max_concurrency: int = 256
    data: str = "synthetic:prompt_tokens=512,output_tokens=128"
    model: str | None = None
    endpoint_type: EndpointType = "chat"
    ignore_eos: bool = False
    api_key: str | None = field(default=None, repr=False)
    output_dir: Path | None = None
    seed: int = 42
    output_tokens: int = 128
    request_timeout: float = 300.0
    progress: bool = True


def machine_info() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def default_run_dir(kind: str) -> Path:
    return Path("runs") / f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def run_serve(opts: ServeOptions, console: Console) -> int:
    """Run the benchmarks; returns the exit code (2: bad flags or data, 1: target unusable or every request failed)."""
    err = Console(stderr=True)
    params = ProfileParams(rates=opts.rates, max_concurrency=opts.max_concurrency, seed=opts.seed)
    try:
        check(opts.profile, params)
        stop = StopCondition(opts.max_requests, opts.max_seconds)
        prompts = load_dataset(opts.data, seed=opts.seed, output_tokens=opts.output_tokens)
    except (ProfileError, DatasetError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    try:
        model = opts.model or default_model(opts.target, opts.api_key)
    except TargetError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 1
    config = ClientConfig(opts.target, model, opts.endpoint_type, opts.ignore_eos, opts.api_key)
    run = RunDir((opts.output_dir or default_run_dir("bench-serve")).resolve())
    flags = {k: v for k, v in asdict(opts).items() if k not in ("api_key", "progress")}
    rate_text = ",".join(f"{r:g}" for r in opts.rates)
    run.start(
        RunInfo(
            kind="bench-serve",
            name=f"{opts.profile}-{rate_text}" if rate_text else opts.profile,
            started_at=utc_now(),
            stages=["serve"],
            config={**flags, "model": model, "output_dir": str(run.path), "dataset_size": len(prompts)},
            machine=machine_info(),
        )
    )
    origin = time.perf_counter()
    console.print(f"bench serve: {opts.profile} against {config.url} (model {model}), results in {run.path}")
    try:
        outcomes = asyncio.run(_run(opts, config, params, prompts, stop, run, origin, console))
    except KeyboardInterrupt:
        run.finish("interrupted", "interrupted by the user")
        err.print("interrupted; the requests so far are in " + str(run.path / "requests.jsonl"))
        return 130
    benchmarks = [o.summary() for o in outcomes]
    run.write_summary(
        {"target": opts.target, "model": model, "profile": opts.profile, "data": opts.data, "benchmarks": benchmarks}
    )
    plots = serve_plots(run.path, {o.step.name: o.records for o in outcomes}, benchmarks)
    print_tables(benchmarks, console)
    total = sum(b["requests"]["total"] for b in benchmarks)
    completed = sum(b["requests"]["completed"] for b in benchmarks)
    outcome = f"{len(benchmarks)} benchmark(s), {completed} of {total} requests succeeded"
    console.print(f"{outcome}; results in {run.path}" + (f" (plots: {len(plots)})" if plots else ""))
    if completed == 0:
        run.finish("failed", outcome)
        return 1
    run.finish("succeeded", outcome)
    return 0


async def _run(
    opts: ServeOptions,
    config: ClientConfig,
    params: ProfileParams,
    prompts: list[Prompt],
    stop: StopCondition,
    run: RunDir,
    origin: float,
    console: Console,
) -> list[BenchmarkOutcome]:
    timeout = httpx.Timeout(opts.request_timeout, connect=min(10.0, opts.request_timeout))

    @contextlib.asynccontextmanager
    async def make_sender(step: Step) -> AsyncIterator[Sender]:
        width = step.streams or step.max_concurrency
        limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:

            async def sender(prompt: Prompt, request_id: str, item: str) -> RequestRecord:
                return await send(http, config, prompt, request_id=request_id, item=item, origin=origin)

            yield sender

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console, disable=not opts.progress, transient=False) as bar:
        tracker = _Tracker(bar, stop)
        ticker = asyncio.create_task(tracker.tick())
        try:
            return await run_profile(
                opts.profile,
                params,
                prompts,
                stop,
                make_sender,
                origin=origin,
                on_record=run.append,
                on_step=tracker.start,
            )
        finally:
            ticker.cancel()
            tracker.refresh()


class _Tracker:
    """A progress bar per benchmark: requests done of --max-requests, else seconds of --max-seconds."""

    def __init__(self, bar: Progress, stop: StopCondition) -> None:
        self.bar, self.stop = bar, stop
        self.task: TaskID | None = None
        self.started = time.perf_counter()
        self.done = self.errors = 0

    def start(self, index: int, step: Step) -> Callable[[RequestRecord], None]:
        self.refresh()
        self.started, self.done, self.errors = time.perf_counter(), 0, 0
        total = self.stop.max_requests if self.stop.max_requests is not None else self.stop.max_seconds
        self.task = self.bar.add_task(f"[{index + 1}] {step.name}", total=total, detail="")
        return self.record

    def record(self, r: RequestRecord) -> None:
        self.done += 1
        self.errors += 1 if r.error or r.status != 200 else 0
        self.refresh()

    def refresh(self) -> None:
        if self.task is None:
            return
        elapsed = time.perf_counter() - self.started
        limit = f" of {self.stop.max_requests}" if self.stop.max_requests is not None else ""
        detail = f"{self.done}{limit} requests ({self.errors} errors), {elapsed:.1f} s"
        done = self.done if self.stop.max_requests is not None else elapsed
        self.bar.update(self.task, completed=done, detail=detail)

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.refresh()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_tables(benchmarks: list[dict[str, Any]], console: Console) -> None:
    """Two tables: throughput per benchmark, then TTFT/ITL/e2e (mean and percentiles) per benchmark."""
    table = Table(title="Benchmarks (SECS: duration, CONC: mean in flight, TOK/S: prompt + output)")
    heads = ("BENCHMARK", "TARGET", "REQ/S", "SECS", "OK", "ERR", "CONC", "OUT TOK/S", "TOK/S")
    for head in heads:
        table.add_column(head, justify="left" if head == "BENCHMARK" else "right", no_wrap=True, min_width=len(head))
    for b in benchmarks:
        target = b["rate"]["target"]
        table.add_row(
            b["name"],
            f"{target:.2f}/s" if target is not None else f"{b['streams']} conc" if b["streams"] else "-",
            _num(b["request_throughput"]),
            _num(b["duration"]),
            str(b["requests"]["completed"]),
            str(b["requests"]["errored"]),
            _num(b["concurrency"]),
            _num(b["output_token_throughput"], 1),
            _num(b["total_token_throughput"], 1),
        )
    console.print(table)
    latency = Table(title="Latency (TTFT and ITL in ms, e2e in s)")
    for head in ("BENCHMARK", "METRIC", "MEAN", "P50", "P90", "P95", "P99"):
        left = head in ("BENCHMARK", "METRIC")
        latency.add_column(head, justify="left" if left else "right", no_wrap=True, min_width=len(head))
    for b in benchmarks:
        for metric, fmt in (("ttft", _ms), ("itl", _ms), ("e2e", _num)):
            d = b[metric]
            latency.add_row(b["name"], metric.upper(), *(fmt(d[k]) for k in ("mean", "p50", "p90", "p95", "p99")))
    console.print(latency)
    for b in benchmarks:
        for message, count in b["errors"].items():
            console.print(f"[yellow]{escape(b['name'])}: {count} x {escape(message)}[/]", highlight=False)
