"""Comparison tables, derived from ``runs`` rows (data first, presentation after)."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import pandas as pd

STATS = ("mean_ms", "p50_ms", "p99_ms")


def pct(new, base):
    """Percentage change of ``new`` over ``base``."""
    return (np.asarray(new, dtype=float) / np.asarray(base, dtype=float) - 1.0) * 100.0


def alone_vs_together(runs: pd.DataFrame, stats: Sequence[str] = STATS) -> pd.DataFrame:
    """One row per model: alone and together values of each statistic (mean over
    repeats of successful runs) and the % increase, as in the users' seed 002 tables."""
    ok = runs[runs["status"] == "ok"]
    order = list(dict.fromkeys(runs["model"]))
    g = ok.groupby(["model", "phase"])[list(stats)].mean()
    n = ok.groupby(["model", "phase"])["n"].sum()
    rows = []
    for model in order:
        row = {"model": model}
        for s in stats:
            a = g[s].get((model, "alone"), np.nan)
            t = g[s].get((model, "together"), np.nan)
            row[f"alone_{s}"] = a
            row[f"together_{s}"] = t
            row[f"increase_{s.replace('_ms', '')}_pct"] = float(pct(t, a)) if np.isfinite(a) and np.isfinite(t) else np.nan
        row["alone_n"] = int(n.get((model, "alone"), 0))
        row["together_n"] = int(n.get((model, "together"), 0))
        bad = runs[(runs["model"] == model) & (runs["status"] != "ok")]
        row["status"] = "ok" if bad.empty else "; ".join(f"{p}: {s}" for p, s in zip(bad["phase"], bad["status"]))
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v, col: str) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "-"
        if col.endswith("_pct"):
            return f"{v:+.1f}%"
        return f"{v:.2f}ms" if col.endswith("_ms") else f"{v:.3g}"
    return str(v)


def to_markdown(df: pd.DataFrame, headers: List[str] = None) -> str:
    cols = list(df.columns)
    heads = headers or cols
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c], c) for c in cols) + " |")
    return "\n".join(lines)


def render(df: pd.DataFrame, fmt: str = "md") -> str:
    if fmt == "csv":
        return df.to_csv(index=False, float_format="%.4f")
    heads = [c.replace("_ms", "").replace("increase_", "Δ ").replace("_pct", " %") for c in df.columns]
    return to_markdown(df, heads)
