"""`flotilla apply / get / describe / delete`: kubectl's verbs against the control plane."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from flotilla.api.catalog import build_registry
from flotilla.api.errors import ManifestErrors
from flotilla.api.loader import load_paths
from flotilla.api.registry import Kind, Registry, UnknownKind
from flotilla.cli import printers
from flotilla.client import ApiError, FlotillaClient, ServerUnavailable

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", "-s", help="Control-plane URL (default: $FLOTILLA_SERVER or http://127.0.0.1:8470)."),
]
NamespaceOpt = Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace (default: default).")]
FilesOpt = Annotated[list[str], typer.Option("--filename", "-f", help="File, folder (recursive) or - for stdin.")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def _client(server: str | None) -> Iterator[FlotillaClient]:
    client = FlotillaClient(server)
    try:
        yield client
    except ServerUnavailable as exc:
        raise _fail(str(exc)) from None
    except ApiError as exc:
        raise _fail(str(exc)) from None
    finally:
        client.close()


def _kind(registry: Registry, name: str) -> Kind:
    try:
        return registry.resolve(name)
    except UnknownKind as exc:
        raise _fail(str(exc)) from None


def _ref(kind: Kind, name: str) -> str:
    return f"{kind.singular}.{kind.group}/{name}" if kind.group else f"{kind.singular}/{name}"


def _split(kind_arg: str, name: str | None) -> tuple[str, str | None]:
    if "/" in kind_arg and name is None:
        k, _, n = kind_arg.partition("/")
        return k, n
    return kind_arg, name


def _load(files: list[str], registry: Registry) -> list[Any]:
    try:
        return load_paths(files, registry, stdin=sys.stdin)
    except ManifestErrors as exc:
        raise _fail(f"nothing was applied; fix these first:\n{exc}") from None
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None


def apply(filename: FilesOpt, namespace: NamespaceOpt = None, server: ServerOpt = None) -> None:
    """Create or update the objects in files, folders or stdin (all or nothing)."""
    registry = build_registry()
    if not filename:
        raise _fail("give at least one -f FILE, folder or - (stdin)")
    loaded = _load(filename, registry)
    if not loaded:
        raise _fail("no objects found in " + ", ".join(filename))
    docs = [(o.source, o.doc_index, o.to_dict()) for o in loaded]
    with _client(server) as client:
        try:
            results = client.apply(docs, namespace=namespace)
        except ApiError as exc:
            causes = "\n".join(f"  {c.get('field')}: {c.get('message')}" for c in exc.causes)
            raise _fail(
                f"nothing was applied: {exc}" + (f"\n{causes}" if causes and str(exc) not in causes else "")
            ) from None
    for r in results:
        kind = _kind(registry, f"{r['kind']}.{r['group']}" if r["group"] else r["kind"])
        typer.echo(f"{_ref(kind, r['name'])} {r['action']}")


def get(
    kind_arg: Annotated[
        str, typer.Argument(metavar="KIND[/NAME]", help="Kind, plural or short name (cq, lq, wl, rf, ...).")
    ],
    name: Annotated[str | None, typer.Argument(help="Object name.")] = None,
    namespace: NamespaceOpt = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="List across all namespaces.")] = False,
    output: Annotated[str | None, typer.Option("--output", "-o", help="wide, yaml, json or name.")] = None,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="Label selector, e.g. app=whisper,tier!=gpu.")
    ] = None,
    server: ServerOpt = None,
) -> None:
    """List objects, or show one, like `kubectl get`."""
    registry = build_registry()
    kind_name, name = _split(kind_arg, name)
    if output not in (None, "wide", "yaml", "json", "name"):
        raise _fail(f'unknown output format "{output}"; use wide, yaml, json or name')
    kinds = [_kind(registry, k) for k in kind_name.split(",")]
    ns = None if all_namespaces else (namespace or "default")
    with _client(server) as client:
        for i, kind in enumerate(kinds):
            if name:
                items = [client.get(kind, name, ns)]
            else:
                items = client.list(kind, ns if kind.namespaced else None, selector)["items"]
            _print(kind, items, output, all_namespaces, single=bool(name), ns=ns, first=i == 0)


def _print(
    kind: Kind,
    items: list[Any],
    output: str | None,
    all_ns: bool,
    *,
    single: bool,
    ns: str | None,
    first: bool,
) -> None:
    items = [printers.redact(kind, o) for o in items]
    if output in ("yaml", "json"):
        typer.echo(printers.dump(items[0] if single else printers.as_list(items), output))
    elif output == "name":
        for o in items:
            typer.echo(_ref(kind, o["metadata"]["name"]))
    elif not items:
        where = f" in {ns} namespace" if kind.namespaced and ns else ""
        typer.echo(f"No resources found{where}.", err=True)
    else:
        if not first:
            typer.echo("")
        typer.echo(printers.table(kind, items, wide=output == "wide", all_namespaces=all_ns))


def describe(
    kind_arg: Annotated[str, typer.Argument(metavar="KIND[/NAME]")],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: NamespaceOpt = None,
    server: ServerOpt = None,
) -> None:
    """Show one object in detail (or all of a kind), like `kubectl describe`."""
    registry = build_registry()
    kind_name, name = _split(kind_arg, name)
    kind = _kind(registry, kind_name)
    from flotilla.cli.queue import DESCRIBE_SECTIONS  # here: flotilla.cli.queue imports this module

    section = DESCRIBE_SECTIONS.get(kind.kind)
    with _client(server) as client:
        if name:
            objs = [client.get(kind, name, namespace)]
        else:
            objs = client.list(kind, (namespace or "default") if kind.namespaced else None)["items"]
        texts = [printers.describe(kind, o) + ("\n" + section(client, o) if section else "") for o in objs]
    typer.echo("\n\n".join(texts))


def delete(
    kind_arg: Annotated[str | None, typer.Argument(metavar="[KIND[/NAME]]")] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    filename: FilesOpt = [],  # noqa: B006 - typer needs a literal default
    namespace: NamespaceOpt = None,
    server: ServerOpt = None,
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="Missing objects are not an error.")
    ] = False,
) -> None:
    """Delete objects named in files (-f) or by KIND NAME."""
    registry = build_registry()
    targets: list[tuple[Kind, str, str | None]] = []
    if filename:
        for o in _load(filename, registry):
            targets.append((o.kind, o.obj.name, o.obj.namespace or namespace))
    elif kind_arg:
        kind_name, name = _split(kind_arg, name)
        if not name:
            raise _fail("give a name: flotilla delete KIND NAME (or -f FILE)")
        targets.append((_kind(registry, kind_name), name, namespace))
    else:
        raise _fail("give KIND NAME or -f FILE")
    with _client(server) as client:
        for kind, obj_name, ns in reversed(targets):
            try:
                client.delete(kind, obj_name, ns)
            except ApiError as exc:
                if exc.code == 404 and ignore_not_found:
                    continue
                raise
            typer.echo(f"{_ref(kind, obj_name)} deleted")


def register_resource_commands(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(get)
    app.command()(describe)
    app.command()(delete)
