"""Speech synthesis for the recordings Flotilla ships: Debian's `espeak-ng` (`apt-get install -y
espeak-ng`), resampled with PyAV (installed with faster-whisper) to 16 kHz mono 16-bit samples.

Used by the generators of the demo recordings (flotilla/examples/recordings/make_recordings.py) and
of the ASR test clips (tests/data/speech/make_clips.py); nothing at run time needs espeak-ng.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path
from typing import cast

import av
import numpy as np

RATE = 16_000


def speak(voice: str, speed: int, text: str) -> np.ndarray:
    """espeak-ng's WAV output (22.05 kHz) for `text`, resampled to 16 kHz mono int16 samples."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        chunks: list[np.ndarray] = []
        with av.open(str(raw)) as container:
            for frame in container.decode(audio=0):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())


def encode(path: Path, samples: np.ndarray, codec: str, sample_format: str, bit_rate: int | None = None) -> None:
    """Encode int16 mono samples with PyAV (`codec` in the container chosen by the file suffix)."""
    with av.open(str(path), "w") as container:
        stream = cast("av.AudioStream", container.add_stream(codec, rate=RATE, layout="mono"))
        if bit_rate:
            stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=RATE)
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
