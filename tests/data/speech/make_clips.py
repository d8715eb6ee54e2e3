"""Regenerate the ASR test clips in this folder with a text-to-speech engine.

Each clip is spoken by Debian's `espeak-ng` (1.51; `apt-get install -y espeak-ng`) with the voice and
speed listed in CLIPS, at espeak-ng's default pitch and amplitude, then resampled with PyAV (installed
with faster-whisper) to 16 kHz mono 16-bit WAV (flotilla/pipelines/tts.py). Its reference text is
written beside it as `<name>.txt`.
One clip is also encoded as MP3 (libmp3lame, 48 kbit/s) and one as FLAC, to test the decoders.

Run from the repository root: `.venv/bin/python tests/data/speech/make_clips.py`.
"""

from __future__ import annotations

from pathlib import Path

from flotilla.pipelines.tts import RATE, encode, speak, write_wav

HERE = Path(__file__).resolve().parent

# name, espeak-ng voice, words per minute, text
CLIPS: list[tuple[str, str, int, str]] = [
    ("meeting", "en-us", 150, "Good morning everyone, let us review the project schedule for this week."),
    ("service", "en-us", 140, "The speech recognition service turns every recording into a written transcript."),
    ("summary", "en-gb", 150, "Please send the summary of the meeting to the whole team before Friday."),
    ("cluster", "en-us", 145, "We need more graphics cards to finish the training run on time."),
]
MP3_CLIP = "service"
FLAC_CLIP = "summary"


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
