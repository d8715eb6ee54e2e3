"""`flotilla queue hold|resume` (Kueue's stopPolicy) and the queueing section of `describe wl`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any

import typer

from flotilla.api.catalog import build_registry
from flotilla.api.registry import Kind, UnknownKind
from flotilla.cli.resources import NamespaceOpt, ServerOpt, _client, _fail, _ref
from flotilla.client import FlotillaClient
from flotilla.queue import workloads as wls
from flotilla.queue.build import ApiObjects, cluster_queue_inactive, queue_order_timestamp, workload_priority
from flotilla.queue.types import QueueConfig

JSON = dict[str, Any]
queue_app = typer.Typer(
    name="queue",
    help="Hold, drain and resume ClusterQueues and LocalQueues (Kueue's spec.stopPolicy).",
    no_args_is_help=True,
)
TargetArg = Annotated[str, typer.Argument(metavar="[cq|lq] NAME", help="A ClusterQueue name, or cq NAME / lq NAME.")]
NameArg = Annotated[str | None, typer.Argument(metavar="", help="The queue's name when a kind comes first.")]


def _target(target: str, name: str | None) -> tuple[Kind, str]:
    """`cq1`, `cq cq1`, `lq team-a`, `lq/team-a`, `clusterqueue/cq1` -> (kind, name)."""
    if name is None and "/" in target:
        target, _, name = target.partition("/")
    if name is None:
        target, name = "clusterqueues", target
    try:
        kind = build_registry().resolve(target)
    except UnknownKind as exc:
        raise _fail(str(exc)) from None
    if kind.kind not in ("ClusterQueue", "LocalQueue"):
        raise _fail(f"{kind.kind} has no stopPolicy; hold or resume a ClusterQueue (cq) or a LocalQueue (lq)")
    return kind, name


def _set_stop_policy(target: str, name: str | None, namespace: str | None, server: str | None, policy: str) -> str:
    kind, obj_name = _target(target, name)
    ns = (namespace or "default") if kind.namespaced else None
    with _client(server) as client:
        client.patch(kind, obj_name, {"spec": {"stopPolicy": policy}}, ns)
    return _ref(kind, obj_name)


@queue_app.command()
def hold(
    target: TargetArg,
    name: NameArg = None,
    drain: Annotated[
        bool, typer.Option("--drain", help="Also evict the admitted workloads (stopPolicy HoldAndDrain).")
    ] = False,
    namespace: NamespaceOpt = None,
    server: ServerOpt = None,
) -> None:
    """Stop a queue admitting workloads (Hold); with --drain also evict what it admitted."""
    ref = _set_stop_policy(target, name, namespace, server, "HoldAndDrain" if drain else "Hold")
    typer.echo(f"{ref} held" + (" (draining admitted workloads)" if drain else ""))


@queue_app.command()
def resume(target: TargetArg, name: NameArg = None, namespace: NamespaceOpt = None, server: ServerOpt = None) -> None:
    """Let a held queue admit workloads again (stopPolicy None)."""
    typer.echo(f"{_set_stop_policy(target, name, namespace, server, 'None')} resumed")


# -- describe wl -----------------------------------------------------------------------------------
def queue_position(
    wl: Mapping[str, Any], objs: ApiObjects, config: QueueConfig | None = None
) -> tuple[int, int, int, int] | None:
    """(place in the ClusterQueue, pending there, place in the LocalQueue, pending there), 1-based,
    in Kueue's queue order: higher priority first, then the earlier queue timestamp."""
    config = config or QueueConfig()
    cq = objs.cluster_queue_name_of(wl)
    if cq is None or not wls.is_pending(wl):
        return None

    def order(w: Mapping[str, Any]) -> tuple[int, float, str]:
        return (-workload_priority(w, objs.priority_classes), queue_order_timestamp(w, config), wls.key(w))

    pending = (w for w in objs.workloads.values() if wls.is_pending(w) and objs.cluster_queue_name_of(w) == cq)
    in_cq = [wls.key(w) for w in sorted(pending, key=order)]
    lq = f"{wl['metadata']['namespace']}/{(wl.get('spec') or {}).get('queueName')}"
    in_lq = [k for k in in_cq if f"{k.split('/')[0]}/{objs.workloads[k]['spec'].get('queueName')}" == lq]
    me = wls.key(wl)
    if me not in in_cq:
        return None
    return in_cq.index(me) + 1, len(in_cq), in_lq.index(me) + 1, len(in_lq)


def explain_workload(wl: Mapping[str, Any], objs: ApiObjects, config: QueueConfig | None = None) -> list[str]:
    """Why a Workload waits, or where it runs: its QuotaReserved reason and message, its place in
    the queue, and its ClusterQueue's reservations against nominal quota."""
    spec, status = wl.get("spec") or {}, wl.get("status") or {}
    cq_name = objs.cluster_queue_name_of(wl)
    lines = [
        f"  Queue:        LocalQueue {spec.get('queueName') or '<none>'} -> ClusterQueue {cq_name or '<none>'}",
        f"  State:        {wls.state(wl)}{'' if wls.is_active(wl) else ' (deactivated)'}",
    ]
    reserved = wls.find_condition(wl, wls.QUOTA_RESERVED)
    if wls.is_finished(wl):
        done = wls.find_condition(wl, wls.FINISHED) or {}
        lines.append(f"  Finished:     {done.get('reason')}: {done.get('message')}")
    elif status.get("admission"):
        lines.append(f"  Reserved in:  ClusterQueue {status['admission']['clusterQueue']}")
    elif reserved is not None:
        lines.append(f"  Waiting:      {reserved.get('reason')}: {reserved.get('message')}")
    else:
        lines.append("  Waiting:      not yet considered by the queue controller")
    if wls.requeue_at(wl):
        lines.append(f"  Requeue at:   {wls.rfc3339(wls.requeue_at(wl))} (evicted {wls.requeue_count(wl)} time(s))")
    position = queue_position(wl, objs, config)
    if position is not None:
        lq_name = spec.get("queueName")
        lines.append(
            f"  Position:     {position[0]} of {position[1]} pending in ClusterQueue {cq_name}"
            f" ({position[2]} of {position[3]} in LocalQueue {lq_name})"
        )
    cq = objs.cluster_queues.get(cq_name or "")
    if cq is None:
        return lines
    inactive = cluster_queue_inactive(cq, objs.flavors)
    if inactive is not None:
        lines.append(f"  ClusterQueue: inactive ({inactive[0]}): {inactive[1]}")
    reserved_now = {
        (f["name"], r["name"]): r.get("total", "0")
        for f in (cq.get("status") or {}).get("flavorsReservation") or []
        for r in f.get("resources") or []
    }
    lines.append(f"  Usage of ClusterQueue {cq_name} (reserved / nominal quota):")
    for group in (cq.get("spec") or {}).get("resourceGroups") or []:
        for flavor in group["flavors"]:
            for quota in flavor["resources"]:
                used = reserved_now.get((flavor["name"], quota["name"]), "0")
                lines.append(f"    {quota['name']} ({flavor['name']}): {used} / {quota['nominalQuota']}")
    return lines


def workload_section(client: FlotillaClient, wl: JSON) -> str:
    """The `Queueing:` section of `flotilla describe wl`."""
    registry = build_registry()

    def items(kind: str) -> list[JSON]:
        return list(client.list(registry.resolve(kind), None)["items"])

    objs = ApiObjects.from_lists(
        cluster_queues=items("clusterqueues"),
        flavors=items("resourceflavors"),
        local_queues=items("localqueues"),
        workloads=items("workloads"),
        priority_classes=items("workloadpriorityclasses"),
    )
    return "Queueing:\n" + "\n".join(explain_workload(wl, objs))


# Extra sections of `flotilla describe`, by kind.
DESCRIBE_SECTIONS: Mapping[str, Callable[[FlotillaClient, JSON], str]] = MappingProxyType(
    {"Workload": workload_section}
)
