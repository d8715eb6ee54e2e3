"""Real transcription of the speech clips (WER with jiwer), transcript fields and the output formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flotilla.serving.asr.audio import AudioError, decode
from flotilla.serving.asr.transcriber import (
    Segment,
    Transcriber,
    Transcript,
    TranscriptionError,
    format_timestamp,
    to_json,
    to_srt,
    to_txt,
    to_vtt,
    write_outputs,
)

from .speech import SPEECH, WAV_CLIPS, reference, truncated_wav, wer

# Measured on the four espeak-ng clips (48 words), int8 on CPU: tiny.en 4.2% (2 substitutions: "review" ->
# "renew", "of" -> "on"); base 6.3% (3). The thresholds leave room for other CPUs' int8 kernels.
TINY_MAX_WER = 0.12
BASE_MAX_WER = 0.15


def test_tiny_en_transcribes_the_clips(tiny: Transcriber) -> None:
    transcripts = [tiny.transcribe(clip) for clip in WAV_CLIPS]
    measured = wer([reference(c) for c in WAV_CLIPS], [t.text for t in transcripts])
    assert measured <= TINY_MAX_WER, [t.text for t in transcripts]
    for clip, t in zip(WAV_CLIPS, transcripts, strict=True):
        assert t.model == "whisper-tiny.en"
        assert t.language == "en"
        assert t.duration == pytest.approx(len(decode(clip)) / 16_000)
        assert t.segments
        assert 0.0 <= t.segments[0].start < t.segments[-1].end <= t.duration + 0.5
        assert t.real_time_factor == pytest.approx(t.processing_seconds / t.duration)


@pytest.mark.parametrize("name", ["service.mp3", "summary.flac"])
def test_tiny_en_transcribes_mp3_and_flac(tiny: Transcriber, name: str) -> None:
    clip = SPEECH / name
    assert wer([reference(clip)], [tiny.transcribe(clip).text]) <= 0.1


@pytest.mark.slow
def test_base_transcribes_the_clips(base: Transcriber) -> None:
    transcripts = [base.transcribe(clip, language="en") for clip in WAV_CLIPS]
    assert wer([reference(c) for c in WAV_CLIPS], [t.text for t in transcripts]) <= BASE_MAX_WER
    assert base.is_multilingual


@pytest.mark.slow
def test_base_detects_english(base: Transcriber) -> None:
    transcript = base.transcribe(SPEECH / "cluster.wav")
    assert transcript.language == "en"
    assert transcript.language_probability > 0.5


def test_samples_bytes_prompt_and_word_timestamps(tiny: Transcriber) -> None:
    clip = SPEECH / "cluster.wav"
    from_samples = tiny.transcribe(decode(clip), prompt="Graphics cards and training runs.", word_timestamps=True)
    assert from_samples.text == tiny.transcribe(clip.read_bytes()).text
    words = from_samples.words
    assert [w.word.strip(" .,").lower() for w in words][:3] == ["we", "need", "more"]
    assert all(0 <= w.start <= w.end <= from_samples.duration + 0.5 for w in words)


def test_real_time_factor_uses_the_injected_clock() -> None:
    ticks = iter([10.0, 12.5])
    transcriber = Transcriber("whisper-tiny.en", cpu_threads=2, clock=lambda: next(ticks))
    t = transcriber.transcribe(SPEECH / "summary.wav")
    assert t.processing_seconds == 2.5
    assert t.real_time_factor == pytest.approx(2.5 / t.duration)


def test_bad_arguments_and_broken_audio(tiny: Transcriber, tmp_path: Path) -> None:
    with pytest.raises(TranscriptionError, match=r"'fr' is not supported by whisper-tiny\.en: use only 'en'") as exc:
        tiny.transcribe(SPEECH / "meeting.wav", language="fr")
    assert exc.value.param == "language"
    with pytest.raises(TranscriptionError, match="out of range") as exc:
        tiny.transcribe(SPEECH / "meeting.wav", temperature=1.5)
    assert exc.value.param == "temperature"
    with pytest.raises(AudioError, match=r"truncated\.wav: cannot decode audio"):
        tiny.transcribe(truncated_wav(tmp_path))


# -- writers -------------------------------------------------------------------------------------------------
def segment(i: int, start: float, end: float, text: str) -> Segment:
    return Segment(
        id=i, seek=0, start=start, end=end, text=text, tokens=[], temperature=0.0,
        avg_logprob=-0.2, compression_ratio=1.0, no_speech_prob=0.01,
    )  # fmt: skip


TRANSCRIPT = Transcript(
    model="whisper-tiny.en",
    text="Hello there. Arrows --> here.",
    segments=[segment(0, 0.0, 1.5, " Hello there."), segment(1, 3661.0015, 3662.9996, " Arrows --> here.")],
    language="en",
    language_probability=1.0,
    duration=3663.0,
    processing_seconds=1.0,
    real_time_factor=1.0 / 3663.0,
)


@pytest.mark.parametrize(
    ("seconds", "marker", "expected"),
    [
        (0.0, ",", "00:00:00,000"),
        (1.5, ".", "00:00:01.500"),
        (3661.0015, ",", "01:01:01,002"),
        (59.9996, ".", "00:01:00.000"),
    ],
)
def test_format_timestamp(seconds: float, marker: str, expected: str) -> None:
    assert format_timestamp(seconds, marker) == expected


def test_srt() -> None:
    assert to_srt(TRANSCRIPT) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:01:01,002 --> 01:01:03,000\nArrows -> here.\n\n"
    )


def test_vtt() -> None:
    assert to_vtt(TRANSCRIPT) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n01:01:01.002 --> 01:01:03.000\nArrows -> here.\n\n"
    )


def test_txt_and_json() -> None:
    assert to_txt(TRANSCRIPT) == "Hello there.\nArrows --> here.\n"
    payload = json.loads(to_json(TRANSCRIPT))
    assert set(payload) == {"text", "segments", "language"}
    assert payload["text"] == TRANSCRIPT.text
    assert payload["language"] == "en"
    assert [s["id"] for s in payload["segments"]] == [0, 1]
    assert payload["segments"][1]["start"] == 3661.0015


def test_write_outputs_names_files_after_the_input(tmp_path: Path) -> None:
    written = write_outputs(TRANSCRIPT, tmp_path / "out", "meeting", ["txt", "json", "srt", "vtt"])
    assert [p.name for p in written] == ["meeting.txt", "meeting.json", "meeting.srt", "meeting.vtt"]
    assert (tmp_path / "out" / "meeting.vtt").read_text().startswith("WEBVTT\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
