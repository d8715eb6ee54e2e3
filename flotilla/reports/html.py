"""A report Document as one self-contained HTML5 file: inline CSS, no scripts, plots linked as `plots/NAME.png`.

Every string from the run goes through `html.escape` (quotes included), so a run or item named
`<script>...</script>` shows as text.
"""

from __future__ import annotations

import re
from html import escape

from flotilla.reports.document import Block, BulletList, Document, Figure, Paragraph, Section, Subheading, Table

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: .85rem; }
footer { color: #57606a; font-size: .8rem; margin-top: 3rem; border-top: 1px solid #d0d7de; padding-top: .4rem; }
"""

NUMERIC = re.compile(r"^-?[\d.,]+(e[-+]?\d+)?( s)?$")


def _e(s: str) -> str:
    return escape(s, quote=True)


def _table(t: Table) -> list[str]:
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in t.columns) + "</tr></thead>", "<tbody>"]
    for row in t.rows:
        cells = "".join(f'<td class="num">{_e(v)}</td>' if NUMERIC.match(v) else f"<td>{_e(v)}</td>" for v in row)
        out.append(f"<tr>{cells}</tr>")
    out += ["</tbody>", "</table>"]
    return out


def _block(b: Block) -> list[str]:
    match b:
        case Paragraph(text=text):
            return [f"<p>{_e(text)}</p>"]
        case Subheading(text=text):
            return [f"<h3>{_e(text)}</h3>"]
        case BulletList(items=items):
            return ["<ul>", *(f"<li>{_e(i)}</li>" for i in items), "</ul>"]
        case Table():
            return _table(b)
        case Figure(src=src, alt=alt):
            return [f'<figure><img src="{_e(src)}" alt="{_e(alt)}"><figcaption>{_e(alt)}</figcaption></figure>']
    raise TypeError(f"unknown block {b!r}")


def _section(s: Section) -> list[str]:
    return ["<section>", f"<h2>{_e(s.title)}</h2>", *(line for b in s.blocks for line in _block(b)), "</section>"]


def render_html(doc: Document) -> str:
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(doc.title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{_e(doc.title)}</h1>",
        *(line for s in doc.sections for line in _section(s)),
        "</main>",
        f"<footer>{_e(doc.footer)}</footer>",
        "</body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"
