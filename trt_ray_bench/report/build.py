"""``build_report``: a results folder in, one HTML (or markdown) file and its PNG
figures out, written atomically: everything goes to a hidden temporary folder beside
the output and is moved into place only when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Tuple, Union

from .. import results
from ..errors import UserError
from .content import make_report
from .document import Report
from .html import to_html
from .markdown import to_markdown

FORMATS = {"html": ".html", "md": ".md"}
SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}


def figures_dir(out: Path) -> Path:
    """Where the PNG files of the report ``out`` go: ``<out stem>_figures/`` beside it."""
    out = Path(out)
    return out.parent / f"{out.stem}_figures"


def resolve_output(path: Path, out: Optional[Union[str, Path]], fmt: Optional[str]) -> Tuple[Path, str]:
    """The output file and format: ``fmt`` as given, else from ``out``'s suffix, else
    HTML; ``out`` defaults to ``<path>/report.<fmt>``."""
    if fmt is not None and fmt not in FORMATS:
        raise UserError("--format", f"unknown format {fmt!r}, expected one of {', '.join(FORMATS)}")
    if out is None:
        fmt = fmt or "html"
        return Path(path) / f"report{FORMATS[fmt]}", fmt
    out = Path(out)
    if out.is_dir():
        raise UserError("--out", f"{out} is a folder, expected a file name such as {out / 'report.html'}")
    if fmt is None:
        fmt = SUFFIXES.get(out.suffix.lower())
        if fmt is None:
            raise UserError("--out", f"{out}: unknown suffix {out.suffix!r}, expected .html or .md (or give --format)")
    return out, fmt


def write_report(report: Report, out: Path, fmt: str) -> Path:
    """Write ``report`` to ``out`` and its figures to ``figures_dir(out)``, atomically."""
    out = Path(out)
    figs = figures_dir(out)
    names = report.file_names()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise UserError("--out", f"{out}: cannot write in {out.parent} ({exc.strerror or exc})") from None
    try:
        (tmp / "figures").mkdir()
        for name, fig in zip(names, report.figures):
            (tmp / "figures" / name).write_bytes(fig.png)
        text = to_html(report, [f"{figs.name}/{n}" for n in names]) if fmt == "html" else \
            to_markdown(report, [f"{figs.name}/{n}" for n in names])
        (tmp / "report").write_text(text, encoding="utf-8")
        os.chmod(tmp / "figures", 0o755)
        os.chmod(tmp / "report", 0o644)
        if figs.exists():  # the figures of an earlier report: replaced as a whole
            os.replace(figs, tmp / "old-figures")
        os.replace(tmp / "figures", figs)
        os.replace(tmp / "report", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_report(path: Union[str, Path], out: Optional[Union[str, Path]] = None, fmt: Optional[str] = None,
                 baseline: Optional[str] = None) -> Path:
    """The report of the results under ``path`` (a run, an experiment of several runs,
    or a sweep) as ``out`` (default ``<path>/report.html``), format ``html`` or ``md``
    (default: from ``out``'s suffix); its per-model table against the model ``baseline``
    where given. Returns the file written."""
    out, fmt = resolve_output(Path(path), out, fmt)
    res = results.load(path)  # a missing folder or one without runs: one line
    results.check_writable(out.parent, "--out")
    return write_report(make_report(res, str(path), baseline), out, fmt)
