"""`flotilla fault inject|clear|list`: faults in emulated GPUs, to exercise the health checks.

A fault is an entry in a Node's `status.gpus[i].faults`; the emulated GPU reader turns it into
readings (`flotilla.telemetry.readings.EmulatedReader`) and the health monitor into a verdict on
its next pass. Real GPUs are never touched: a target that includes one is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, get_args

import typer

from flotilla.api.catalog import build_registry
from flotilla.api.core import GPUFault
from flotilla.cli.resources import ServerOpt, _client, _fail
from flotilla.client import ApiError

JSON = dict[str, Any]
FAULT_KINDS: tuple[str, ...] = get_args(GPUFault)
MAX_ATTEMPTS = 5

app = typer.Typer(
    name="fault",
    help="Inject faults into emulated GPUs (and clear them) to exercise the health checks.",
    no_args_is_help=True,
)
TargetArg = Annotated[
    str,
    typer.Argument(
        metavar="NODE[/GPU]", help="A node (all its GPUs) or NODE/GPU, where GPU is an index (0) or a UUID."
    ),
]
KindArg = Annotated[str, typer.Argument(metavar="KIND", help="One of: " + ", ".join(FAULT_KINDS) + ".")]


def _kind_arg(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise _fail(f'unknown fault "{kind}"; use one of: {", ".join(FAULT_KINDS)}')
    return kind


def _gpu_ref(gpu: JSON, node: str) -> str:
    return f"{node}/{gpu.get('index')} ({gpu.get('uuid')})"


def _select(node: JSON, ref: str | None) -> list[JSON]:
    """The GPUs of `node` that `ref` names (all of them when None)."""
    name = node["metadata"]["name"]
    gpus: list[JSON] = (node.get("status") or {}).get("gpus") or []
    if not gpus:
        raise _fail(f"node {name} has no GPUs in status.gpus")
    if ref is None:
        return gpus
    chosen = [g for g in gpus if str(g.get("index")) == ref or g.get("uuid") == ref]
    if not chosen:
        known = ", ".join(f"{g.get('index')} ({g.get('uuid')})" for g in gpus)
        raise _fail(f'node {name} has no GPU "{ref}"; its GPUs: {known}')
    return chosen


def _refuse_real(gpus: list[JSON], node: str) -> None:
    real = [_gpu_ref(g, node) for g in gpus if not g.get("emulated")]
    if real:
        raise _fail(
            f"refusing to touch real GPU(s) {', '.join(real)}: faults can only be injected into emulated GPUs"
            + ("; name an emulated GPU as NODE/GPU" if len(real) < len(gpus) else "")
        )


def _change(target: str, server: str | None, mutate: Callable[[JSON], tuple[bool, str]]) -> list[str]:
    """Apply `mutate` (returns whether it changed the GPU, and a line to print) to each targeted GPU
    of the Node and write its status if any changed, read again and retried if someone wrote the
    Node in between. Returns the lines."""
    node_name, _, ref = target.partition("/")
    if not node_name:
        raise _fail(f'bad target "{target}"; use NODE or NODE/GPU (GPU: an index or a UUID)')
    kind = build_registry().resolve("nodes")
    with _client(server) as client:
        for attempt in range(MAX_ATTEMPTS):
            node = client.get(kind, node_name)
            gpus = _select(node, ref or None)
            _refuse_real(gpus, node_name)
            results = [mutate(g) for g in gpus]
            lines = [line for _, line in results if line]
            if not any(changed for changed, _ in results):
                return lines
            try:
                client.update(kind, node, status=True)
            except ApiError as exc:
                if exc.reason == "Conflict" and attempt + 1 < MAX_ATTEMPTS:
                    continue
                raise
            return lines
    return []  # pragma: no cover - the loop returns or raises


@app.command()
def inject(target: TargetArg, kind: KindArg, server: ServerOpt = None) -> None:
    """Inject a fault into an emulated GPU (or every GPU of a node); the health checks see it on
    their next pass: remapped-rows -> EVICT, pcie-degraded -> WARN, xid (79) -> EVICT, offline -> ERR."""
    fault = _kind_arg(kind)
    node = target.partition("/")[0]

    def add(gpu: JSON) -> tuple[bool, str]:
        faults = list(gpu.get("faults") or [])
        if fault in faults:
            return False, f"{_gpu_ref(gpu, node)}: already has fault {fault}"
        gpu["faults"] = [*faults, fault]
        return True, f"{_gpu_ref(gpu, node)}: fault {fault} injected"

    for line in _change(target, server, add):
        typer.echo(line)


@app.command()
def clear(
    target: TargetArg,
    kind: Annotated[str | None, typer.Argument(metavar="[KIND]", help="The fault to clear (default: all).")] = None,
    server: ServerOpt = None,
) -> None:
    """Clear one fault (or all) from an emulated GPU, or from every GPU of a node."""
    fault = _kind_arg(kind) if kind is not None else None
    node = target.partition("/")[0]

    def remove(gpu: JSON) -> tuple[bool, str]:
        faults = list(gpu.get("faults") or [])
        kept = [f for f in faults if fault is not None and f != fault]
        if kept == faults:
            return False, ""
        removed = [f for f in faults if f not in kept]
        if kept:
            gpu["faults"] = kept
        else:
            gpu.pop("faults", None)
        return True, f"{_gpu_ref(gpu, node)}: fault {', '.join(removed)} cleared"

    lines = _change(target, server, remove)
    for line in lines:
        typer.echo(line)
    if not lines:
        typer.echo(f"{target}: no {fault or 'faults'} to clear")


@app.command("list")
def list_faults(
    node: Annotated[str | None, typer.Argument(metavar="[NODE]", help="Only this node's GPUs.")] = None,
    server: ServerOpt = None,
) -> None:
    """List GPUs with their injected faults and last health verdict."""
    kind = build_registry().resolve("nodes")
    with _client(server) as client:
        items = [client.get(kind, node)] if node else list(client.list(kind)["items"])
    header = ["NODE", "GPU", "UUID", "EMULATED", "FAULTS", "HEALTH", "MESSAGE"]
    rows = [
        [
            n["metadata"]["name"],
            str(g.get("index", "")),
            str(g.get("uuid", "")),
            "yes" if g.get("emulated") else "no",
            ",".join(g.get("faults") or []) or "<none>",
            g.get("health") or "<unknown>",
            g.get("healthMessage") or "",
        ]
        for n in sorted(items, key=lambda n: str(n["metadata"]["name"]))
        for g in (n.get("status") or {}).get("gpus") or []
    ]
    if not rows:
        typer.echo("No GPUs found.", err=True)
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("   ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
