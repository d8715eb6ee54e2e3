"""`flotilla bench batch`: create the scenario's Jobs on a control plane, poll until they end, record.

One loop, one thread: create the Jobs that are due (at `--qps`, in plan order; kube-burner's qps),
and every `--poll-interval` read the namespace's Jobs, Workloads, Pods and AllocationClaims and the
ClusterQueues, update each Job's times (batch.observe) and append a QueueSample per ClusterQueue.
It ends when every Job has finished (Complete or Failed) or `--timeout` has passed; then jobs.jsonl
and summary.json are written.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from flotilla.api.catalog import build_registry
from flotilla.api.loader import parse_documents
from flotilla.client import ApiError, FlotillaClient, ServerUnavailable
from flotilla.loadgen.batch import (
    DEFAULT_MODELS,
    NAMESPACE,
    RESOURCES,
    RUN_LABEL,
    JobPlan,
    JobTrack,
    Size,
    Slices,
    Snapshot,
    covered_resources,
    job_manifest,
    observe,
    plan_jobs,
    queue_objects,
    queue_samples,
)
from flotilla.loadgen.serve import default_run_dir, machine_info
from flotilla.loadgen.stats import batch_summary
from flotilla.runs.records import JobRecord, RunDir, RunInfo

JSON = dict[str, Any]
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"


@dataclass(frozen=True)
class BatchOptions:
    """The flags of `flotilla bench batch` (see docs/loadgen.md)."""

    server: str
    iterations: int = 1
    slices: Slices = "mig"
    medium_model: str = DEFAULT_MODELS["medium"]
    large_model: str = DEFAULT_MODELS["large"]
    qps: float = 1.0
    poll_interval: float = 0.5
    timeout: float = 1800.0
    output_dir: Path | None = None
    command: str | None = None
    progress: bool = True


def recordings() -> list[Path]:
    """The recordings shipped with Flotilla (flotilla/examples/recordings/*.flac)."""
    folder = Path(str(resources.files("flotilla") / "examples" / "recordings"))
    return sorted(folder.glob("*.flac"))


def demo_queue_docs() -> list[JSON]:
    """The demo's Namespace and queue objects (00-namespace.yaml, 10-queues.yaml)."""
    folder = resources.files("flotilla") / "examples" / "demo"
    docs: list[JSON] = []
    for name in ("00-namespace.yaml", "10-queues.yaml"):
        docs += [d for _, d in parse_documents((folder / name).read_text(encoding="utf-8"), name) if d]
    return docs


def ensure_queues(client: FlotillaClient, slices: Slices, console: Console) -> list[str]:
    """Create the demo's queue objects that are absent; return the names created. Warns when an
    existing ClusterQueue does not cover the resource the Jobs ask for (they would never be admitted)."""
    registry = build_registry()
    gpus = sum(int((n.get("status") or {}).get("capacity", {}).get("nvidia.com/gpu", 0)) for n in _nodes(client))
    missing: list[tuple[str, int, JSON]] = []
    for index, obj in enumerate(queue_objects(demo_queue_docs(), slices, gpus or 8)):
        kind, _ = registry.lookup(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        try:
            existing = client.get(kind, meta["name"], meta.get("namespace"))
        except ApiError as exc:
            if exc.code != 404:
                raise
            missing.append(("flotilla/examples/demo", index, obj))
            continue
        needed = set(RESOURCES[slices].values())
        if obj["kind"] == "ClusterQueue" and not needed <= covered_resources(existing):
            lacking = ", ".join(sorted(needed - covered_resources(existing)))
            console.print(
                f"[yellow]warning: ClusterQueue {meta['name']} does not cover {lacking}: the Jobs cannot be "
                "admitted; add it to the queue's resourceGroups (or delete the queue to let bench batch create it)[/]"
            )
    if missing:
        client.apply(missing)
    return [f"{o['kind']}/{o['metadata']['name']}" for _, _, o in missing]


def _nodes(client: FlotillaClient) -> list[JSON]:
    try:
        return list(client.request("GET", "/api/v1/nodes").get("items") or [])
    except ApiError:
        return []


def snapshot(http: httpx.Client, namespace: str, run_label: str) -> Snapshot:
    """One poll of the objects the scenario's records come from."""

    def items(path: str, selector: str | None = None) -> list[JSON]:
        response = http.get(path, params={"labelSelector": selector} if selector else None)
        response.raise_for_status()
        return list(response.json().get("items") or [])

    mine = f"{RUN_LABEL}={run_label}"
    return Snapshot(
        workloads=items(f"{KUEUE}/namespaces/{namespace}/workloads"),
        pods=items(f"/api/v1/namespaces/{namespace}/pods", mine),
        claims=items(f"/apis/inference.redhat.com/v1alpha1/namespaces/{namespace}/allocationclaims"),
        jobs=items(f"/apis/batch/v1/namespaces/{namespace}/jobs", mine),
        cluster_queues=items(f"{KUEUE}/clusterqueues"),
    )


def run_batch(opts: BatchOptions, console: Console) -> int:
    """Run the scenario; returns the exit code (0: every Job succeeded, 1 otherwise, 2: bad flags)."""
    err = Console(stderr=True)
    if opts.iterations < 1 or opts.poll_interval <= 0 or opts.timeout <= 0 or opts.qps < 0:
        err.print("error: --iterations must be >= 1, --poll-interval and --timeout > 0, --qps >= 0 (0: no pacing)")
        return 2
    audio = recordings()
    if not audio:
        err.print("error: no recordings found in flotilla/examples/recordings (is the package installed whole?)")
        return 1
    client = FlotillaClient(opts.server, timeout=10.0)
    try:
        created_queues = ensure_queues(client, opts.slices, console)
    except (ServerUnavailable, ApiError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 1
    finally:
        client.close()
    if created_queues:
        console.print(f"created {', '.join(created_queues)}")
    run = RunDir((opts.output_dir or default_run_dir("bench-batch")).resolve())
    label = f"bench-{datetime.now(UTC).strftime('%H%M%S')}-{secrets.token_hex(2)}"
    models: dict[Size, str] = {"medium": opts.medium_model, "large": opts.large_model}
    plans = plan_jobs(label, opts.iterations, audio, models)
    started = datetime.now(UTC)
    origin, clock0 = started.timestamp(), time.perf_counter()
    run.start(
        RunInfo(
            kind="bench-batch",
            name=f"batch-{opts.iterations}-iterations",
            started_at=started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            stages=["transcribe"],
            config={**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items() if k != "progress"}}
            | {"recordings": [str(a) for a in audio], "run_label": label, "namespace": NAMESPACE, "jobs": len(plans)},
            machine=machine_info(),
        )
    )
    console.print(f"bench batch: {len(plans)} Jobs ({label}) on {opts.server}, results in {run.path}")
    tracks: dict[str, JobTrack] = {}
    try:
        timed_out, error = _loop(opts, run, plans, tracks, label, origin, clock0, console)
    except KeyboardInterrupt:
        run.write_records([t.record() for t in tracks.values()], JobRecord)
        run.finish("interrupted", "interrupted by the user")
        return 130
    records = [t.record() for t in tracks.values()]
    run.write_records(records, JobRecord)
    summary = batch_summary(records) | {"timed_out": timed_out, "run_label": label, "slices": opts.slices}
    run.write_summary(summary)
    print_batch(records, summary, console)
    failed = summary["failed"] + summary["unfinished"] + (len(plans) - len(records))
    outcome = error or (
        f"{summary['succeeded']} of {len(plans)} Jobs succeeded"
        + (f", timed out after {opts.timeout:g} s" if timed_out else "")
    )
    run.finish("failed" if failed or error else "succeeded", outcome)
    console.print(f"{outcome}; results in {run.path}")
    return 1 if failed or error else 0


def _loop(
    opts: BatchOptions,
    run: RunDir,
    plans: list[JobPlan],
    tracks: dict[str, JobTrack],
    label: str,
    origin: float,
    clock0: float,
    console: Console,
) -> tuple[bool, str]:
    """Create and poll until every Job finished; (timed out, error that stopped the creation)."""

    def now() -> float:
        return time.perf_counter() - clock0

    transcripts = run.path / "transcripts"
    transcripts.mkdir(parents=True, exist_ok=True)
    rec_dir = plans[0].audio.parent
    columns = (TextColumn("jobs finished"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"))
    error, next_poll, prev_poll = "", 0.0, 0.0
    with (
        httpx.Client(base_url=opts.server, timeout=10.0) as http,
        Progress(*columns, console=console, disable=not opts.progress) as bar,
    ):
        task = bar.add_task("jobs", total=len(plans), detail="")
        while True:
            while not error and len(tracks) < len(plans) and (opts.qps <= 0 or now() >= len(tracks) / opts.qps):
                plan = plans[len(tracks)]
                body = job_manifest(
                    plan,
                    run_label=label,
                    recordings_dir=rec_dir,
                    transcripts_dir=transcripts,
                    slices=opts.slices,
                    command=opts.command,
                )
                created_at = now()
                response = http.post(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", json=body)
                if response.status_code >= 300:
                    error = f"creating Job {plan.name}: HTTP {response.status_code}: {response.text[:300]}"
                    console.print(f"[red]{escape(error)}[/]")
                    break
                tracks[plan.name] = JobTrack(plan, created_at)
            if now() >= next_poll:
                poll_start = now()
                try:
                    snap = snapshot(http, NAMESPACE, label)
                except httpx.HTTPError as exc:
                    console.print(f"[yellow]poll failed ({escape(str(exc))}); trying again[/]")
                else:
                    observe(tracks, snap, prev_poll, now(), origin)
                    run.append(queue_samples(snap, tracks, now()))
                    prev_poll = poll_start
                    states = [t.status for t in tracks.values()]
                    detail = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
                    bar.update(task, completed=sum(t.finished for t in tracks.values()), detail=detail)
                next_poll = poll_start + opts.poll_interval
            everything_created = error or len(tracks) == len(plans)
            if everything_created and all(t.finished for t in tracks.values()):
                return False, error
            if now() >= opts.timeout:
                return True, error
            due = [next_poll]
            if not everything_created and opts.qps > 0:
                due.append(len(tracks) / opts.qps)
            time.sleep(max(0.0, min(due) - now()))


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_batch(records: list[JobRecord], summary: JSON, console: Console) -> None:
    """A row per Job, then the run's makespan, JCT and queue wait."""
    table = Table(title="Jobs (WAIT: queue wait, RUN: run time, JCT: completion time; seconds)")
    for head in ("JOB", "STATUS", "WAIT", "RUN", "JCT", "NODE", "SLICE", "GPU", "SLOTS"):
        right = head in ("WAIT", "RUN", "JCT")
        table.add_column(head, no_wrap=True, justify="right" if right else "left", min_width=len(head))
    label = str(summary.get("run_label", ""))
    for r in records:
        name = r.name.split("/")[-1].removeprefix(f"{label}-") if label else r.name.split("/")[-1]
        row = (name, r.status, _s(r.queue_wait), _s(r.run_time), _s(r.completion_time), r.node, r.slice)
        table.add_row(*row, r.gpu[:12], r.placement)
    console.print(table)
    totals = Table(title="Batch run")
    for head in ("METRIC", "MEAN", "MEDIAN", "P90"):
        totals.add_column(head, justify="left" if head == "METRIC" else "right")
    for key, title in (("jct", "JCT (s)"), ("queue_wait", "queue wait (s)"), ("run_time", "run time (s)")):
        d = summary[key]
        totals.add_row(title, _s(d["mean"]), _s(d["median"]), _s(d["p90"]))
    console.print(totals)
    console.print(
        f"makespan {_s(summary['makespan'])} s; {summary['succeeded']} succeeded, {summary['failed']} failed, "
        f"{summary['unfinished']} unfinished"
    )
