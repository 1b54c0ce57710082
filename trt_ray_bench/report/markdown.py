"""A report as markdown: the same sections, tables as ``trb compare`` prints them, and
the figures as links to their PNG files beside it."""

from __future__ import annotations

from typing import List

from ..results import render
from ._format import formatted
from .document import Figure, Heading, Items, Paragraph, Report, Table


def _table(t: Table) -> str:
    parts = [f"### {t.title}\n"] if t.title else []
    cells = formatted(t.frame).apply(
        lambda col: col.str.replace("|", "\\|", regex=False).str.replace("\n", " ", regex=False))
    parts.append(render(cells))
    if t.note:
        parts.append(f"\n_{t.note}_")
    return "\n".join(parts)


def to_markdown(report: Report, links: List[str]) -> str:
    """The document; ``links`` are the figures' PNG paths relative to it."""
    links = iter(links)
    n = 0
    out = [f"# {report.title}"]
    for s in report.sections:
        out.append(f"## {s.title}")
        for b in s.blocks:
            if isinstance(b, Heading):
                out.append(f"### {b.text}")
            elif isinstance(b, Paragraph):
                out.append(b.text)
            elif isinstance(b, Items):
                out.append("\n".join(f"- {i}" for i in b.items))
            elif isinstance(b, Table):
                out.append(_table(b))
            elif isinstance(b, Figure):
                n += 1
                link = next(links)
                out.append(f"![Figure {n}: {b.name}]({link})\n\n**Figure {n}.** {b.caption}")
    return "\n\n".join(out) + "\n"
