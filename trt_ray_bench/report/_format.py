"""Cells and headers of the report's tables, the same in HTML and markdown: the
comparison tables' own formatting (``results.compare``) for latencies, percentages and
speedups, plain numbers for the rest (clocks in MHz, power in W)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..results.compare import _fmt, shown
from ..results.compare import head as _head


def cell(v, col: str) -> str:
    if col.endswith("_repeats") and isinstance(v, (list, tuple, np.ndarray)):
        return _fmt(list(v), col)
    if isinstance(v, (list, tuple, np.ndarray)):
        return "; ".join(str(x) for x in v)
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)) and not (col.endswith(("_ms", "_pct")) or col == "speedup"):
        if float(v).is_integer() and abs(v) < 1e12:
            return str(int(v))
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return _fmt(v, col)


def head(col: str) -> str:
    """``alone_p50_ms`` -> ``alone_p50``, ``increase_p50_pct`` -> ``Δ p50 %`` (as ``trb compare``)."""
    return _head(col).replace("axis:", "")


def formatted(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as strings with the report's headers; intervals beside their values, as
    ``trb compare`` shows them (``results.compare.shown``)."""
    out = shown(df, cell)
    out.columns = [head(c) for c in out.columns]
    return out.reset_index(drop=True)
