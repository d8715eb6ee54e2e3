"""Typer commands `flotilla serve llm` and `flotilla serve vllm` (registered by flotilla/cli)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _logging(log_level: str) -> None:
    if log_level not in LOG_LEVELS:
        typer.echo(f"error: --log-level {log_level!r}: use one of {', '.join(LOG_LEVELS)}", err=True)
        raise typer.Exit(2)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _warn_exposed(host: str, what: str) -> None:
    if host not in LOOPBACK:
        logging.getLogger("flotilla.serving").warning(
            "binding %s to %s: it is reachable from other machines and has no authentication", what, host
        )


def serve_llm(
    port: Annotated[int, typer.Option(help="Port of the OpenAI API.", min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    model: Annotated[
        str, typer.Option(help="A packaged model (smollm2-135m) or a path to a .gguf file.")
    ] = "smollm2-135m",
    served_model_name: Annotated[
        str | None, typer.Option("--served-model-name", help="The name clients send as `model` (default: --model's).")
    ] = None,
    parallel: Annotated[int, typer.Option(help="Requests decoded together (llama.cpp slots).", min=1, max=256)] = 4,
    ctx_size: Annotated[
        int, typer.Option("--ctx-size", help="KV cache in tokens, shared by the slots.", min=256)
    ] = 4096,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for llama.cpp (default: half the CPUs).", min=1)
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve an LLM on llama.cpp: OpenAI API (/v1/chat/completions, /v1/completions) and vLLM's /metrics."""
    from flotilla.serving.llm.models import ModelNotFoundError
    from flotilla.serving.llm.server import LlmServer, LlmServerConfig

    _logging(log_level)
    _warn_exposed(host, "the LLM server")
    config = LlmServerConfig(
        model=model,
        served_model_name=served_model_name,
        host=host,
        port=port,
        parallel=parallel,
        ctx_size=ctx_size,
        threads=threads,
        verbose=log_level == "debug",
    )
    try:
        server = LlmServer(config)
    except ModelNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    log = logging.getLogger("flotilla.serving.llm")
    log.info(
        "LLM server for %s on %s (OpenAI API at %s/v1; /health, /metrics)", server.served_name, server.url, server.url
    )
    try:
        code = server.serve(log_level=log_level)
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def serve_vllm(
    model: Annotated[str, typer.Option(help="The model vLLM loads (a Hugging Face ID or a local directory).")],
    extra: Annotated[
        list[str] | None, typer.Argument(help="vLLM's own options, after `--` (e.g. -- --max-model-len 8192).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port of the OpenAI API.", min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    served_model_name: Annotated[
        str | None, typer.Option("--served-model-name", help="The name clients send as `model` (default: --model).")
    ] = None,
    ready_timeout: Annotated[
        float, typer.Option("--ready-timeout", help="Seconds to wait for /health (model download and load).")
    ] = 1800.0,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run a real vLLM OpenAI server (needs vLLM, on a GPU machine); ready when /health answers 200."""
    from flotilla.serving.llm.vllm import VllmError, run_vllm

    _logging(log_level)
    _warn_exposed(host, "vLLM")
    log = logging.getLogger("flotilla.serving.vllm")
    try:
        code = run_vllm(
            model,
            host=host,
            port=port,
            served_model_name=served_model_name,
            extra=extra or (),
            ready_timeout=ready_timeout,
            on_ready=lambda url: log.info("vLLM serves %s at %s/v1", served_model_name or model, url),
        )
    except VllmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def standalone() -> typer.Typer:
    """The two commands on their own (`python -m flotilla.serving.llm.cli llm --port 8000`)."""
    app = typer.Typer(name="serve", help="Model servers.", no_args_is_help=True, add_completion=False)
    app.command("llm")(serve_llm)
    app.command("vllm")(serve_vllm)
    return app


if __name__ == "__main__":  # pragma: no cover
    standalone()(prog_name="flotilla serve")
