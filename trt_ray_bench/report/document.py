"""A report as a value: sections of paragraphs, lists, tables and figures. The HTML and
markdown writers only present it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Union

import pandas as pd


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass(frozen=True)
class Items:
    """A bulleted list of sentences."""

    items: List[str]


@dataclass(frozen=True)
class Table:
    """``frame`` as measured; ``note`` says what its numbers are."""

    frame: pd.DataFrame
    title: str = ""
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """One PNG. ``name`` is its file name's stem (``latency-host``); ``caption`` says what
    it shows; ``panels`` names its sub-plots, top to bottom."""

    name: str
    caption: str
    png: bytes
    panels: List[str] = field(default_factory=list)


Block = Union[Heading, Paragraph, Items, Table, Figure]


@dataclass
class Section:
    title: str
    blocks: List[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: List[Section] = field(default_factory=list)

    @property
    def figures(self) -> List[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]

    def file_names(self) -> List[str]:
        """``NN-name.png`` for every figure, numbered in reading order."""
        return [f"{i:02d}-{f.name}.png" for i, f in enumerate(self.figures, 1)]
