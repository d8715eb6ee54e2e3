"""Regenerate the ASR test clips in this folder with a text-to-speech engine.

Each clip is spoken by Debian's `espeak-ng` (1.51; `apt-get install -y espeak-ng`) with the voice and
speed listed in CLIPS, at espeak-ng's default pitch and amplitude, then resampled with PyAV (installed
with faster-whisper) to 16 kHz mono 16-bit WAV. Its reference text is written beside it as `<name>.txt`.
One clip is also encoded as MP3 (libmp3lame, 48 kbit/s) and one as FLAC, to test the decoders.

Run from the repository root: `.venv/bin/python tests/data/speech/make_clips.py`.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 16_000

# name, espeak-ng voice, words per minute, text
CLIPS: list[tuple[str, str, int, str]] = [
    ("meeting", "en-us", 150, "Good morning everyone, let us review the project schedule for this week."),
    ("service", "en-us", 140, "The speech recognition service turns every recording into a written transcript."),
    ("summary", "en-gb", 150, "Please send the summary of the meeting to the whole team before Friday."),
    ("cluster", "en-us", 145, "We need more graphics cards to finish the training run on time."),
]
MP3_CLIP = "service"
FLAC_CLIP = "summary"


def speak(voice: str, speed: int, text: str) -> np.ndarray:
    """espeak-ng's WAV output (22.05 kHz) resampled to 16 kHz mono int16 samples."""
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


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())


def encode(path: Path, samples: np.ndarray, codec: str, sample_format: str, bit_rate: int | None = None) -> None:
    """Encode int16 mono samples with PyAV (`codec` in the container chosen by the file suffix)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=RATE, layout="mono")
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


def main() -> None:
    for name, voice, speed, text in CLIPS:
        samples = speak(voice, speed, text)
        write_wav(HERE / f"{name}.wav", samples)
        (HERE / f"{name}.txt").write_text(text + "\n")
        if name == MP3_CLIP:
            encode(HERE / f"{name}.mp3", samples, "libmp3lame", "s16p", bit_rate=48_000)
        if name == FLAC_CLIP:
            encode(HERE / f"{name}.flac", samples, "flac", "s16")
        print(f"{name}: {len(samples) / RATE:.2f} s ({voice}, {speed} wpm)")


if __name__ == "__main__":
    main()
