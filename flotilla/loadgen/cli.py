"""`flotilla bench serve` and `flotilla bench batch` (docs/loadgen.md).

Only typer is imported here; httpx, rich and matplotlib load when a command runs, so `flotilla --help`
stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks: load an OpenAI-compatible endpoint (serve) or run the study's batch scenario (batch).",
    no_args_is_help=True,
    add_completion=False,
)


class EndpointChoice(StrEnum):
    chat = "chat"
    completions = "completions"


class SlicesChoice(StrEnum):
    mig = "mig"
    whole_gpu = "whole-gpu"


PROFILE_HELP = (
    "synchronous, concurrent (--rate N streams), constant or poisson (--rate R req/s), throughput "
    "(at most --max-concurrency in flight) or sweep (--rate K benchmarks: synchronous, throughput, K-2 constant)."
)


@bench_app.command()
def serve(
    target: Annotated[str, typer.Option(help="Base URL of the OpenAI-compatible server or gateway.")] = (
        "http://127.0.0.1:8080"
    ),
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "synchronous",
    rate: Annotated[
        str | None,
        typer.Option(
            help="Streams (concurrent), req/s (constant, poisson; comma-separated for several), or steps (sweep)."
        ),
    ] = None,
    max_requests: Annotated[int | None, typer.Option(help="Requests per benchmark (stop condition).")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Seconds per benchmark (stop condition).")] = None,
    max_concurrency: Annotated[
        int, typer.Option(help="Most requests in flight (throughput streams; bound for constant, poisson).")
    ] = 256,
    data: Annotated[
        str,
        typer.Option(
            help="synthetic:prompt_tokens=N,output_tokens=M[,...], file:PATH (.csv/.jsonl) or transcripts:DIR."
        ),
    ] = "synthetic:prompt_tokens=512,output_tokens=128",
    model: Annotated[str | None, typer.Option(help="Model name (default: the first of GET /v1/models).")] = None,
    endpoint_type: Annotated[
        EndpointChoice, typer.Option(help="chat (/v1/chat/completions) or completions (/v1/completions).")
    ] = EndpointChoice.chat,
    ignore_eos: Annotated[bool, typer.Option(help="Send ignore_eos: generate exactly max_tokens.")] = False,
    api_key: Annotated[str | None, typer.Option(help="Sent as Authorization: Bearer KEY.")] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/bench-serve-<UTC timestamp>).")
    ] = None,
    output_tokens: Annotated[int, typer.Option(help="max_tokens for rows and transcripts that do not say.")] = 128,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data and the poisson arrivals.")] = 42,
    request_timeout: Annotated[float, typer.Option(help="Seconds a request may wait for its next bytes.")] = 300.0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per benchmark.")] = True,
) -> None:
    """Drive an OpenAI-compatible endpoint with a load profile (as GuideLLM does) and record every request."""
    from rich.console import Console

    from flotilla.loadgen.profiles import ProfileError, parse_rates
    from flotilla.loadgen.serve import ServeOptions, run_serve

    try:
        rates = parse_rates(rate)
    except ProfileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    opts = ServeOptions(
        target=target,
        profile=profile,
        rates=rates,
        max_requests=max_requests,
        max_seconds=max_seconds,
        max_concurrency=max_concurrency,
        data=data,
        model=model,
        endpoint_type=endpoint_type.value,
        ignore_eos=ignore_eos,
        api_key=api_key,
        output_dir=output_dir,
        seed=seed,
        output_tokens=output_tokens,
        request_timeout=request_timeout,
        progress=progress,
    )
    raise typer.Exit(run_serve(opts, Console()))


@bench_app.command()
def batch(
    server: Annotated[
        str | None, typer.Option(help="Control-plane URL (default: $FLOTILLA_SERVER or http://127.0.0.1:8470).")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Iterations; each creates a medium and a large Job.")] = 1,
    slices: Annotated[
        SlicesChoice, typer.Option(help="mig (1g.5gb medium, 3g.20gb large) or whole-gpu (nvidia.com/gpu: 1).")
    ] = SlicesChoice.mig,
    medium_model: Annotated[str, typer.Option(help="Whisper model of the medium Jobs.")] = "whisper-tiny.en",
    large_model: Annotated[str, typer.Option(help="Whisper model of the large Jobs.")] = "whisper-base",
    qps: Annotated[float, typer.Option(help="Jobs created per second, as kube-burner's qps (0: all at once).")] = 1.0,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls of the API.")] = 0.5,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 1800.0,
    output_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/bench-batch-<UTC timestamp>).")
    ] = None,
    command: Annotated[str | None, typer.Option(hidden=True, help="Replace each Job's command (tests).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Submit the study's batch scenario (Whisper Jobs through the Kueue queues) and measure it."""
    from rich.console import Console

    from flotilla.client import default_server_url
    from flotilla.loadgen.batchrun import BatchOptions, run_batch

    opts = BatchOptions(
        server=(server or default_server_url()).rstrip("/"),
        iterations=iterations,
        slices=slices.value,
        medium_model=medium_model,
        large_model=large_model,
        qps=qps,
        poll_interval=poll_interval,
        timeout=timeout,
        output_dir=output_dir,
        command=command,
        progress=progress,
    )
    raise typer.Exit(run_batch(opts, Console()))
