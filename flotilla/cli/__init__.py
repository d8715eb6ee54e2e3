"""The `flotilla` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from flotilla import __version__
from flotilla.cli.fault import app as fault_app
from flotilla.cli.logs import logs
from flotilla.cli.queue import queue_app
from flotilla.cli.resources import register_resource_commands
from flotilla.cli.scale import scale
from flotilla.cli.serve import serve_app
from flotilla.gateway.cli import gateway
from flotilla.kube.cli import kube_app
from flotilla.loadgen.cli import bench_app
from flotilla.pipelines.cli import pipeline_app
from flotilla.reports.cli import report
from flotilla.serving.asr.cli import asr_app
from flotilla.sim.cli import experiment
from flotilla.sim.planning.cli import simulate

app = typer.Typer(
    name="flotilla",
    help="Flotilla: queues, GPU slices and LLM routing for multi-stage inference, on one machine or many.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register_resource_commands(app)
app.add_typer(queue_app)
app.add_typer(fault_app)
app.command()(logs)
app.command()(scale)
app.add_typer(asr_app)
app.add_typer(bench_app)
app.add_typer(serve_app)
app.command()(gateway)
app.command()(report)
app.add_typer(pipeline_app)
app.add_typer(kube_app)
app.command()(experiment)
app.command()(simulate)


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port of the control-plane API.")] = 8470,
    host: Annotated[
        str, typer.Option(help="Address to bind (loopback by default; others expose the API).")
    ] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where state lives (default: $FLOTILLA_DATA_DIR or ~/.local/share/flotilla)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    queue_config: Annotated[
        Path | None,
        typer.Option("--queue-config", help="YAML file of QueueConfig (Kueue's Configuration for admission)."),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            "--gpus",
            help="Emulated GPUs: NODESxGPUSxMODEL[,...] (e.g. 1x2xA100-40GB, 4x8xA100-80GB) or a YAML file "
            "(default when no GPU is found: 1x2xA100-40GB).",
        ),
    ] = None,
    gpu_backend: Annotated[
        str, typer.Option("--gpu-backend", help="auto (NVML when a GPU is found), nvml or emulated.")
    ] = "auto",
    runtime_config: Annotated[
        Path | None,
        typer.Option("--runtime-config", help="YAML file of RuntimeConfig (placement policy, scheduler, back-offs)."),
    ] = None,
    placement: Annotated[
        str | None, typer.Option("--placement", help="MIG placement policy: first-fit (DAS's) or packing.")
    ] = None,
    gateway_port: Annotated[
        int,
        typer.Option("--gateway-port", help="Port of the inference gateway over the InferencePools (0: no gateway)."),
    ] = 8080,
    gateway_profile: Annotated[
        str, typer.Option("--gateway-profile", help="The gateway's scheduling profile (default, round-robin, ...).")
    ] = "default",
) -> None:
    """Start the embedded control plane in the foreground (Ctrl-C stops it)."""
    from flotilla.queue.driver import QueueConfigError, load_queue_config
    from flotilla.runtime.config import RuntimeConfig, RuntimeConfigError, load_runtime_config
    from flotilla.runtime.scheduling import PluginArgsError, UnknownPluginError
    from flotilla.server.runner import LOOPBACK, ControlPlane, default_data_dir
    from flotilla.slicer import PlacementConfig, PolicyParamsError, UnknownPolicyError
    from flotilla.slicer.backends import NoGPUError
    from flotilla.slicer.inventory import GPUConfigError, load_gpu_config, parse_gpu_spec

    if gpu_backend not in ("auto", "nvml", "emulated"):
        typer.echo(f"error: --gpu-backend {gpu_backend!r}: use auto, nvml or emulated", err=True)
        raise typer.Exit(2)

    def invalid(what: str, exc: Exception) -> typer.Exit:
        typer.echo(f"error: invalid {what}:\n{exc}", err=True)
        return typer.Exit(2)

    try:
        config = load_queue_config(queue_config) if queue_config is not None else None
    except QueueConfigError as exc:
        raise invalid("queue config", exc) from None
    try:
        rconfig = load_runtime_config(runtime_config) if runtime_config is not None else None
        if placement is not None:
            rconfig = (rconfig or RuntimeConfig()).model_copy(update={"placement": PlacementConfig(policy=placement)})
    except RuntimeConfigError as exc:
        raise invalid("runtime config", exc) from None
    try:
        gpu_config = None
        if gpus is not None:
            gpu_config = load_gpu_config(gpus) if Path(gpus).is_file() else parse_gpu_spec(gpus)
    except GPUConfigError as exc:
        raise invalid("GPU config", exc) from None

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("flotilla.up")
    directory = (data_dir or default_data_dir()).expanduser()
    if host not in LOOPBACK:
        log.warning("binding to %s: the API is reachable from other machines and has no authentication yet", host)
    try:
        plane = ControlPlane(
            directory,
            host=host,
            port=port,
            queue_config=config,
            gpus=gpu_config,
            gpu_backend=gpu_backend,  # type: ignore[arg-type]
            runtime_config=rconfig,
            gateway_port=gateway_port or None,
            gateway_profile=gateway_profile,
        )
    except (NoGPUError, UnknownPolicyError, PolicyParamsError, UnknownPluginError, PluginArgsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: cannot open the state store in {directory}: {exc}", err=True)
        raise typer.Exit(1) from None
    log.info("Flotilla %s control plane: state in %s", __version__, directory / "state.db")
    log.info("API on %s (try: flotilla get cq; OpenAPI at %s/docs)", plane.url, plane.url)
    if plane.gateway_url:
        log.info("inference gateway on %s/v1 (OpenAI API over the InferencePools)", plane.gateway_url)
    plane.serve(log_level=log_level)


@app.command()
def version() -> None:
    """Print Flotilla's version."""
    typer.echo(f"flotilla {__version__}")


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Leave the control plane running after the demo.")] = False,
) -> None:
    """Run the end-to-end demo on embedded defaults."""
    from flotilla.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))


def main() -> None:
    """Entry point of the `flotilla` console script."""
    app(prog_name="flotilla")


if __name__ == "__main__":  # pragma: no cover
    main()
