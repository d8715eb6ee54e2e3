"""The LLM registry: packaged models by name, explicit GGUF paths, and errors that say what would be right."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.serving.llm.models import DEFAULT_MODEL, REGISTRY, ModelNotFoundError, PackagedModel, resolve_model


def test_the_default_model_is_installed_and_is_gguf() -> None:
    model = resolve_model(DEFAULT_MODEL)
    assert model.name == "smollm2-135m"
    assert model.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model.path.read_bytes()[:4] == b"GGUF"


def test_every_registered_model_states_its_licence_and_install_line() -> None:
    for model in REGISTRY.values():
        assert model.licence and model.pip.startswith("pip install")


def test_an_explicit_gguf_path(tmp_path: Path) -> None:
    path = tmp_path / "tiny-model.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 16)
    model = resolve_model(str(path))
    assert (model.name, model.path) == ("tiny-model", path.resolve())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-4o", "unknown model 'gpt-4o': use one of smollm2-135m, or a path to a .gguf file"),
        ("/no/such/model.gguf", "no such file"),
    ],
)
def test_unresolvable_models(spec: str, message: str) -> None:
    with pytest.raises(ModelNotFoundError, match=message):
        resolve_model(spec)


def test_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "weights.gguf"
    path.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ModelNotFoundError, match="not a GGUF file"):
        resolve_model(str(path))


def test_a_missing_package_names_its_install_line() -> None:
    model = PackagedModel(
        name="absent",
        package="flotilla_no_such_model_package",
        filename="absent.gguf",
        pip="pip install no-such-model-package",
        licence="MIT",
        description="",
    )
    with pytest.raises(ModelNotFoundError, match="pip install no-such-model-package"):
        model.path()
