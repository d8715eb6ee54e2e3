"""`flotilla scale deployment/NAME --replicas N`, as `kubectl scale` does it."""

from __future__ import annotations

from typing import Annotated

import typer

from flotilla.api.catalog import build_registry
from flotilla.cli.resources import NamespaceOpt, ServerOpt, _client, _fail, _ref, _split


def scale(
    target: Annotated[str, typer.Argument(metavar="deployment/NAME", help="The Deployment to scale (deploy/NAME).")],
    replicas: Annotated[int, typer.Option("--replicas", help="How many pods to keep ready.", min=0)],
    name: Annotated[str | None, typer.Argument(metavar="", help="Its name, when the kind comes first.")] = None,
    namespace: NamespaceOpt = None,
    server: ServerOpt = None,
) -> None:
    """Set a Deployment's replicas; its controller creates or deletes pods to match."""
    kind_name, obj_name = _split(target, name)
    kind = build_registry().resolve(kind_name)
    if kind.kind != "Deployment":
        raise _fail(f"cannot scale {kind.kind}; only Deployments have replicas here")
    if not obj_name:
        raise _fail("name the Deployment: flotilla scale deployment/NAME --replicas N")
    with _client(server) as client:
        client.patch(kind, obj_name, {"spec": {"replicas": replicas}}, namespace or "default")
    typer.echo(f"{_ref(kind, obj_name)} scaled")
