"""`flotilla serve emulated`: a vLLM-compatible OpenAI server backed by the emulated engine.

Register it in flotilla/cli/__init__.py:

    from flotilla.serving.emulator.cli import serve_emulated
    serve_app = typer.Typer(name="serve", help="Run model servers.", no_args_is_help=True)
    serve_app.command("emulated")(serve_emulated)
    app.add_typer(serve_app)
"""

from __future__ import annotations

import random
from typing import Annotated

import typer

from flotilla.serving.emulator.driver import EngineDriver
from flotilla.serving.emulator.engine import ContextLengthError, Engine, EngineConfig
from flotilla.serving.emulator.perfmodel import PerfDataError


def build_driver(
    gpu: str,
    model: str,
    config: EngineConfig,
    *,
    speed: float = 1.0,
    seed: int = 0,
    max_queue_len: int = 2048,
    served_model_name: str | None = None,
) -> EngineDriver:
    """The engine for `model` on `gpu`, in a driver (PerfDataError / ContextLengthError / ValueError on bad
    input); `served_model_name` (default `model`) is the name clients use and metrics carry."""
    engine = Engine.build(gpu, model, config, random.Random(seed), model_name=served_model_name)
    return EngineDriver(engine, speed=speed, max_queue_len=max_queue_len)


def serve_emulated(
    gpu: Annotated[
        str,
        typer.Option(
            "--gpu", help="GPU: A100-40GB, A100-80GB, H100-80GB, H200-141GB, or a MIG slice: A100-80GB:3g.40gb."
        ),
    ] = "A100-80GB",
    model: Annotated[
        str, typer.Option("--model", help="qwen3-8b, qwen3-14b or smollm2-135m (or the HF id).")
    ] = "qwen3-8b",
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (vLLM's default: 8000).")] = 8000,
    served_model_name: Annotated[
        str | None, typer.Option("--served-model-name", help="The name clients use (default: --model).")
    ] = None,
    max_num_seqs: Annotated[int, typer.Option("--max-num-seqs", help="Most requests running at once.")] = 256,
    max_num_batched_tokens: Annotated[
        int, typer.Option("--max-num-batched-tokens", help="Token budget of one engine step.")
    ] = 8192,
    gpu_memory_utilization: Annotated[
        float, typer.Option("--gpu-memory-utilization", help="Fraction of GPU memory for weights, activations and KV.")
    ] = 0.9,
    max_model_len: Annotated[
        int | None, typer.Option("--max-model-len", help="Context length (default: the model's).")
    ] = None,
    enable_prefix_caching: Annotated[
        bool, typer.Option("--enable-prefix-caching/--no-enable-prefix-caching", help="Automatic prefix caching.")
    ] = True,
    lora_modules: Annotated[
        list[str] | None, typer.Option("--lora-modules", help="A LoRA adapter name to serve (repeatable).")
    ] = None,
    max_loras: Annotated[int, typer.Option("--max-loras", help="Most adapters in one batch (GPU slots).")] = 1,
    max_cpu_loras: Annotated[
        int | None, typer.Option("--max-cpu-loras", help="Adapters kept in host memory (default: --max-loras).")
    ] = None,
    num_gpu_blocks_override: Annotated[
        int | None, typer.Option("--num-gpu-blocks-override", help="KV blocks, instead of the computed number.")
    ] = None,
    mean_output_tokens: Annotated[
        float, typer.Option("--mean-output-tokens", help="Mean length where the synthetic model stops by itself.")
    ] = 256.0,
    max_queue_len: Annotated[
        int, typer.Option("--max-queue-len", help="Waiting requests beyond which new ones get 429.")
    ] = 2048,
    speed: Annotated[
        float, typer.Option("--speed", help="Emulated seconds per wall second (10: ten times faster).")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic output lengths and text.")] = 0,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the OpenAI API from an emulated vLLM engine: vLLM's scheduling, KV cache and metrics, timed like
    the GPU, with synthetic text."""
    import uvicorn

    from flotilla.serving.emulator.server import create_app

    try:
        config = EngineConfig(
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching,
            lora_modules=tuple(lora_modules or ()),
            max_loras=max_loras,
            max_cpu_loras=max_cpu_loras,
            mean_output_tokens=mean_output_tokens,
            num_gpu_blocks_override=num_gpu_blocks_override,
        )
        driver = build_driver(
            gpu, model, config, speed=speed, seed=seed, max_queue_len=max_queue_len, served_model_name=served_model_name
        )
    except (PerfDataError, ContextLengthError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = driver.engine
    typer.echo(
        f"emulating {engine.perf.model.hf_id} on {engine.perf.accelerator.name}: "
        f"{(engine.kv.num_gpu_blocks - 1) * config.block_size} KV tokens ({engine.kv.num_gpu_blocks} blocks), "
        f"max_model_len {engine.max_model_len}, speed x{speed}; http://{host}:{port}/v1",
        err=True,
    )
    app = create_app(driver, gpu=gpu)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
