"""Seed 001 explained: which variant of an idle gap restores the back-to-back latency,
and so what causes the slowdown after a gap (``trb compare DIR --by gap``).

The study (``experiments/seed001_gap_attribution.yaml``) times one engine back to back
and after a gap, the gap waited out in several ways, under the default and the locked
(``max``) clocks. Each variant removes one suspect:

=====================  ==========================================  ====================
variant                what it changes                             restores it: cause
=====================  ==========================================  ====================
gap, ``spin``          the host busy-waits: no OS wake-up           host wake-up
gap, ``clocks: max``   the GPU clocks are locked at their highest   clocks
gap + ``poke``         a tiny GPU operation wakes the GPU first     GPU power state
gap + ``dummy``        one untimed inference runs first             engine cold state
=====================  ==========================================  ====================

A variant *restores* the back-to-back latency when it is within noise of it (their
intervals overlap: ``results.compare.significance``) or when it removes at least
``RECOVERED`` of the slowdown the plain gap (``sleep``, no prewarm) causes. The cause
named is the first restoring variant in the order of the table: the cheapest
explanation first (a dummy inference also wakes the host, the clocks and the power
state, so it names the engine's cold state only when nothing before it restores).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import pandas as pd

from .compare import condition_interval, significance

#: a variant that removes at least this share of the gap's slowdown restores the latency
RECOVERED = 0.75
#: the plain rule where intervals are missing: within this fraction of back to back
TOLERANCE = 0.05
#: variant -> (gap_mode, prewarm, clocks_mode), in the order causes are tried
VARIANTS = [
    ("gap spin", ("spin", "none", "default"), "host wake-up"),
    ("gap clocks max", ("sleep", "none", "max"), "clocks"),
    ("gap + poke", ("sleep", "poke", "default"), "GPU power state"),
    ("gap + dummy", ("sleep", "dummy", "default"), "engine cold state"),
]


def _col(runs: pd.DataFrame, name: str, default) -> pd.Series:
    if name in runs.columns:
        return runs[name].where(runs[name].notna(), default)
    return pd.Series(default, index=runs.index)


def _stat(rows: pd.DataFrame) -> str:
    """GPU p50 where the rows have CUDA-event times (what seed 001 is about), else host p50."""
    if "gpu_p50_ms" in rows.columns and pd.to_numeric(rows["gpu_p50_ms"], errors="coerce").notna().all():
        return "gpu_p50_ms"
    return "p50_ms"


def latest_per_clocks(runs: pd.DataFrame) -> pd.DataFrame:
    """The study's rows: per clock mode, the latest run (a sweep writes one run per clock
    mode; an earlier study in the same folder is left out)."""
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    if not len(ok):
        return ok
    clocks = _col(ok, "clocks_mode", "default").astype(str)
    return ok[ok["run_id"] == ok["run_id"].groupby(clocks).transform("max")]


def _value(rows: pd.DataFrame, stat: str) -> Tuple[float, float, float]:
    v = float(pd.to_numeric(rows[stat], errors="coerce").median())
    return (v, *condition_interval(rows, stat))  # NaN bounds without interval columns: the plain rule decides


def attribute(runs: pd.DataFrame) -> Tuple[pd.DataFrame, str]:
    """The gap study's table (one row per variant: its latency, interval, Δ % over back to
    back, share of the gap's slowdown it removes, whether it restores the back-to-back
    latency) and one sentence naming the cause."""
    rows = latest_per_clocks(runs)
    if not len(rows):
        return pd.DataFrame(), "no ok rows to attribute"
    gap = pd.to_numeric(_col(rows, "gap_s", 0.0), errors="coerce").fillna(0.0)
    mode = _col(rows, "gap_mode", "sleep").astype(str)
    pre = _col(rows, "prewarm", "none").astype(str)
    clocks = _col(rows, "clocks_mode", "default").astype(str)
    stat = _stat(rows)

    def pick(gapped: bool, gm: str, pw: str, ck: str) -> pd.DataFrame:
        sel = ((gap > 0) == gapped) & (mode == gm) & (pre == pw) & (clocks == ck)
        if not gapped:
            sel = (gap == 0) & (pre == pw) & (clocks == ck)
        return rows[sel]

    base_rows = pick(False, "sleep", "none", "default")
    slow_rows = pick(True, "sleep", "none", "default")
    if not len(base_rows) or not len(slow_rows):
        return pd.DataFrame(), ("the gap study needs a back-to-back row (gap_s 0) and a gap row (gap_mode sleep, "
                                "prewarm none) at clocks default")
    b, b_lo, b_hi = _value(base_rows, stat)
    s, s_lo, s_hi = _value(slow_rows, stat)
    slowdown = s - b
    gap_s = float(gap[slow_rows.index].median())
    table: List[dict] = []

    def line(label: str, sub: pd.DataFrame, cause: Optional[str]) -> Optional[bool]:
        if not len(sub):
            table.append({"variant": label, "n_rows": 0, "restores": "—", "cause if it restores": cause or ""})
            return None
        v, lo, hi = _value(sub, stat)
        within = significance(b_lo, b_hi, lo, hi)
        recovered = (s - v) / slowdown if slowdown > 0 else float("nan")
        if within == "—":  # no intervals: the plain rule
            restores = v <= b * (1 + TOLERANCE) or (np.isfinite(recovered) and recovered >= RECOVERED)
        else:
            restores = within == "no" or v <= b or (np.isfinite(recovered) and recovered >= RECOVERED)
        table.append({"variant": label, "n_rows": len(sub), stat: v,
                      stat[:-3] + "_ci_lo_ms": lo, stat[:-3] + "_ci_hi_ms": hi,
                      "vs_back_to_back_pct": (v / b - 1) * 100 if b > 0 else float("nan"),
                      "recovered_pct": recovered * 100 if np.isfinite(recovered) else float("nan"),
                      "restores": "yes" if restores else "no", "cause if it restores": cause or ""})
        return restores

    line("back to back", base_rows, None)
    line(f"gap {gap_s * 1e3:g} ms, sleep", slow_rows, None)
    table[1]["restores"] = ""
    table[0]["restores"] = ""
    found: Optional[str] = None
    for label, (gm, pw, ck), cause in VARIANTS:
        ok = line(label, pick(True, gm, pw, ck), cause)
        if ok and found is None:
            found = cause
    b2b_max = pick(False, "sleep", "none", "max")
    if len(b2b_max):
        line("back to back, clocks max", b2b_max, None)
        table[-1]["restores"] = ""
    out = pd.DataFrame(table)
    slower = significance(b_lo, b_hi, s_lo, s_hi)
    what = f"{stat.replace('_ms', '')} {b:.3f} ms back to back, {s:.3f} ms after a {gap_s * 1e3:g} ms gap"
    if slowdown <= 0 or (slower == "no") or (slower == "—" and s <= b * (1 + TOLERANCE)):
        return out, f"no slowdown after the gap to attribute ({what})"
    if found is None:
        return out, (f"cause not found: no variant restores the back-to-back latency ({what}); "
                     "see recovered_pct for the partial effects")
    return out, f"cause: {found} ({what}; the first variant that restores it: {found})"
