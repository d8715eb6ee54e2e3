"""A report as a format-neutral document: sections of paragraphs, lists, tables and figures.

Every string here is plain text taken from the run; the HTML and Markdown renderers escape it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Subheading:
    text: str


@dataclass(frozen=True)
class BulletList:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Figure:
    src: str  # relative to the report: "plots/NAME.png"
    alt: str


Block = Paragraph | Subheading | BulletList | Table | Figure


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    title: str
    sections: tuple[Section, ...]
    footer: str  # the one line that changes between renders of the same run ("rendered at ...")


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    return Table(tuple(columns), tuple(tuple(r) for r in rows))


def key_values(pairs: list[tuple[str, Any]]) -> Table:
    """A two-column table of names and values, values formatted by `cell`."""
    return table(("key", "value"), [(k, cell(v)) for k, v in pairs])


def number(x: float) -> str:
    """A float to three significant digits, never dropping integer digits and never in exponent form
    above 1: 0.05234 -> "0.0523", 0.1 -> "0.100", 1.23456 -> "1.23", 12.345 -> "12.3", 1234.4 -> "1234"."""
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1:
        digits = len(str(int(abs(x))))
        return f"{x:.{max(0, 3 - digits)}f}"
    return f"{x:#.3g}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def seconds(x: float | None) -> str:
    return "-" if x is None else f"{number(x)} s"


def duration(x: float) -> str:
    """Seconds as a human duration: "42.1 s", "3 min 7 s", "2 h 5 min"."""
    if x < 60:
        return seconds(x)
    minutes, secs = divmod(round(x), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def cell(value: Any) -> str:
    """A table cell: None -> "-", floats to 3 significant digits, containers as compact JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(", ", ": "), default=str, ensure_ascii=False)


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
