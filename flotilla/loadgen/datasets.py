"""`--data SPEC`: the prompts a benchmark sends (cycled when it sends more requests than there are).

    synthetic:prompt_tokens=512,output_tokens=128[,prompt_stdev=0,output_stdev=0,prompt_min=1,
              prompt_max=..,output_min=1,output_max=..,prefix_tokens=0,prefix_groups=1,turns=1,samples=1000]
    file:PATH         CSV or JSONL (by extension): `prompt` (required), `output_tokens`, `prompt_tokens`, `session`
    transcripts:DIR   every DIR/*.txt: the summarizer's system prompt + the transcript; session = file stem

Synthetic prompts are words drawn by `random.Random(seed)` and sized with the vLLM emulator's tokenizer
(`flotilla.serving.emulator.tokenizer`): a prompt has exactly its sampled token count. Sizes are drawn from
a normal distribution (mean, stdev), rounded and clamped to [min, max]. With `prefix_tokens=N`, there are
`prefix_groups` distinct prefixes of N tokens and sample i starts with prefix i mod G (on top of its own
`prompt_tokens`: GuideLLM's meaning). With `turns=T`, consecutive samples form sessions of T turns that
share a session id (sent as `x-session-token`); each turn is a new prompt (the history is not replayed).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.api.configfile import read_rows
from flotilla.serving.emulator.tokenizer import Tokenizer

DEFAULT_OUTPUT_TOKENS = 128
SUMMARY_SYSTEM_PROMPT = (
    "You summarize meeting transcripts. Write a short summary of the meeting below: the decisions taken, "
    "the open questions, and the action items with their owners."
)
_TOKENIZER_VOCAB = 32_000  # counts do not depend on the vocabulary size
_WORD_TEXT = (
    "the of and to in is was for on that with as by at from it an be this which or are have not had but "
    "they his her one all were we when there can more if no out so said what up its about into than them "
    "only other new some could time these two may then do first any my now such like our over man me even "
    "most made after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see men work long "
    "get here between both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three queue model token cache batch slice node server"
)
_WORDS = tuple(_WORD_TEXT.split())


class DatasetError(ValueError):
    """A --data spec or file that cannot be used; the message names the spec, key or file and the fix."""


@dataclass(frozen=True)
class Prompt:
    """One request's input: `text` is the user message (chat) or, after `system`, the prompt (completions)."""

    id: str
    text: str
    output_tokens: int
    prompt_tokens: int  # by the emulator's tokenizer (system prompt included); informative
    session: str = ""
    system: str = ""


@dataclass(frozen=True)
class SyntheticSpec:
    """The keys of `synthetic:` (see the module docstring)."""

    prompt_tokens: int
    output_tokens: int
    prompt_stdev: float = 0.0
    output_stdev: float = 0.0
    prompt_min: int = 1
    prompt_max: int | None = None
    output_min: int = 1
    output_max: int | None = None
    prefix_tokens: int = 0
    prefix_groups: int = 1
    turns: int = 1
    samples: int = 1000


_INT_KEYS = (
    "prompt_tokens",
    "output_tokens",
    "prompt_min",
    "prompt_max",
    "output_min",
    "output_max",
    "prefix_tokens",
    "prefix_groups",
    "turns",
    "samples",
)
_FLOAT_KEYS = ("prompt_stdev", "output_stdev")
SYNTHETIC_KEYS = _INT_KEYS[:2] + _FLOAT_KEYS + _INT_KEYS[2:]


def load_dataset(spec: str, *, seed: int = 42, output_tokens: int = DEFAULT_OUTPUT_TOKENS) -> list[Prompt]:
    """The prompts of a --data spec; `output_tokens` sizes rows (and transcripts) that do not say."""
    scheme, sep, rest = spec.partition(":")
    loaders: dict[str, Callable[[str, str, int, int], list[Prompt]]] = {
        "synthetic": _synthetic,
        "file": _file,
        "transcripts": _transcripts,
    }
    if not sep or scheme not in loaders:
        raise DatasetError(
            f"--data {spec}: unknown kind {scheme!r}; use synthetic:prompt_tokens=N,output_tokens=M, file:PATH "
            "(CSV or JSONL) or transcripts:DIR"
        )
    prompts = loaders[scheme](spec, rest, seed, output_tokens)
    if not prompts:
        raise DatasetError(f"--data {spec}: no prompts in it")
    return prompts


# -- synthetic ------------------------------------------------------------------------------------------
def parse_synthetic(spec: str, body: str) -> SyntheticSpec:
    """`k=v,k=v` -> SyntheticSpec; unknown keys, bad numbers and missing required keys are errors."""
    values: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in body.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq:
            raise DatasetError(f"--data {spec}: {item!r} is not key=value; e.g. synthetic:prompt_tokens=512")
        if key not in SYNTHETIC_KEYS:
            raise DatasetError(f"--data {spec}: unknown key {key}; keys: {', '.join(SYNTHETIC_KEYS)}")
        try:
            values[key] = float(raw) if key in _FLOAT_KEYS else int(raw)
        except ValueError:
            kind = "a number" if key in _FLOAT_KEYS else "a whole number"
            raise DatasetError(f"--data {spec}: {key}={raw} is not {kind}") from None
    for required in ("prompt_tokens", "output_tokens"):
        if required not in values:
            raise DatasetError(
                f"--data {spec}: {required} is required, e.g. synthetic:prompt_tokens=512,output_tokens=128"
            )
    s = SyntheticSpec(**values)
    for key in ("prompt_tokens", "output_tokens", "prompt_min", "output_min", "prefix_groups", "turns", "samples"):
        if getattr(s, key) < 1:
            raise DatasetError(f"--data {spec}: {key} must be >= 1")
    for key in ("prompt_stdev", "output_stdev", "prefix_tokens"):
        if getattr(s, key) < 0:
            raise DatasetError(f"--data {spec}: {key} must be >= 0")
    for low, high in (("prompt_min", "prompt_max"), ("output_min", "output_max")):
        top = getattr(s, high)
        if top is not None and top < getattr(s, low):
            raise DatasetError(f"--data {spec}: {high} must be >= {low}")
    return s


def _sample(rng: random.Random, mean: int, stdev: float, low: int, high: int | None) -> int:
    value = round(rng.gauss(mean, stdev)) if stdev > 0 else mean
    return max(low, value if high is None else min(high, value))


class TextMaker:
    """Seeded word text of an exact token count (by the emulator's tokenizer)."""

    def __init__(self) -> None:
        self.tokenizer = Tokenizer(_TOKENIZER_VOCAB)
        self._cost: dict[str, int] = {}
        self._short = [w for w in _WORDS if self.cost(" " + w) == 1]

    def cost(self, piece: str) -> int:
        if piece not in self._cost:
            self._cost[piece] = len(self.tokenizer.encode(piece))
        return self._cost[piece]

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def words(self, rng: random.Random, tokens: int, first: bool = True) -> str:
        """`tokens` tokens of words, each after a space but the first when `first` (each word is its
        own piece for the tokenizer, so counts add up)."""
        parts: list[str] = []
        left = tokens
        while left > 0:
            space = "" if first and not parts else " "
            word = space + rng.choice(_WORDS)
            if self.cost(word) > left:
                word = space + rng.choice(self._short)
            parts.append(word)
            left -= self.cost(word)
        return "".join(parts)


def synthetic_prompts(s: SyntheticSpec, seed: int) -> list[Prompt]:
    """The prompts of a synthetic spec (pure: the same spec and seed give the same prompts)."""
    maker = TextMaker()
    prefixes = [maker.words(random.Random(f"{seed}:prefix:{g}"), s.prefix_tokens) for g in range(s.prefix_groups)]
    sizes = random.Random(f"{seed}:sizes")
    out: list[Prompt] = []
    for i in range(s.samples):
        prompt_n = _sample(sizes, s.prompt_tokens, s.prompt_stdev, s.prompt_min, s.prompt_max)
        output_n = _sample(sizes, s.output_tokens, s.output_stdev, s.output_min, s.output_max)
        own = maker.words(random.Random(f"{seed}:prompt:{i}"), prompt_n, first=s.prefix_tokens == 0)
        text = prefixes[i % s.prefix_groups] + own
        session = f"session-{i // s.turns}" if s.turns > 1 else ""
        out.append(Prompt(f"synthetic-{i}", text, output_n, maker.count(text), session))
    return out


def _synthetic(spec: str, body: str, seed: int, output_tokens: int) -> list[Prompt]:
    return synthetic_prompts(parse_synthetic(spec, body), seed)


# -- files ----------------------------------------------------------------------------------------------
def _rows(spec: str, path: Path) -> list[tuple[int, Mapping[str, Any]]]:
    if not path.is_file():
        raise DatasetError(f"--data {spec}: {path} is not a file")
    columns, rows = read_rows(path, lambda m: DatasetError(f"--data {spec}: {m}"), json_hint="a 'prompt' key")
    if columns is not None and "prompt" not in columns:
        raise DatasetError(f"--data {spec}: {path} has no column 'prompt' (columns: {', '.join(columns) or 'none'})")
    return rows


def _int_field(spec: str, where: str, row: Mapping[str, Any], key: str) -> int | None:
    raw = row.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise DatasetError(f"--data {spec}: {where}: {key}={raw!r} is not a whole number") from None
    if value < 1:
        raise DatasetError(f"--data {spec}: {where}: {key} must be >= 1")
    return value


def _file(spec: str, body: str, seed: int, output_tokens: int) -> list[Prompt]:
    path = Path(body).expanduser()
    maker = TextMaker()
    out: list[Prompt] = []
    for number, row in _rows(spec, path):
        where = f"{path}:{number}"
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise DatasetError(f"--data {spec}: {where}: 'prompt' is missing or empty")
        outputs = _int_field(spec, where, row, "output_tokens") or output_tokens
        tokens = _int_field(spec, where, row, "prompt_tokens") or maker.count(prompt)
        out.append(Prompt(f"row-{number}", prompt, outputs, tokens, str(row.get("session") or "")))
    return out


def _transcripts(spec: str, body: str, seed: int, output_tokens: int) -> list[Prompt]:
    folder = Path(body).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"--data {spec}: {folder} is not a folder (give the transcripts' folder, DIR/*.txt)")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise DatasetError(f"--data {spec}: no .txt transcripts in {folder}")
    maker = TextMaker()
    system_tokens = maker.count(SUMMARY_SYSTEM_PROMPT)
    return [
        Prompt(f.stem, text, output_tokens, system_tokens + maker.count(text), f.stem, SUMMARY_SYSTEM_PROMPT)
        for f in files
        if (text := f.read_text(encoding="utf-8").strip())
    ]
