"""`flotilla gateway`: the inference gateway, in the foreground, on one of two data planes:
`--data-plane python` (the front door: one process is proxy and picker) or `--data-plane envoy`
(Envoy carries the requests and asks Flotilla's endpoint picker over ext_proc; the picker's
`/metrics` and `/health` are on `--metrics-port`).

Register it in flotilla/cli/__init__.py:

    from flotilla.gateway.cli import gateway
    app.command()(gateway)

Endpoints come from `--endpoints URL,...` (a static pool), or from a control plane's
InferencePools (`--server URL`, default $FLOTILLA_SERVER or http://127.0.0.1:8470).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from flotilla.gateway.config import GatewayConfig
    from flotilla.gateway.endpoints import EndpointSource
    from flotilla.gateway.policy import Scheduling

DATA_PLANES = ("python", "envoy")
# The faster plane on benchmarks/gateway_bench.py's overhead part (it checks this choice on every run).
DEFAULT_DATA_PLANE = "python"


def gateway(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    profile: Annotated[
        str, typer.Option(help="Scheduling profile: default, precise-prefix, llm-d, random, round-robin.")
    ] = "default",
    profile_file: Annotated[
        Path | None,
        typer.Option("--profile-file", help="EndpointPickerConfig YAML (or a folder of them) adding profiles."),
    ] = None,
    endpoints: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated model-server URLs (http://HOST:PORT), one static pool; instead of --server."
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(help="Control-plane URL whose InferencePools to route to (default: $FLOTILLA_SERVER or local)."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace's pools (default: all).")
    ] = None,
    gateway_ref: Annotated[
        str | None,
        typer.Option("--gateway", help="NAMESPACE/NAME of the Gateway whose HTTPRoutes apply (default: every route)."),
    ] = None,
    failure_mode: Annotated[
        str, typer.Option("--failure-mode", help="For --endpoints: FailOpen or FailClose when the picker fails.")
    ] = "FailClose",
    scrape_interval: Annotated[
        float, typer.Option("--scrape-interval", help="Seconds between /metrics scrapes of each endpoint.")
    ] = 0.05,
    stale_after: Annotated[
        float, typer.Option("--stale-after", help="Seconds after which an endpoint's metrics are stale.")
    ] = 2.0,
    request_timeout: Annotated[
        float, typer.Option("--request-timeout", help="Seconds a request may take in all (HTTPRoute timeouts win).")
    ] = 600.0,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout", help="Seconds to connect upstream.")] = 5.0,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Largest request body, in MiB (413 above).")
    ] = 32.0,
    kv_events: Annotated[
        bool | None,
        typer.Option(
            "--kv-events/--no-kv-events",
            help="Follow engines' KV-cache events for precise prefix routing (default: on for precise-prefix).",
        ),
    ] = None,
    tokenizer_vocab: Annotated[
        int,
        typer.Option("--tokenizer-vocab", help="Token ids of the served model, for --kv-events (SmolLM2: 49152)."),
    ] = 151936,
    data_plane: Annotated[
        str, typer.Option("--data-plane", help="python (the front door) or envoy (Envoy + Flotilla's ext_proc picker).")
    ] = DEFAULT_DATA_PLANE,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="--data-plane envoy: port of the picker's /metrics and /health.")
    ] = 9090,
    seed: Annotated[int | None, typer.Option(help="Seed of the picker's random choices.")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the inference gateway: an OpenAI-compatible front door that routes each request to the best
    model-server endpoint (queue depth, KV cache, prefix affinity), GAIE style."""
    import uvicorn

    from flotilla.gateway.config import GatewayConfig
    from flotilla.gateway.dispatch import InferenceGateway
    from flotilla.gateway.policy import default_scheduling
    from flotilla.gateway.scheduling import ProfileConfigError
    from flotilla.gateway.server import create_gateway_app

    def fail(message: str) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(2)

    if data_plane not in DATA_PLANES:
        raise fail(f"--data-plane {data_plane!r}: use python or envoy")
    if failure_mode not in ("FailOpen", "FailClose"):
        raise fail(f"--failure-mode {failure_mode!r}: use FailOpen or FailClose")
    if endpoints and server:
        raise fail("give --endpoints or --server, not both")
    try:
        source, where = _source(endpoints, server, namespace, failure_mode)
        config = GatewayConfig(
            profile=profile,
            scrape_interval=scrape_interval,
            stale_after=stale_after,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            gateway=gateway_ref,
            kv_events=bool(kv_events) if kv_events is not None else profile == "precise-prefix",
            seed=seed,
        )
        scheduling = default_scheduling(profile_file, kv_events_vocab=tokenizer_vocab if config.kv_events else None)
        if data_plane == "envoy":
            _run_envoy(source, scheduling, config, host, port, metrics_port, where, log_level)
            return
        gw = InferenceGateway(source, scheduling, config)
    except (ValueError, ProfileConfigError) as exc:
        raise fail(str(exc)) from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.echo(f"gateway on http://{host}:{port}/v1 routing to {where} (profile {profile})", err=True)
    uvicorn.run(create_gateway_app(gw), host=host, port=port, log_level=log_level, access_log=False)


def _run_envoy(
    source: EndpointSource,
    scheduling: Scheduling,
    config: GatewayConfig,
    host: str,
    port: int,
    metrics_port: int,
    where: str,
    log_level: str,
) -> None:
    """Envoy on host:port, the picker's /metrics and /health on host:metrics_port, until SIGINT/SIGTERM
    (exit 0) or Envoy exits on its own (exit 1)."""
    import asyncio
    import contextlib

    import uvicorn

    from flotilla.gateway.endpoints import StaticEndpoints
    from flotilla.gateway.envoy.dataplane import EnvoyDataPlane, check_ip_addresses, create_plane_app
    from flotilla.gateway.envoy.launcher import EnvoyNotFound, find_envoy

    try:
        find_envoy()  # before anything starts
    except EnvoyNotFound as exc:
        raise ValueError(str(exc)) from None
    if isinstance(source, StaticEndpoints):  # pods have IPs; URLs may name hosts, which Envoy cannot route to
        check_ip_addresses([e.address for e in asyncio.run(source.topology()).endpoints()])
    if port == metrics_port:
        raise ValueError(f"--port and --metrics-port are both {port}: give them different ports")
    plane = EnvoyDataPlane(source, scheduling, config, host=host, port=port)
    app = create_plane_app(plane)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=metrics_port, log_level=log_level, access_log=False))
    plane.on_exit = lambda: setattr(server, "should_exit", True)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.echo(
        f"gateway (Envoy) on http://{host}:{port}/v1 routing to {where} (profile {config.profile}); "
        f"picker metrics on http://{host}:{metrics_port}/metrics",
        err=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if plane.exit_code is not None:
        raise typer.Exit(1)


def _source(
    endpoints: str | None, server: str | None, namespace: str | None, failure_mode: str
) -> tuple[EndpointSource, str]:
    from flotilla.api.catalog import build_registry
    from flotilla.client import FlotillaClient
    from flotilla.gateway.endpoints import ClientLister, PoolEndpoints, StaticEndpoints

    if endpoints:
        urls = [u.strip() for u in endpoints.split(",") if u.strip()]
        if not urls:
            raise ValueError("--endpoints: give at least one URL")
        return StaticEndpoints(urls, "FailOpen" if failure_mode == "FailOpen" else "FailClose"), ", ".join(urls)
    client = FlotillaClient(server)
    scope = f"namespace {namespace}" if namespace else "every namespace"
    pools = PoolEndpoints(ClientLister(client, build_registry()), namespace)
    return pools, f"InferencePools at {client.server} ({scope})"
