"""`flotilla asr transcribe` (in the spirit of the openai-whisper CLI) and `flotilla serve asr`.

Only typer and rich are imported here; faster-whisper loads when a command runs, so `flotilla --help`
stays fast.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flotilla.serving.asr.models import DEFAULT_MODEL, MODELS, ModelError

if TYPE_CHECKING:
    from flotilla.serving.asr.transcriber import OutputFormat, Transcriber

asr_app = typer.Typer(
    name="asr",
    help="Speech recognition with Whisper, offline (faster-whisper on CTranslate2).",
    no_args_is_help=True,
    add_completion=False,
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@asr_app.callback()
def asr() -> None:
    """Speech recognition with Whisper, offline (faster-whisper on CTranslate2)."""


class OutputFormatChoice(StrEnum):
    """`--output-format`: one format, or all four."""

    txt = "txt"
    json = "json"
    srt = "srt"
    vtt = "vtt"
    all = "all"


def _model_help() -> str:
    return "Model: " + ", ".join(MODELS.names()) + ", or a CTranslate2 model folder."


ModelOption = Annotated[str, typer.Option("--model", "-m", help=_model_help())]
ModelDirOption = Annotated[
    Path | None,
    typer.Option("--model-dir", help="CTranslate2 Whisper folder to use for --model (e.g. your whisper-large)."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Flotilla's data dir, where whisper-base is assembled (default: as `up`)."),
]
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda or auto.")]
ComputeTypeOption = Annotated[str, typer.Option("--compute-type", help="CTranslate2 compute type: int8, float16, ...")]
ThreadsOption = Annotated[int, typer.Option("--cpu-threads", help="CPU threads (0: CTranslate2's default).")]


@asr_app.command(short_help="Transcribe audio files to txt, json, srt and vtt.")
def transcribe(
    files: Annotated[list[Path], typer.Argument(help="Audio files (MP3, WAV, FLAC, ...).", show_default=False)],
    model: ModelOption = DEFAULT_MODEL,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where to write the outputs.")] = Path("."),
    output_format: Annotated[
        OutputFormatChoice, typer.Option("--output-format", "-f", help="Format of the outputs, or all of them.")
    ] = OutputFormatChoice.all,
    language: Annotated[
        str | None, typer.Option(help="Spoken language (ISO 639-1, e.g. en); detected if not given.")
    ] = None,
    model_dir: ModelDirOption = None,
    data_dir: DataDirOption = None,
    device: DeviceOption = "cpu",
    compute_type: ComputeTypeOption = "int8",
    cpu_threads: ThreadsOption = 0,
) -> None:
    """Transcribe audio files: one output per input and format, named after the input (meeting.wav ->
    meeting.txt, meeting.srt, ...). A file that cannot be decoded is reported and skipped; the exit code
    is then 1."""
    from flotilla.serving.asr.audio import AudioError
    from flotilla.serving.asr.transcriber import OUTPUT_FORMATS, TranscriptionError, write_outputs

    err = Console(stderr=True)
    formats: tuple[OutputFormat, ...] = (
        OUTPUT_FORMATS if output_format is OutputFormatChoice.all else (cast("OutputFormat", output_format.value),)
    )
    transcriber = _load(model, data_dir, model_dir, device, compute_type, cpu_threads, err)
    if language is not None and language not in transcriber.supported_languages:
        err.print(f"error: --language {language!r} is not supported by {transcriber.model_name}", markup=False)
        raise typer.Exit(2)
    failed: list[Path] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=len(files) < 2,
    ) as progress:
        task = progress.add_task("transcribing", total=len(files))
        for path in files:
            progress.update(task, description=f"transcribing {path.name}")
            try:
                result = transcriber.transcribe(path, language=language, name=str(path))
            except (AudioError, TranscriptionError) as exc:
                progress.console.print(f"error: {exc}", markup=False, style="red", soft_wrap=True)
                failed.append(path)
            else:
                written = write_outputs(result, output_dir, path.stem, formats)
                progress.console.print(
                    f"{path}: {result.duration:.1f} s of audio in {result.processing_seconds:.2f} s "
                    f"(RTF {result.real_time_factor:.3f}) -> {', '.join(str(p) for p in written)}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            progress.advance(task)
    if failed:
        err.print(f"{len(failed)} of {len(files)} files failed: {', '.join(map(str, failed))}", markup=False)
        raise typer.Exit(1)


def serve_asr(
    port: Annotated[int, typer.Option(help="Port of the ASR server.")] = 8001,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default; others expose it).")] = "127.0.0.1",
    model: ModelOption = DEFAULT_MODEL,
    model_dir: ModelDirOption = None,
    data_dir: DataDirOption = None,
    device: DeviceOption = "cpu",
    compute_type: ComputeTypeOption = "int8",
    cpu_threads: ThreadsOption = 0,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest audio file accepted (MB).")] = 25,
    max_pending: Annotated[
        int, typer.Option("--max-pending", help="Requests waiting or running before answering 503.")
    ] = 16,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve a Whisper model with OpenAI's API: POST /v1/audio/transcriptions, GET /v1/models, /health,
    /metrics. Transcriptions run one at a time (more wait, up to --max-pending)."""
    import uvicorn

    from flotilla.serving.asr.server import create_asr_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("flotilla.serve.asr")
    err = Console(stderr=True)
    transcriber = _load(model, data_dir, model_dir, device, compute_type, cpu_threads, err)
    if host not in LOOPBACK:
        log.warning("binding to %s: the ASR API is reachable from other machines and has no authentication", host)
    app = create_asr_app(
        transcriber,
        transcriber.model_name,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pending=max_pending,
    )
    log.info("serving %s (%s) on http://%s:%d", transcriber.model_name, transcriber.model_path, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower())


def _load(
    model: str,
    data_dir: Path | None,
    model_dir: Path | None,
    device: str,
    compute_type: str,
    cpu_threads: int,
    err: Console,
) -> Transcriber:
    from flotilla.serving.asr.transcriber import Transcriber

    try:
        return Transcriber(
            model, data_dir, device=device, compute_type=compute_type, cpu_threads=cpu_threads, model_dir=model_dir
        )
    except ModelError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    except (ValueError, RuntimeError) as exc:  # CTranslate2: unsupported device or compute type, unreadable model
        err.print(f"error: cannot load {model} on {device} ({compute_type}): {exc}", markup=False)
        raise typer.Exit(1) from None
