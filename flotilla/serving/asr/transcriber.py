"""One loaded Whisper model (faster-whisper on CTranslate2) and the transcripts it makes.

`Transcriber` loads the model once; `transcribe` decodes the audio, runs Whisper with the openai-whisper
CLI's decoding defaults (beam 5, best-of 5, temperature fallback in steps of 0.2 from the given
temperature up to 1.0) and returns a `Transcript`. Calls are serialized by a lock: CTranslate2 runs one
transcription at a time per model replica anyway, and the lock keeps the processing times honest.

The writers produce the openai-whisper CLI's output formats: txt (one segment per line), json (text,
segments, language), srt (`HH:MM:SS,mmm`) and vtt (`WEBVTT`, `HH:MM:SS.mmm`).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from flotilla.serving.asr.audio import Samples, decode, duration
from flotilla.serving.asr.models import DEFAULT_MODEL, resolve_model

OutputFormat = Literal["txt", "json", "srt", "vtt"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("txt", "json", "srt", "vtt")
TEMPERATURE_INCREMENT = 0.2  # openai-whisper's --temperature_increment_on_fallback


class TranscriptionError(ValueError):
    """A request the model cannot serve (an unsupported language, a temperature out of range);
    `param` names the offending argument."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class Word(BaseModel):
    """A word with its timing (seconds) and probability, when word timestamps were asked for."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    start: float
    end: float
    word: str
    probability: float


class Segment(BaseModel):
    """A stretch of speech, as openai-whisper reports it (text keeps Whisper's leading space)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None = None


class Transcript(BaseModel):
    """The result of one transcription. `real_time_factor` = processing seconds / audio seconds (lower
    is faster); processing covers decoding the audio and running the model, not loading it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str
    text: str
    segments: list[Segment]
    language: str
    language_probability: float
    duration: float
    processing_seconds: float
    real_time_factor: float

    @property
    def words(self) -> list[Word]:
        """All words of all segments (empty unless word timestamps were asked for)."""
        return [w for s in self.segments for w in s.words or ()]


class Transcriber:
    """A Whisper model loaded once on `device` ("cpu", "cuda", "auto") with `compute_type` (CTranslate2's:
    "int8" on CPU, "float16" or "int8_float16" on a GPU). `cpu_threads` 0 lets CTranslate2 choose.
    `model_dir` overrides where the folder of `model_name` is found (see `models.resolve_model`)."""

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        data_dir: Path | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        *,
        model_dir: Path | None = None,
        beam_size: int = 5,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        from faster_whisper import WhisperModel  # type: ignore[import-untyped]

        resolved = resolve_model(model_name, data_dir=data_dir, model_dir=model_dir)
        self.model_name = resolved.name
        self.model_path = resolved.path
        self.beam_size = beam_size
        self._clock = clock
        self._lock = threading.Lock()
        self._model: Any = WhisperModel(
            str(resolved.path),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )

    @property
    def supported_languages(self) -> list[str]:
        """Language codes the model knows (["en"] for an English-only model)."""
        return list(self._model.supported_languages)

    @property
    def is_multilingual(self) -> bool:
        """Whether the model detects and transcribes languages other than English."""
        return bool(self._model.model.is_multilingual)

    def transcribe(
        self,
        audio: str | Path | bytes | BinaryIO | Samples,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        *,
        name: str | None = None,
    ) -> Transcript:
        """Transcribe a file path, encoded bytes, a binary file object or 16 kHz mono float32 samples.

        `language` None detects it (multilingual models; English-only ones answer "en"); `prompt` is
        Whisper's initial prompt. AudioError for undecodable audio; TranscriptionError for bad arguments."""
        temperatures = self._check_arguments(language, temperature)
        started = self._clock()
        samples = audio if isinstance(audio, np.ndarray) else decode(audio, name=name)
        with self._lock:
            segments, info = self._model.transcribe(
                samples,
                language=language,
                initial_prompt=prompt or None,
                temperature=temperatures,
                beam_size=self.beam_size,
                best_of=self.beam_size,
                word_timestamps=word_timestamps,
            )
            converted = [_segment(i, s) for i, s in enumerate(segments)]  # the generator runs the model
        elapsed = self._clock() - started
        seconds = duration(samples)
        return Transcript(
            model=self.model_name,
            text="".join(s.text for s in converted).strip(),
            segments=converted,
            language=info.language,
            language_probability=float(info.language_probability),
            duration=seconds,
            processing_seconds=elapsed,
            real_time_factor=elapsed / seconds if seconds > 0 else 0.0,
        )

    def _check_arguments(self, language: str | None, temperature: float) -> tuple[float, ...]:
        if language is not None and language not in self.supported_languages:
            known = "only 'en'" if not self.is_multilingual else "an ISO 639-1 code Whisper knows, e.g. 'en', 'de'"
            raise TranscriptionError(
                f"language {language!r} is not supported by {self.model_name}: use {known}", param="language"
            )
        if not 0.0 <= temperature <= 1.0:
            raise TranscriptionError(f"temperature {temperature} is out of range: use 0 to 1", param="temperature")
        steps = math.floor((1.0 - temperature) / TEMPERATURE_INCREMENT + 1e-9)
        return tuple(round(temperature + i * TEMPERATURE_INCREMENT, 6) for i in range(steps + 1))


def _segment(index: int, s: Any) -> Segment:
    """openai-whisper's segment fields, numbered from 0 as openai-whisper does (faster-whisper counts from 1)."""
    words = None
    if s.words is not None:
        words = [Word(start=w.start, end=w.end, word=w.word, probability=w.probability) for w in s.words]
    return Segment(
        id=index,
        seek=s.seek,
        start=s.start,
        end=s.end,
        text=s.text,
        tokens=list(s.tokens),
        temperature=float(s.temperature or 0.0),
        avg_logprob=s.avg_logprob,
        compression_ratio=s.compression_ratio,
        no_speech_prob=s.no_speech_prob,
        words=words,
    )


# -- writers: the openai-whisper CLI's formats -----------------------------------------------------------
def format_timestamp(seconds: float, decimal_marker: str) -> str:
    """`HH:MM:SS<marker>mmm`, rounded to the millisecond."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _cue_text(segment: Segment) -> str:
    return segment.text.strip().replace("-->", "->")


def to_txt(transcript: Transcript) -> str:
    """One segment per line, as `whisper --output_format txt`."""
    return "".join(f"{s.text.strip()}\n" for s in transcript.segments)


def to_json(transcript: Transcript) -> str:
    """`{"text", "segments", "language"}` as `whisper --output_format json` writes them."""
    payload = {
        "text": transcript.text,
        "segments": [s.model_dump(exclude_none=True) for s in transcript.segments],
        "language": transcript.language,
    }
    return json.dumps(payload, ensure_ascii=False)


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues from 1, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    return "".join(
        f"{i}\n{format_timestamp(s.start, ',')} --> {format_timestamp(s.end, ',')}\n{_cue_text(s)}\n\n"
        for i, s in enumerate(transcript.segments, start=1)
    )


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: a `WEBVTT` header, then `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues."""
    cues = "".join(
        f"{format_timestamp(s.start, '.')} --> {format_timestamp(s.end, '.')}\n{_cue_text(s)}\n\n"
        for s in transcript.segments
    )
    return "WEBVTT\n\n" + cues


WRITERS: dict[OutputFormat, Callable[[Transcript], str]] = {
    "txt": to_txt,
    "json": to_json,
    "srt": to_srt,
    "vtt": to_vtt,
}


def write_outputs(transcript: Transcript, output_dir: Path, stem: str, formats: Iterable[OutputFormat]) -> list[Path]:
    """Write `<output_dir>/<stem>.<format>` for each format (UTF-8; each file replaced atomically)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = output_dir / f"{stem}.{fmt}"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(WRITERS[fmt](transcript), encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
