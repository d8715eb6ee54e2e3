"""Decoding WAV, MP3 and FLAC to 16 kHz mono float32, and clear errors for broken audio."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from flotilla.serving.asr.audio import SAMPLE_RATE, AudioError, decode, duration

from .speech import SPEECH, truncated_wav


@pytest.mark.parametrize("name", ["service.wav", "service.mp3", "summary.wav", "summary.flac"])
def test_decodes_each_format_to_16k_mono_float32(name: str) -> None:
    samples = decode(SPEECH / name)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert 0.0 < float(np.abs(samples).max()) <= 1.0
    wav = decode(SPEECH / f"{Path(name).stem}.wav")
    assert duration(samples) == pytest.approx(duration(wav), abs=0.15)  # MP3 adds encoder padding


def test_decodes_bytes_and_file_objects() -> None:
    data = (SPEECH / "meeting.wav").read_bytes()
    from_path = decode(SPEECH / "meeting.wav")
    np.testing.assert_array_equal(decode(data), from_path)
    with (SPEECH / "meeting.wav").open("rb") as f:
        np.testing.assert_array_equal(decode(f), from_path)
    assert len(from_path) == pytest.approx(4.84 * SAMPLE_RATE, rel=0.01)


def video_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def writer(name: str, data: bytes):
    def make(directory: Path) -> Path:
        (directory / name).write_bytes(data)
        return directory / name

    return make


WAV = (SPEECH / "meeting.wav").read_bytes()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (truncated_wav, "Invalid data"),
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: d, "not a regular file"),
        (writer("empty.mp3", b""), "the file is empty"),
        (writer("text.wav", b"not audio at all\n" * 50), "Invalid data"),
        # FFmpeg opens it as FLAC (by its name) and finds no frame in it:
        (writer("text.flac", b"not audio at all\n" * 50), "no audio samples"),
        (writer("header-only.wav", WAV[:44]), "no audio samples"),
        (lambda d: video_only(d / "video.mkv"), "no audio stream"),
    ],
    ids=["truncated-header", "missing", "directory", "empty", "text", "text-as-flac", "header-only", "video-only"],
)
def test_broken_audio_raises_audio_error_naming_the_file(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioError) as exc:
        decode(path)
    assert str(exc.value).startswith(f"{path}: cannot decode audio")
    assert reason in str(exc.value)


def test_broken_upload_is_named_by_its_label() -> None:
    with pytest.raises(AudioError, match=r"^clip\.wav: cannot decode audio: Invalid data"):
        decode(b"RIFF\x00\x00", name="clip.wav")
    with pytest.raises(AudioError, match=r"^<upload>: cannot decode audio: the file is empty"):
        decode(b"")
