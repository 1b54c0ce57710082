"""What the CLI prints at the end of a command: a table fitted to the terminal, the run's
warnings summarised, and JSON for scripts (NaN as null)."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import sys
import textwrap
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

#: A table wider than the terminal loses columns in this order, each group whole, until
#: it fits; the model, its condition columns, the p50s, their Δ and the verdict stay
#: (their intervals and long labels are shortened last). ``--wide``, ``trb compare`` and
#: ``trb report`` show every column. Patterns match the table's own column names.
DROP_ORDER = (
    ("status (when every row is ok)", r"^status$"),
    ("per-run p99 lists", r"_repeats$"),
    ("runs per condition (k)", r"(^|_)k$"),
    ("p value", r"^p_value$"),
    ("detectable difference", r"^detectable_pct$"),
    ("mean", r"(^|_)mean(_ms|_pct)$|^mean_ms$"),
    ("p99", r"(^|_)p99(_ms|_pct)$"),
    ("p90 / p95", r"(^|_)p9[05](_ms|_pct)$"),
    ("fps and throughput", r"(^|_)(fps|throughput_ips)$"),
    ("inferences (n)", r"(^|_)n$"),
    ("std / min / max", r"(^|_)(std|min|max|cv)(_ms)?$"),
    ("GPU times", r"^gpu_"),
    ("intervals of the p50", r"_CI$"),
)
_MIN_CELL = 8


def terminal_width() -> Optional[int]:
    """The width to fit: ``$COLUMNS`` where set, else the terminal's where stdout is one,
    else None (a pipe or a file gets the whole table)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        if sys.stdout.isatty():  # a terminal that tells no width (a bare pty): 80
            return os.get_terminal_size(sys.stdout.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        pass
    return None


def _aligned(cells: pd.DataFrame, heads: List[str]) -> List[str]:
    """A markdown table with its columns padded (still markdown)."""
    widths = [max([len(h)] + [len(v) for v in cells.iloc[:, i]]) for i, h in enumerate(heads)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(heads), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(list(r)) for r in cells.itertuples(index=False, name=None)]
    return out


def _width(cells: pd.DataFrame, heads: List[str]) -> int:
    return max(len(x) for x in _aligned(cells, heads))


def fit_table(df: pd.DataFrame, width: Optional[int]) -> str:
    """``df`` (a comparison table of ``results.compare``) as an aligned markdown table no
    wider than ``width`` where it can be (``DROP_ORDER``; then the Δ intervals, then the
    longest labels cut with …), its ``—`` verdicts' reasons below, wrapped; and a line
    naming what was left out."""
    from .compare import head, notes, shown

    cells = shown(df)
    dropped: List[str] = []
    if width is not None:
        for label, pattern in DROP_ORDER:
            if _width(cells, [head(c) for c in cells.columns]) <= width:
                break
            cols = [c for c in cells.columns if re.search(pattern, c)]
            if label.startswith("status"):
                cols = [c for c in cols if (cells[c] == "ok").all()]
            if cols:
                cells = cells.drop(columns=cols)
                dropped.append(label)
        if _width(cells, [head(c) for c in cells.columns]) > width:  # "+12.3% [+8.1, +16.0]" -> "+12.3%"
            for c in cells.columns:
                if c.endswith("_pct"):
                    cells[c] = cells[c].str.replace(r" \[.*\]$", "", regex=True)
            dropped.append("intervals of the Δs")
        while _width(cells, [head(c) for c in cells.columns]) > width:
            lens = {c: cells[c].str.len().max() for c in cells.columns}
            c = max(lens, key=lens.get)
            if lens[c] <= _MIN_CELL:
                break
            cut = max(_MIN_CELL, lens[c] - (_width(cells, [head(x) for x in cells.columns]) - width))
            cells[c] = [v if len(v) <= cut else v[:cut - 1] + "…" for v in cells[c]]
    lines = _aligned(cells, [head(c) for c in cells.columns])
    extra = notes(df)
    if dropped:
        extra.append(f"left out to fit {width} columns: {', '.join(dropped)} (--wide, trb compare or trb report "
                     "for every column)")
    for n in extra:
        lines.extend(textwrap.wrap(n, width=width, subsequent_indent="  ") if width else [n])
    return "\n".join(lines)


# ------------------------------------------------------------------------- warnings


def warning_counts(runs: pd.DataFrame) -> Dict[str, Dict[str, int]]:
    """Per model, how many warnings of each kind its rows got: the diagnostics' codes
    (``results.diagnose``), ``other`` for the rest (the machine controls', telemetry's)."""
    out: Dict[str, Dict[str, int]] = {}
    for _, r in runs.iterrows():
        diag = r.get("diagnostics") if "diagnostics" in runs.columns else None
        diag = list(diag) if isinstance(diag, (list, tuple, np.ndarray)) else []
        warns = r.get("warnings") if "warnings" in runs.columns else None
        warns = list(warns) if isinstance(warns, (list, tuple, np.ndarray)) else []
        counts = out.setdefault(str(r["model"]), {})
        for d in diag:
            code = d.get("code", "other") if isinstance(d, dict) else "other"
            counts[code] = counts.get(code, 0) + 1
        rest = len(warns) - len(diag)
        if rest > 0:
            counts["other"] = counts.get("other", 0) + rest
    return {m: c for m, c in out.items() if c}


def warnings_summary(runs: pd.DataFrame, run_dir) -> Optional[str]:
    """``warnings (23; ...): cls: cv ×2, drift ×2; det: few_samples ×2`` or None."""
    counts = warning_counts(runs)
    if not counts:
        return None
    total = sum(sum(c.values()) for c in counts.values())
    parts = []
    for model, c in counts.items():
        kinds = ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
        parts.append(f"  {model}: {kinds}")
    return (f"warnings ({total}; the messages: trb report {run_dir}, or -v):\n" + "\n".join(parts))


# ----------------------------------------------------------------------------- JSON


def jsonable(v):
    """A value of a results table as JSON: NaN, NaT and None as null, numpy scalars as
    numbers, arrays and tuples as lists, times as ISO 8601."""
    if v is None:
        return None
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [jsonable(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (pd.Timestamp, _dt.datetime, _dt.date)):
        return None if pd.isna(v) else v.isoformat()
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v) if not isinstance(v, str) else v


def records(df: pd.DataFrame, drop: Sequence[str] = ("_rows",)) -> List[dict]:
    """Every row of ``df`` as a JSON-ready dict, every column (NaN as null)."""
    cols = [c for c in df.columns if c not in drop]
    return [{c: jsonable(v) for c, v in zip(cols, row)} for row in df[cols].itertuples(index=False, name=None)]


def dumps(obj) -> str:
    return json.dumps(jsonable(obj), indent=1, allow_nan=False)


#: the runs columns of each row in ``trb run --json`` (where the run has them)
RUN_ROW_COLUMNS = ("model", "phase", "repeat", "mode", "variant", "status", "error", "backend", "precision", "batch",
                   "n", "mean_ms", "p50_ms", "p50_ci_lo_ms", "p50_ci_hi_ms", "p90_ms", "p95_ms", "p99_ms", "fps",
                   "throughput_ips", "gpu_p50_ms")


def run_summary(out: dict, table: Optional[pd.DataFrame], code: int) -> dict:
    """``trb run --json``: the run folder, each runs row (status, n, p50 and its
    interval, ...; its warnings as ``{code, message}``), the comparison table the text
    output prints (with its verdicts), the warnings counted by model and kind."""
    runs = out["tables"]["runs"]
    rows = []
    for _, r in runs.iterrows():
        row = {c: jsonable(r.get(c)) for c in RUN_ROW_COLUMNS if c in runs.columns}
        diag = r.get("diagnostics") if "diagnostics" in runs.columns else []
        diag = list(diag) if isinstance(diag, (list, tuple, np.ndarray)) else []
        warns = list(r.get("warnings")) if isinstance(r.get("warnings"), (list, tuple, np.ndarray)) else []
        coded = {d.get("message"): d.get("code") for d in diag if isinstance(d, dict)}
        row["warnings"] = [{"code": coded.get(w, "other"), "message": w} for w in warns]
        rows.append(row)
    first = runs.iloc[0] if len(runs) else {}
    return {
        "run_dir": str(out["run_dir"]), "run_id": jsonable(first.get("run_id")) if len(runs) else None,
        "experiment": jsonable(first.get("experiment")) if len(runs) else None,
        "exit_code": code, "ok": code == 0,
        "rows": rows,
        "table": records(table) if table is not None else None,
        "warnings": warning_counts(runs),
    }


