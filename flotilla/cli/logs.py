"""`flotilla logs`: what a pod's containers printed, for a pod or for every pod of a Job."""

from __future__ import annotations

from typing import Annotated

import typer

from flotilla.api.catalog import build_registry
from flotilla.cli.resources import NamespaceOpt, ServerOpt, _client, _fail


def logs(
    target: Annotated[str, typer.Argument(metavar="[pod/]NAME | job/NAME", help="A pod, or a Job (all its pods).")],
    container: Annotated[
        str | None, typer.Option("--container", "-c", help="Container (default: the only one).")
    ] = None,
    tail: Annotated[int | None, typer.Option("--tail", help="Only the last N lines.")] = None,
    namespace: NamespaceOpt = None,
    server: ServerOpt = None,
) -> None:
    """Print a container's output (like kubectl logs). For job/NAME, every pod of the Job in turn,
    oldest first, each under a `==> pod <==` header when there are several."""
    kind, _, name = target.rpartition("/")
    ns = namespace or "default"
    registry = build_registry()
    with _client(server) as client:
        if kind in ("job", "jobs", "job.batch"):
            pods = client.list(registry.resolve("pods"), ns, selector=f"batch.kubernetes.io/job-name={name}")["items"]
            if not pods:
                client.get(registry.resolve("jobs"), name, ns)  # 404 with the API's message when absent
                raise _fail(f"job {name} has no pods yet")
            pods.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        elif kind in ("", "pod", "pods", "po"):
            pods = [client.get(registry.resolve("pods"), name, ns)]
        else:
            raise _fail(f"cannot show logs of {kind}; use pod/NAME or job/NAME")
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            if len(pods) > 1:
                typer.echo(f"==> {pod_name} <==")
            text = client.logs(ns, pod_name, container, tail)
            typer.echo(text, nl=not text.endswith("\n") and bool(text))
