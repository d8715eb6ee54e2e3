"""`flotilla pipeline run`: run a workflow on a control plane and show it live.

    flotilla pipeline run speech-to-summary --audio DIR --out DIR [--asr-model ...] [--llm-model ...]
        [--slices mig-1g.5gb|whole-gpu|none] [--queue NAME] [--replicas N] [--server URL]
    flotilla pipeline run -f pipeline.yaml

The command builds a Pipeline object (flotilla.dev/v1alpha1) from the flags (or reads it from the
file), hands it to the control plane, and follows its status with a progress display of both
stages. A finished Pipeline of the same name is replaced (a re-run: recordings already transcribed
and summarized are skipped); a running one is followed. With no control plane at --server (or
$FLOTILLA_SERVER), one is started in this process for the run (`--gpus`, emulated by default)
and stopped at the end, with every process it started.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from flotilla.client import FlotillaClient
    from flotilla.server.runner import ControlPlane

pipeline_app = typer.Typer(name="pipeline", help="Multi-stage workflows (speech-to-summary).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
TEMPLATES = ("speech-to-summary",)
JSON = dict[str, Any]


@pipeline_app.callback()
def pipeline() -> None:
    """Multi-stage workflows (speech-to-summary)."""


def build_pipeline(
    name: str,
    namespace: str,
    audio: Path,
    out: Path,
    asr_model: str,
    llm_model: str,
    slices: str,
    queue: str | None,
    replicas: int,
    backoff_limit: int,
    profile: str | None = None,
) -> JSON:
    """The Pipeline object the flags describe (validated; ValueError names the flag)."""
    from pydantic import ValidationError

    from flotilla.api.pipelines import Pipeline

    obj: JSON = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": "speech-to-summary",
            "audio": str(audio.expanduser().resolve()),
            "output": str(out.expanduser().resolve()),
            "transcribe": {"model": asr_model, "slices": slices, "queue": queue, "backoffLimit": backoff_limit},
            "summarize": {"model": llm_model, "replicas": replicas, "profile": profile},
        },
    }
    flags = {"transcribe.slices": "--slices", "transcribe.backoffLimit": "--backoff-limit"}
    flags |= {"summarize.replicas": "--replicas", "audio": "--audio", "output": "--out"}
    try:
        Pipeline.model_validate(obj)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"][1:]) if e["loc"][:1] == ("spec",) else ""
        raise ValueError(f"{flags.get(where, where or 'pipeline')}: {e['msg']}") from None
    return obj


def load_pipeline_file(path: Path) -> JSON:
    """The one Pipeline document in a YAML file, validated (ValueError: file, document, field, fix)."""
    from flotilla.api.catalog import build_registry
    from flotilla.api.loader import encode, load_text

    try:
        loaded = load_text(path.read_text(encoding="utf-8"), build_registry(), str(path))
    except OSError as exc:
        raise ValueError(f"-f {path}: {exc.strerror}") from None  # ManifestErrors (a ValueError) goes up as is
    pipelines = [o for o in loaded if o.kind.kind == "Pipeline"]
    if len(pipelines) != 1:
        raise ValueError(f"-f {path}: expected one Pipeline document (kind: Pipeline), found {len(pipelines)}")
    one = pipelines[0]
    return encode(one.obj, one.kind)


@pipeline_app.command("run")
def run(
    template: Annotated[str, typer.Argument(help="The workflow: speech-to-summary.")] = "speech-to-summary",
    file: Annotated[Path | None, typer.Option("--file", "-f", help="A Pipeline YAML instead of the flags.")] = None,
    audio: Annotated[Path | None, typer.Option(help="Folder of recordings (wav, flac, mp3, ...).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for transcripts, summaries and the report.")] = None,
    name: Annotated[str, typer.Option(help="The Pipeline's name.")] = "speech-to-summary",
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the Pipeline and its Jobs.")] = (
        "speech"
    ),
    asr_model: Annotated[str, typer.Option("--asr-model", help="Whisper model of the transcription Jobs.")] = (
        "whisper-tiny.en"
    ),
    llm_model: Annotated[str, typer.Option("--llm-model", help="LLM of the summary replicas.")] = "smollm2-135m",
    slices: Annotated[
        str, typer.Option(help="What each transcription Job asks for: mig-1g.5gb, mig-3g.20gb, whole-gpu, none.")
    ] = "mig-1g.5gb",
    queue: Annotated[
        str | None, typer.Option(help="LocalQueue of the Jobs (created if absent; default asr-<slices>).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--routing-profile", help="The gateway's scheduling profile for the replicas.")
    ] = None,
    replicas: Annotated[int, typer.Option(help="LLM replicas behind the gateway.")] = 2,
    backoff_limit: Annotated[int, typer.Option("--backoff-limit", help="Retries of a failed Job.")] = 2,
    server: Annotated[str | None, typer.Option(help="Control plane URL (default: $FLOTILLA_SERVER or local).")] = None,
    gpus: Annotated[str, typer.Option(help="GPUs of the control plane started when none runs.")] = "1x2xA100-40GB",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the pipeline to finish.")] = 1800.0,
) -> None:
    """Run a pipeline and show both stages live; exit 0 when every recording was summarized."""
    if template not in TEMPLATES:
        err.print(f"error: unknown pipeline {template!r}; known: {', '.join(TEMPLATES)}")
        raise typer.Exit(2)
    try:
        if file is not None:
            obj = load_pipeline_file(file)
        elif audio is None or out is None:
            raise ValueError("give --audio DIR and --out DIR (or -f pipeline.yaml)")
        else:
            obj = build_pipeline(
                name, namespace, audio, out, asr_model, llm_model, slices, queue, replicas, backoff_limit, profile
            )
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    raise typer.Exit(run_pipeline(obj, server, gpus, timeout))


def run_pipeline(obj: JSON, server: str | None, gpus: str, timeout: float, data_dir: Path | None = None) -> int:
    """Submit `obj` and follow it; returns the exit code. Starts a control plane when none answers."""
    from flotilla.client import FlotillaClient

    client = FlotillaClient(server)
    plane: ControlPlane | None = None
    if not client.healthy():
        plane = start_plane(gpus, data_dir or Path(obj["spec"]["output"]) / ".flotilla")
        client = FlotillaClient(plane.url)
    try:
        final = submit_and_follow(client, obj, timeout)
    except KeyboardInterrupt:
        err.print("interrupted: the pipeline keeps its outputs; run the same command again to resume")
        return 130
    finally:
        if plane is not None:
            with console.status("stopping the control plane started for this run"):
                plane.stop()
    print_outcome(final)
    return 0 if (final.get("status") or {}).get("phase") == "Succeeded" else 1


def start_plane(gpus: str, data_dir: Path) -> ControlPlane:
    from flotilla.server.runner import ControlPlane, free_port
    from flotilla.slicer.inventory import load_gpu_config, parse_gpu_spec

    config = load_gpu_config(gpus) if Path(gpus).is_file() else parse_gpu_spec(gpus)
    plane = ControlPlane(data_dir, port=free_port(), gpus=config, gpu_backend="auto", gateway_port=free_port())
    err.print(f"no control plane answered; started one for this run at {plane.url} (state in {data_dir})")
    return plane.start_in_thread()


def submit_and_follow(client: FlotillaClient, obj: JSON, timeout: float) -> JSON:
    from flotilla.api.catalog import build_registry
    from flotilla.client import ApiError

    registry = build_registry()
    kind = registry.resolve("pipelines")
    meta = obj["metadata"]
    name, namespace = meta["name"], meta.get("namespace") or "default"
    try:
        current = client.get(kind, name, namespace)
    except ApiError as exc:
        if exc.code != 404:
            raise
        current = None
    if current is not None and (current.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        client.delete(kind, name, namespace)  # a re-run: finished recordings are skipped
        current = None
    if current is None:
        _ensure_namespace(client, registry.resolve("namespaces"), namespace)
        current = client.create(kind, obj, namespace)
        console.print(f"pipeline {namespace}/{name} created: outputs in {obj['spec']['output']}")
    else:
        console.print(f"pipeline {namespace}/{name} is running: following it")
    return follow(client, kind, name, namespace, current["metadata"]["uid"], timeout)


def _ensure_namespace(client: FlotillaClient, ns: Any, namespace: str) -> None:
    from flotilla.client import ApiError

    try:
        client.create(ns, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except ApiError as exc:
        if exc.code != 409:
            raise


def follow(client: FlotillaClient, kind: Any, name: str, namespace: str, uid: str, timeout: float) -> JSON:
    """Poll the Pipeline until it finishes, with two progress bars and the recordings' states."""
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    transcribe = progress.add_task("transcribe", total=None)
    summarize = progress.add_task("summarize", total=None)
    deadline = time.monotonic() + timeout
    obj: JSON = {}
    with Live(progress, console=console, refresh_per_second=4, transient=False) as live:
        while time.monotonic() < deadline:
            obj = client.get(kind, name, namespace)
            if obj["metadata"]["uid"] != uid:
                raise RuntimeError(f"pipeline {namespace}/{name} was replaced by another run")
            status = obj.get("status") or {}
            total = status.get("recordingsTotal") or None
            progress.update(transcribe, total=total, completed=status.get("transcribed") or 0)
            progress.update(summarize, total=total, completed=status.get("summarized") or 0)
            live.update(_view(progress, status))
            if status.get("phase") in ("Succeeded", "Failed"):
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"pipeline {namespace}/{name} did not finish within {timeout:g} s")
    console.print()
    return obj


def _view(progress: Any, status: JSON) -> Any:
    from rich.console import Group

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("RECORDING", "STATE", "JOB", "ATTEMPTS", "MESSAGE"):
        table.add_column(column, overflow="fold")
    for r in status.get("recordings") or []:
        table.add_row(
            r["name"], r.get("state", ""), r.get("job") or "", str(r.get("attempts") or ""), r.get("message") or ""
        )
    return Group(progress, table)


def print_outcome(obj: JSON) -> None:
    status = obj.get("status") or {}
    run_dir = Path(status.get("runDir") or Path(obj["spec"]["output"]) / "run")
    items: list[JSON] = []
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        items = json.loads(summary_file.read_text()).get("items") or []
    table = Table(title=f"speech-to-summary: {status.get('phase')} ({status.get('message') or ''})", box=None)
    columns = ("RECORDING", "STATE", "QUEUE WAIT", "TRANSCRIBE", "WER", "TTFT", "SUMMARY")
    for column in columns:
        table.add_column(column, justify="left" if column in ("RECORDING", "STATE") else "right", no_wrap=True)

    def secs(v: Any) -> str:
        return "-" if v is None else f"{v:.2f}s"

    for i in items:
        table.add_row(
            i["recording"],
            i["state"],
            secs(i.get("queue_wait_s")),
            secs(i.get("transcription_s")),
            "-" if i.get("wer") is None else f"{i['wer']:.1%}",
            secs(i.get("ttft_s")),
            "-" if i.get("summary_words") is None else f"{i['summary_words']} words",
        )
    console.print(table)
    output = Path(obj["spec"]["output"])
    console.print(f"transcripts: {output / 'transcripts'}\nsummaries:   {output / 'summaries'}")
    report = run_dir / "report.html"
    console.print(f"report:      {report if report.exists() else run_dir}")
