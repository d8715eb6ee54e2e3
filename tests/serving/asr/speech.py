"""The speech clips in tests/data/speech, their reference texts, WER and broken audio made on the fly."""

from __future__ import annotations

from pathlib import Path

from flotilla.serving.asr.wer import word_error_rate

SPEECH = Path(__file__).resolve().parents[2] / "data" / "speech"
WAV_CLIPS = sorted(SPEECH.glob("*.wav"))


def reference(clip: Path) -> str:
    """The text a clip was synthesised from (`<stem>.txt` beside it)."""
    return (clip.parent / f"{clip.stem}.txt").read_text().strip()


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate; case and punctuation do not count (Whisper writes "Good morning, everyone.")."""
    return word_error_rate(references, hypotheses)


def truncated_wav(directory: Path) -> Path:
    """A WAV cut inside its 44-byte header: FFmpeg cannot even open it."""
    path = directory / "truncated.wav"
    path.write_bytes((SPEECH / "meeting.wav").read_bytes()[:30])
    return path
