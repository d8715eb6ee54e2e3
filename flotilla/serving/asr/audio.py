"""Audio files -> 16 kHz mono float32 samples, as Whisper wants them.

Decoding is faster-whisper's `decode_audio` (PyAV, i.e. FFmpeg's libraries bundled in the `av` wheel: WAV,
MP3, FLAC, Ogg, M4A and whatever else FFmpeg reads; no `ffmpeg` program needed). Anything that cannot be
decoded (a missing or empty file, a truncated header, not audio at all, no audio stream, no samples)
raises `AudioError` naming the file; decoding reads only what the file holds, so it cannot hang on
a regular file or an in-memory upload.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000

Samples = npt.NDArray[np.float32]


class AudioError(ValueError):
    """Audio that cannot be decoded; the message names the file and says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: cannot decode audio: {reason}")
        self.source = source
        self.reason = reason


def decode(source: str | Path | bytes | BinaryIO, *, name: str | None = None) -> Samples:
    """Decode a file path, bytes or a binary file object to 16 kHz mono float32 in [-1, 1].

    `name` labels the audio in errors (default: the path, or "<upload>")."""
    label = name or (str(source) if isinstance(source, str | Path) else "<upload>")
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise AudioError(label, "no such file")
        if not path.is_file():
            raise AudioError(label, "not a regular file")
        if path.stat().st_size == 0:
            raise AudioError(label, "the file is empty")
        stream: Any = str(path)
    else:
        data = source if isinstance(source, bytes) else None
        if data is not None and not data:
            raise AudioError(label, "the file is empty")
        stream = io.BytesIO(data) if data is not None else source
    from faster_whisper.audio import decode_audio  # type: ignore[import-untyped]

    try:
        samples = decode_audio(stream, sampling_rate=SAMPLE_RATE)
    except av.FFmpegError as exc:
        raise AudioError(label, _ffmpeg_reason(exc)) from None
    except IndexError:  # container.decode(audio=0) on a file with no audio stream
        raise AudioError(label, "the file has no audio stream") from None
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        raise AudioError(label, f"{type(exc).__name__}: {exc}") from None
    array: Samples = np.asarray(samples, dtype=np.float32)
    if array.size == 0:
        raise AudioError(label, "no audio samples (an empty or truncated file)")
    return array


def duration(samples: Samples) -> float:
    """Length of decoded samples in seconds."""
    return float(samples.shape[0]) / SAMPLE_RATE


def _ffmpeg_reason(exc: av.FFmpegError) -> str:
    """FFmpeg's message without the file name PyAV appends (the caller's label replaces it)."""
    reason = exc.strerror or str(exc)
    return f"{reason} (not a supported audio format, or a truncated or corrupt file)"
