"""A report as one self-contained HTML page: figures embedded as ``data:image/png``
URIs, a little inline CSS, no script, no external file of any kind."""

from __future__ import annotations

import base64
import re
from html import escape
from typing import List

from ._format import formatted
from .document import Figure, Heading, Items, Paragraph, Report, Table

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 13px; margin: .4em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } td.n { text-align: right; white-space: nowrap; }
.wide { overflow-x: auto; } .note { font-size: 13px; color: #555; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #444; max-width: 900px; }
"""


#: a cell that holds one number (``1.23ms``, ``+5.0%``, ``0.37x``, ``-``): right-aligned
NUMBER = re.compile(r"<td>([-+]?[0-9][0-9,]*(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?(?:ms|%|x)?|-)</td>")


def _table(t: Table) -> str:
    parts = [f"<h3>{escape(t.title)}</h3>"] if t.title else []
    body = formatted(t.frame).to_html(index=False, border=0, escape=True, classes="t")
    body = NUMBER.sub(r'<td class="n">\1</td>', body)
    parts.append(f'<div class="wide">{body}</div>')
    if t.note:
        parts.append(f'<p class="note">{escape(t.note)}</p>')
    return "\n".join(parts)


def _figure(f: Figure, number: int, file_name: str) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    return (f'<figure id="figure-{number}"><img src="data:image/png;base64,{data}" alt="{escape(f.caption)}">'
            f"<figcaption><b>Figure {number}.</b> {escape(f.caption)} <code>{escape(file_name)}</code>"
            f"</figcaption></figure>")


def to_html(report: Report, file_names: List[str]) -> str:
    """The page; ``file_names`` are the figures' PNG files, named in their captions."""
    names = iter(file_names)
    n = 0
    body = [f"<h1>{escape(report.title)}</h1>"]
    for s in report.sections:
        body.append(f"<section><h2>{escape(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Heading):
                body.append(f"<h3>{escape(b.text)}</h3>")
            elif isinstance(b, Paragraph):
                body.append(f"<p>{escape(b.text)}</p>")
            elif isinstance(b, Items):
                body.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in b.items) + "</ul>")
            elif isinstance(b, Table):
                body.append(_table(b))
            elif isinstance(b, Figure):
                n += 1
                body.append(_figure(b, n, next(names)))
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(report.title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
