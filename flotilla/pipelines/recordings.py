"""The recordings a pipeline works on, their outputs on disk, and the demo recordings Flotilla ships.

    OUTPUT/transcripts/<stem>.{txt,json,srt,vtt}   written by the transcription Jobs
    OUTPUT/summaries/<stem>.{md,json}              written by the summarize stage
    OUTPUT/run/                                    the run's records and report (flotilla/runs)

A recording's stage is done when its output parses: a transcript `<stem>.json` with a `text`, a
summary `<stem>.json` with a `summary`. Writers replace files atomically, so a crash leaves the old
file or the new one, and a re-run picks up exactly where the last one stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm")
TRANSCRIPTS, SUMMARIES, RUN = "transcripts", "summaries", "run"


def demo_recordings() -> Path:
    """The meeting recordings shipped inside the package (spoken by espeak-ng, with reference texts)."""
    return Path(str(resources.files("flotilla") / "examples" / "recordings"))


@dataclass(frozen=True)
class Recording:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return self.path.stem

    def reference(self) -> str | None:
        """What was said, when a `<stem>.txt` sits beside the audio (for the word error rate)."""
        ref = self.path.with_suffix(".txt")
        return ref.read_text(encoding="utf-8").strip() if ref.is_file() else None


def discover(audio_dir: Path) -> list[Recording]:
    """Audio files directly in `audio_dir`, sorted by name. Two files with one stem (a.wav, a.flac)
    would write the same transcript: ValueError naming them."""
    found = sorted(p for p in audio_dir.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    stems: dict[str, Path] = {}
    for path in found:
        if path.stem in stems:
            raise ValueError(
                f"{audio_dir}: {stems[path.stem].name} and {path.name} would both write {path.stem}.txt; "
                "rename one of them"
            )
        stems[path.stem] = path
    return [Recording(p) for p in found]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def transcript(output: Path, stem: str) -> dict[str, Any] | None:
    """The transcript (whisper's JSON: text, segments, language) when it is complete, else None."""
    value = _read_json(output / TRANSCRIPTS / f"{stem}.json")
    return value if value is not None and isinstance(value.get("text"), str) else None


def summary(output: Path, stem: str) -> dict[str, Any] | None:
    """The summary record (see summarize.py) when it is complete, else None."""
    value = _read_json(output / SUMMARIES / f"{stem}.json")
    return value if value is not None and isinstance(value.get("summary"), str) else None


def audio_seconds(transcript_json: dict[str, Any]) -> float | None:
    """The recording's length as the transcript's last segment end (None without segments)."""
    segments = transcript_json.get("segments") or []
    ends = [float(s["end"]) for s in segments if isinstance(s, dict) and isinstance(s.get("end"), int | float)]
    return max(ends) if ends else None
