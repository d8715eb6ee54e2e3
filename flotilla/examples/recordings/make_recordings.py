"""Regenerate the demo's meeting recordings in this folder (shipped inside the package, so `make demo`
and `flotilla pipeline run` have audio on a fresh machine).

Each recording is a short meeting spoken by Debian's `espeak-ng` (`apt-get install -y espeak-ng`), one
voice per speaker turn with half a second of silence between turns (flotilla/pipelines/tts.py), encoded
as 16 kHz mono FLAC. Its reference text (what was said, for the word error rate) is `<name>.txt`.

Run from the repository root: `.venv/bin/python flotilla/examples/recordings/make_recordings.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flotilla.pipelines.tts import RATE, encode, silence, speak

HERE = Path(__file__).resolve().parent
GAP = 0.5  # seconds of silence between speaker turns

# name -> turns of (espeak-ng voice, words per minute, text)
MEETINGS: dict[str, list[tuple[str, int, str]]] = {
    "standup": [
        (
            "en-us",
            150,
            "Good morning team. Yesterday we finished the login page and fixed two bugs in the payment service.",
        ),
        ("en-gb", 145, "Today I will test the new search feature, and Tom will update the user documentation."),
        ("en-us", 150, "Great. The release is still planned for Thursday afternoon."),
    ],
    "budget-review": [
        (
            "en-gb",
            145,
            "Let us start the budget review. Marketing spent more than planned this quarter because of the trade show.",
        ),
        ("en-us", 150, "Finance asks every team to send revised numbers by Friday."),
        ("en-gb", 145, "We agreed to delay the new office furniture until next year."),
    ],
    "incident-review": [
        (
            "en-us",
            145,
            "This is the review of last night's outage. The database ran "
            "out of disk space and the website was down for forty minutes.",
        ),
        ("en-gb", 150, "The engineer on call added storage and restarted the service."),
        ("en-us", 145, "Action item: set up an alert when the disk is eighty percent full."),
    ],
    "hiring-plan": [
        (
            "en-gb",
            150,
            "We need to hire two engineers for the data platform team. The job posting goes live on Monday.",
        ),
        (
            "en-us",
            145,
            "Sarah will screen the candidates, and the team will hold interviews in the second week of the month.",
        ),
        ("en-gb", 150, "We decided to offer remote work three days a week."),
    ],
}


def main() -> None:
    for name, turns in MEETINGS.items():
        parts: list[np.ndarray] = []
        for voice, speed, text in turns:
            parts += [speak(voice, speed, text), silence(GAP)]
        samples = np.concatenate(parts[:-1])
        encode(HERE / f"{name}.flac", samples, "flac", "s16")
        (HERE / f"{name}.txt").write_text(" ".join(text for _, _, text in turns) + "\n")
        print(f"{name}: {len(samples) / RATE:.1f} s, {len(turns)} turns")


if __name__ == "__main__":
    main()
