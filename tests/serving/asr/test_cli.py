"""`flotilla asr transcribe` over several files, one of them broken; model errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flotilla.serving.asr.cli import asr_app

from .speech import SPEECH, reference, truncated_wav, wer

runner = CliRunner()


def test_transcribes_several_files_and_reports_a_broken_one(tmp_path: Path) -> None:
    broken = truncated_wav(tmp_path)
    clips = [SPEECH / "meeting.wav", broken, SPEECH / "service.mp3"]
    out = tmp_path / "out"
    result = runner.invoke(
        asr_app,
        ["transcribe", *map(str, clips), "--model", "whisper-tiny.en", "--output-dir", str(out), "--cpu-threads", "2"],
    )
    assert result.exit_code == 1, result.output
    assert f"error: {broken}: cannot decode audio" in result.output
    assert "1 of 3 files failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        f"{stem}.{fmt}" for stem in ("meeting", "service") for fmt in ("json", "srt", "txt", "vtt")
    ]
    text = (out / "service.txt").read_text()
    assert wer([reference(SPEECH / "service.wav")], [text]) <= 0.1
    assert json.loads((out / "meeting.json").read_text())["language"] == "en"
    assert (out / "meeting.srt").read_text().startswith("1\n00:00:00,000 --> 00:00:0")


def test_one_format_and_success_exit_code(tmp_path: Path) -> None:
    result = runner.invoke(
        asr_app,
        ["transcribe", str(SPEECH / "summary.flac"), "-o", str(tmp_path), "--output-format", "vtt", "--language", "en"],
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["summary.vtt"]
    assert (tmp_path / "summary.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000 --> ")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--model", "whisper-large"], 1, "FLOTILLA_WHISPER_LARGE_DIR"),
        (["--model", "whisper-huge"], 1, "unknown ASR model 'whisper-huge'"),
        (["--language", "de"], 2, "--language 'de' is not supported by whisper-tiny.en"),
        (["--output-format", "docx"], 2, "docx"),
    ],
)
def test_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str) -> None:
    monkeypatch.delenv("FLOTILLA_WHISPER_LARGE_DIR", raising=False)
    result = runner.invoke(asr_app, ["transcribe", str(SPEECH / "meeting.wav"), "-o", str(tmp_path), *args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert list(tmp_path.iterdir()) == []
