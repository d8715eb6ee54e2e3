"""A report Document as Markdown (CommonMark with GitHub tables), plots linked as `plots/NAME.png`.

Strings from the run are escaped: Markdown punctuation gets a backslash, `<`, `>` and `&` become entities
(so no raw HTML reaches a renderer), and line breaks inside a table cell become spaces.
"""

from __future__ import annotations

import re

from flotilla.reports.document import Block, BulletList, Document, Figure, Paragraph, Section, Subheading, Table

_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")  # what could start emphasis, code, a link or a cell
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape_md(s: str) -> str:
    s = "".join(_ENTITIES.get(ch, ch) for ch in s)
    s = _PUNCTUATION.sub(r"\\\1", s)
    return re.sub(r"\s*[\r\n]+\s*", " ", s)


def _table(t: Table) -> list[str]:
    def row(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(escape_md(c) for c in cells) + " |"

    return [row(t.columns), "|" + "|".join("---" for _ in t.columns) + "|", *(row(r) for r in t.rows), ""]


def _block(b: Block) -> list[str]:
    match b:
        case Paragraph(text=text):
            return [escape_md(text), ""]
        case Subheading(text=text):
            return [f"### {escape_md(text)}", ""]
        case BulletList(items=items):
            return [*(f"- {escape_md(i)}" for i in items), ""]
        case Table():
            return _table(b)
        case Figure(src=src, alt=alt):
            return [f"![{escape_md(alt)}]({src})", ""]
    raise TypeError(f"unknown block {b!r}")


def _section(s: Section) -> list[str]:
    return [f"## {escape_md(s.title)}", "", *(line for b in s.blocks for line in _block(b))]


def render_markdown(doc: Document) -> str:
    lines = [f"# {escape_md(doc.title)}", "", *(line for s in doc.sections for line in _section(s)), "---", ""]
    return "\n".join([*lines, escape_md(doc.footer)]) + "\n"
