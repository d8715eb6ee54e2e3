"""The batch simulator's data file: complete, sourced, and the speed model it states."""

from __future__ import annotations

import random
import re
import statistics
from importlib import resources
from pathlib import Path

import pytest
import yaml

from flotilla.sim.perfdata import WHOLE_GPU, PerfDataError, load_whisper_data, load_whisper_file
from flotilla.slicer import load_catalog

DATA = resources.files("flotilla.sim") / "data" / "whisper.yaml"


def test_every_number_names_its_source() -> None:
    """Each line of the data (below the header) that holds a number says where it comes from: a [source]
    tag or [est] in its comment."""
    lines = DATA.read_text(encoding="utf-8").splitlines()
    body = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    for i in body:
        line = lines[i]
        value = line.split("#", 1)[0]
        if not re.search(r":\s*[\d.]+(Gi|m)?\s*$|\{multiprocessors: \d+\}", value):
            continue
        comment = line.split("#", 1)[1] if "#" in line else ""
        assert re.search(r"\[[a-z0-9]+\]", comment), f"whisper.yaml line {i + 1} has no source: {line.strip()}"


def test_the_shipped_data_loads_and_covers_every_gpu_with_a_profile_table() -> None:
    data = load_whisper_data()
    catalog = load_catalog()
    assert set(data.gpus) == set(catalog.models)
    assert data.model("large") is data.models["large-v3"]
    for gpu in data.gpus:  # a bigger model is slower everywhere
        speeds = [data.models[m].seconds_per_audio_second[gpu] for m in ("tiny", "base", "small", "medium", "large-v3")]
        assert speeds == sorted(speeds)


def test_a_slice_gets_its_share_of_the_sms_and_its_own_memory() -> None:
    data, catalog = load_whisper_data(), load_catalog()
    slice_ = data.device(catalog, "A100-40GB", "1g.5gb")
    assert slice_.compute_fraction == pytest.approx(14 / 108)
    assert slice_.memory_mib == 4864
    assert data.device(catalog, "A100-40GB", WHOLE_GPU).compute_fraction == 1.0


def test_slowdown_and_sm_work_follow_the_stated_model() -> None:
    data, catalog = load_whisper_data(), load_catalog()
    medium = data.model("medium")
    whole = data.run_plan("medium", 600.0, data.device(catalog, "A100-40GB", WHOLE_GPU))
    sliced = data.run_plan("medium", 600.0, data.device(catalog, "A100-40GB", "1g.5gb"))
    assert not isinstance(whole, str) and not isinstance(sliced, str)
    f = 14 / 108
    expected = (1 - medium.kernel_active) + medium.kernel_active * max(1.0, medium.sm_occupancy / f)
    assert sliced.busy_s / whole.busy_s == pytest.approx(expected)
    assert sliced.busy_s > whole.busy_s and sliced.setup_s == whole.setup_s == medium.setup_s
    assert sliced.sm_seconds == pytest.approx(whole.sm_seconds)  # the same SM work anywhere


def test_a_model_that_does_not_fit_a_slice_cannot_run_there() -> None:
    data, catalog = load_whisper_data(), load_catalog()
    reason = data.run_plan("large", 600.0, data.device(catalog, "A100-40GB", "1g.5gb"))
    assert isinstance(reason, str) and "out of memory" in reason and "1g.5gb" in reason


def test_audio_lengths_have_the_stated_mean_and_bounds() -> None:
    audio = load_whisper_data().audio
    rng = random.Random(7)
    xs = [audio.sample(rng) for _ in range(4000)]
    assert audio.min_s <= min(xs) and max(xs) <= audio.max_s
    assert statistics.fmean(xs) == pytest.approx(audio.mean_s, rel=0.05)


def test_a_data_file_missing_a_gpu_is_an_error_naming_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    del raw["models"]["tiny"]["seconds_per_audio_second"]["H200-141GB"]
    bad = tmp_path / "whisper.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        PerfDataError, match=r"whisper.yaml.*models\.tiny\.seconds_per_audio_second: missing H200-141GB"
    ):
        load_whisper_file(bad)
