"""`flotilla kube ...`: render, validate, apply, status and delete manifests for a real cluster.

    flotilla kube render -f PROJECT -o DIR [--kueue-version v1beta2|v1beta1] [--picker flotilla|llm-d]
        [--multikueue clusters.yaml] [--image ...] [--gpus 2x8xA100-80GB]
    flotilla kube validate DIR [--crds PATH ...] [--kubernetes-version 1.33]
    flotilla kube apply DIR [--kubeconfig ...] [--context ...] [--dry-run]
    flotilla kube status DIR
    flotilla kube delete DIR

Heavy imports (the kubernetes client, the schemas) happen inside the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from flotilla.api.registry import Kind
    from flotilla.kube.cluster import KubeClient
    from flotilla.kube.validate import Report, Validator

kube_app = typer.Typer(
    name="kube", help="Kubernetes mode: render, validate and apply the project on a real cluster.", no_args_is_help=True
)

CrdsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--crds",
        help="CRD files or folders to validate custom resources against (repeatable; default: $FLOTILLA_CRDS, "
        "else the Kueue and GAIE CRDs in the project's shared/reference).",
    ),
]
K8sVersionOpt = Annotated[
    str | None,
    typer.Option("--kubernetes-version", help="Kubernetes version of the built-in schemas (default: the newest)."),
]
KubeconfigOpt = Annotated[
    str | None, typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="kubeconfig context (default: the current one).")]
ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="API server URL without credentials (`kubectl proxy`, an emulator); not kubeconfig."),
]
DirArg = Annotated[Path, typer.Argument(help="Folder (or file) of manifests, e.g. what `kube render` wrote.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _validator(crds: list[Path] | None, kubernetes_version: str | None) -> Validator:
    from flotilla.api.catalog import build_registry
    from flotilla.kube import multikueue, schemas
    from flotilla.kube.validate import Validator

    try:
        index = schemas.CrdIndex.load(crds if crds else schemas.default_crd_paths())
        return Validator(index.with_versions(multikueue.SCHEMAS), build_registry(), kubernetes_version)
    except (schemas.CrdError, ValueError) as exc:
        raise _fail(str(exc), 2) from None


def _print_report(report: Report, verbose: bool) -> None:
    if verbose:
        typer.echo(report.summary(), err=True)
    else:
        for line in report.unchecked:
            typer.echo(f"not checked: {line}", err=True)
    for error in report.errors:
        typer.echo(str(error), err=True)


@kube_app.command()
def render(
    filename: Annotated[
        list[str], typer.Option("--filename", "-f", help="Project file or folder (repeatable), as for `apply -f`.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the manifests to.")],
    kueue_version: Annotated[
        str, typer.Option("--kueue-version", help="v1beta2 (Kueue 0.15+) or v1beta1 (older Kueue).")
    ] = "v1beta2",
    picker: Annotated[str, typer.Option(help="Endpoint picker per InferencePool: flotilla or llm-d.")] = "flotilla",
    image: Annotated[str | None, typer.Option(help="Flotilla's image (Jobs, picker, health checker).")] = None,
    gpus: Annotated[
        str | None, typer.Option(help="The cluster's GPUs (NODESxGPUSxMODEL), sizing Pipelines' queues.")
    ] = None,
    gateway_class: Annotated[
        str | None, typer.Option("--gateway-class", help="GatewayClass of rendered Gateways (default: istio).")
    ] = None,
    multikueue_file: Annotated[
        Path | None,
        typer.Option("--multikueue", help="Cluster list: render a MultiKueue manager (see docs/kubernetes.md)."),
    ] = None,
    validate: Annotated[bool, typer.Option("--validate/--no-validate", help="Validate before writing.")] = True,
    crds: CrdsOpt = None,
    kubernetes_version: K8sVersionOpt = None,
) -> None:
    """Render the project's objects as the manifests a cluster with Kueue, DAS and GAIE/llm-d needs."""
    from pydantic import ValidationError

    from flotilla.api.catalog import build_registry
    from flotilla.api.errors import ManifestErrors
    from flotilla.api.loader import load_paths
    from flotilla.kube.multikueue import MultiKueueError, load_cluster_list
    from flotilla.kube.options import RenderOptions
    from flotilla.kube.render import render as render_objects
    from flotilla.kube.render import write
    from flotilla.kube.workloads import cluster_nodes
    from flotilla.slicer.inventory import GPUConfigError

    overrides = {
        k: v
        for k, v in {"kueue_version": kueue_version, "picker": picker, "image": image, "gpus": gpus}.items()
        if v is not None
    }
    if gateway_class is not None:
        overrides["gateway_class"] = gateway_class
    try:
        options = RenderOptions.model_validate(overrides)
        cluster_nodes(options.gpus)
    except ValidationError as exc:
        problems = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise _fail(problems, 2) from None
    except GPUConfigError as exc:
        raise _fail(f"--gpus: {exc}", 2) from None
    registry = build_registry()
    try:
        clusters = load_cluster_list(multikueue_file) if multikueue_file is not None else None
        loaded = load_paths(filename, registry, stdin=sys.stdin)
        rendering = render_objects(loaded, options, registry, clusters)
    except (ManifestErrors, MultiKueueError) as exc:
        raise _fail(f"nothing was rendered; fix these first:\n{exc}") from None
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    files = rendering.files()
    if validate:
        report = _validator(crds, kubernetes_version).validate_sources(
            (path, text) for path, text in files.items() if path.endswith(".yaml")
        )
        _print_report(report, verbose=False)
        if not report.ok:
            raise _fail(f"the rendering is invalid ({len(report.errors)} objects); nothing was written")
    written = write(rendering, output)
    for note in rendering.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {len(written)} files ({len(rendering.manifests)} objects) to {output}")


@kube_app.command()
def validate(
    path: DirArg,
    crds: CrdsOpt = None,
    kubernetes_version: K8sVersionOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say what each kind was checked against.")] = False,
) -> None:
    """Check manifests against the Kueue and GAIE CRDs and Kubernetes' schemas (unknown fields are errors)."""
    from flotilla.api.loader import read_sources

    validator = _validator(crds, kubernetes_version)
    try:
        sources = read_sources([path])
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    report = validator.validate_sources(sources)
    _print_report(report, verbose)
    if not report.ok:
        raise _fail(f"{len(report.errors)} invalid objects")
    typer.echo(f"{sum(report.checked.values())} objects valid, {len(report.unchecked)} not checked")


@contextmanager
def _client(kubeconfig: str | None, context: str | None, server: str | None) -> Iterator[KubeClient]:
    from flotilla.kube.cluster import KubeApiError, KubeClient, MissingKinds

    if server and (kubeconfig or context):
        raise _fail("give --server or --kubeconfig/--context, not both", 2)
    try:
        client = KubeClient.for_url(server) if server else KubeClient.from_kubeconfig(kubeconfig, context)
    except Exception as exc:  # the kubernetes client's config errors have no common base
        raise _fail(f"cannot reach a cluster: {exc}") from None
    try:
        yield client
    except (KubeApiError, MissingKinds) as exc:
        raise _fail(str(exc)) from None
    finally:
        client.close()


def _manifests(path: Path) -> list[dict[str, object]]:
    from flotilla.api.loader import parse_documents, read_sources

    try:
        docs = [doc for source, text in read_sources([path]) for _, doc in parse_documents(text, source)]
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    return [d for d in docs if isinstance(d, dict)]


@kube_app.command("apply")
def apply_cmd(
    path: DirArg,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    server: ServerOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Server-side dry run: nothing is stored.")] = False,
    validate: Annotated[bool, typer.Option("--validate/--no-validate", help="Validate first (default).")] = True,
    crds: CrdsOpt = None,
) -> None:
    """Server-side apply (field manager `flotilla`) in dependency order, after checking the CRDs are installed."""
    from flotilla.api.loader import read_sources
    from flotilla.kube.cluster import apply

    if validate:
        try:
            report = _validator(crds, None).validate_sources(read_sources([path]))
        except FileNotFoundError as exc:
            raise _fail(str(exc)) from None
        _print_report(report, verbose=False)
        if not report.ok:
            raise _fail(f"{len(report.errors)} invalid objects; nothing was applied")
    objects = _manifests(path)
    with _client(kubeconfig, context, server) as client:
        for outcome in apply(client, objects, dry_run=dry_run):
            typer.echo(f"{outcome.ref} {outcome.action}")


@kube_app.command("delete")
def delete_cmd(
    path: DirArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None, server: ServerOpt = None
) -> None:
    """Delete the objects of the manifests, in reverse dependency order."""
    from flotilla.kube.cluster import delete

    objects = _manifests(path)
    with _client(kubeconfig, context, server) as client:
        for outcome in delete(client, objects):
            typer.echo(f"{outcome.ref} {outcome.action}")


@kube_app.command("status")
def status_cmd(
    path: DirArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None, server: ServerOpt = None
) -> None:
    """Queues, Workloads, Jobs, pods, model servers and InferencePools of the manifests, like `flotilla get`."""
    from flotilla.kube.cluster import status
    from flotilla.kube.status import tables

    objects = _manifests(path)
    with _client(kubeconfig, context, server) as client:
        result = status(client, objects)
    typer.echo(tables(result, render_table))


@kube_app.command()
def picker(
    pool_name: Annotated[str, typer.Option("--pool-name", help="The InferencePool this picker serves.")],
    pool_namespace: Annotated[str, typer.Option("--pool-namespace", help="The pool's namespace.")],
    profile: Annotated[str, typer.Option(help="Scheduling profile (default, precise-prefix, llm-d, ...).")] = "default",
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="ext_proc (gRPC) port the Gateway calls.")] = 9002,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Port of /metrics and /health.")] = 9090,
    kubeconfig: KubeconfigOpt = None,
    server: ServerOpt = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run one InferencePool's endpoint picker in a cluster (GAIE's EPP protocol, Flotilla's scheduling)."""
    import asyncio
    import contextlib
    import logging

    from flotilla.kube.agents import run_picker

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with _client(kubeconfig, None, server) as client, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_picker(client, pool_name, pool_namespace, profile, grpc_port, metrics_port))


@kube_app.command("health-agent")
def health_agent(
    node: Annotated[str, typer.Option(help="This node's name (the DaemonSet passes spec.nodeName).")],
    interval: Annotated[float, typer.Option(help="Seconds between checks.", min=1)] = 30.0,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Port of /metrics and /health.")] = 9400,
    kubeconfig: KubeconfigOpt = None,
    server: ServerOpt = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Check this node's GPUs (NVML) and label the Node autopilot.ibm.com/gpuhealth, as IBM Autopilot does."""
    import logging
    import threading

    from prometheus_client import CollectorRegistry, start_http_server

    from flotilla.kube.agents import HealthAgent, local_gpus
    from flotilla.slicer.backends import NoGPUError
    from flotilla.telemetry.dcgm import GPUMetricsCollector
    from flotilla.telemetry.nvml import NvmlReader

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        gpus = local_gpus()
    except NoGPUError as exc:
        raise _fail(str(exc)) from None
    with _client(kubeconfig, None, server) as client:
        agent = HealthAgent(client, node, gpus, lambda gpu: NvmlReader(str(gpu["uuid"])))
        registry = CollectorRegistry()
        registry.register(GPUMetricsCollector(lambda: agent.snapshot))
        start_http_server(metrics_port, registry=registry)  # /metrics (and any other path answers too)
        stop = threading.Event()
        try:
            while not stop.is_set():
                agent.run_once()
                stop.wait(interval)
        except KeyboardInterrupt:
            pass
        finally:
            agent.close()


@kube_app.command()
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: standard output).")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", "-s", help="Control-plane URL (default: $FLOTILLA_SERVER or local).")
    ] = None,
) -> None:
    """The embedded control plane's queues, jobs, model servers and routes as manifests (for `kube render -f`)."""
    from flotilla.api.catalog import build_registry
    from flotilla.client import ApiError, FlotillaClient, ServerUnavailable
    from flotilla.kube.exporting import export as export_objects
    from flotilla.kube.objects import dump_documents

    registry = build_registry()
    try:
        with FlotillaClient(server) as client:
            objects = export_objects(lambda kind: list(client.list(kind).get("items") or []), registry)
    except (ServerUnavailable, ApiError) as exc:
        raise _fail(str(exc)) from None
    text = dump_documents(objects)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(objects)} objects to {output}", err=True)


def render_table(kind: Kind, items: Iterable[dict[str, Any]]) -> str:
    """`flotilla get`'s table of `items`, every namespace (for `flotilla kube status`)."""
    from flotilla.cli import printers

    return printers.table(kind, items, all_namespaces=True)
