"""Finding recordings and reading a stage's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flotilla.pipelines import recordings


def test_the_shipped_recordings_have_reference_texts() -> None:
    found = recordings.discover(recordings.demo_recordings())
    assert len(found) >= 3
    assert all(r.path.suffix == ".flac" and (r.reference() or "").count(" ") > 20 for r in found)


def test_discover_sorts_audio_and_refuses_two_files_with_one_stem(tmp_path: Path) -> None:
    for name in ("b.wav", "a.mp3", "notes.txt", "c.FLAC"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [r.name for r in recordings.discover(tmp_path)] == ["a.mp3", "b.wav", "c.FLAC"]
    (tmp_path / "a.wav").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"a\.mp3 and a\.wav would both write a\.txt"):
        recordings.discover(tmp_path)


def test_a_stage_is_done_only_when_its_output_parses(tmp_path: Path) -> None:
    (tmp_path / "transcripts").mkdir()
    path = tmp_path / "transcripts" / "a.json"
    path.write_text('{"text": "hello", "segm')  # cut short
    assert recordings.transcript(tmp_path, "a") is None
    path.write_text(json.dumps({"text": "hello", "segments": [{"start": 0.0, "end": 2.5}], "language": "en"}))
    record = recordings.transcript(tmp_path, "a")
    assert record is not None and recordings.audio_seconds(record) == 2.5
    assert recordings.summary(tmp_path, "a") is None
