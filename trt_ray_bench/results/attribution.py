"""The idle-gap slowdown explained: which variant of an idle gap restores the back-to-back latency,
and so what causes the slowdown after a gap (``trb compare DIR --by gap``).

The study (``examples/03_idle_gap_slowdown/gap_attribution.yaml``) times one engine back to back
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

Everything is decided on runs (``results.verdict``: a unit of evidence per process, the
log of each unit's p50, paired where the same processes measured both sides):

1. The slowdown: the plain gap (``sleep``, no prewarm, default clocks) must be shown
   slower than back to back. If it is not shown, there is nothing to attribute; if the
   runs cannot tell (fewer than two processes a side), the verdict is inconclusive.
2. A variant *restores* the back-to-back latency when it is shown faster than the plain
   gap **and** the lower bound of the share of the slowdown it recovers is at least
   ``RECOVERED``. The share is ``log(gap / variant) / log(gap / back to back)`` with its
   Fieller interval (``LogDesign.share``) at the rows' confidence. For ``clocks: max``
   the share is that of the slowdown at the default clocks which is gone at max: the gap
   at max is judged against back to back at max, not against the default clocks.
3. Every restoring variant names its cause (a dummy inference also wakes the host, the
   clocks and the power state, so several can restore it: all are named). None restoring:
   "inconclusive", with what would decide it (the repeats that the observed spread needs,
   or a longer gap).
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import pandas as pd

from ..timing._stats import geometric_interval, t_quantile
from .verdict import HOW, NO_TEST, LogDesign, interval_verdict, level, unit_values

#: a variant restores the latency when the lower bound of the share of the gap's slowdown
#: it recovers is at least this
RECOVERED = 0.75
#: variant -> (gap_mode, prewarm, clocks_mode) of its rows, and the cause it stands for,
#: in the table's order
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


def _repeats_needed(est: float, se: float, df: float, k: int, confidence: float) -> Optional[int]:
    """About how many units a side would make a one-sided bound of ``est`` (> 0, its
    standard error ``se`` from ``k`` units) clear 0 at ``confidence``: ``se`` shrinking as
    sqrt(k), the t quantile at the new degrees of freedom."""
    if not (est > 0 and se > 0 and k >= 2):
        return None
    for kk in range(k, 1000):
        ddf = max(df * (kk - 1) / max(k - 1, 1), 1.0)
        if est / (se * math.sqrt(k / kk)) >= t_quantile(0.5 + confidence / 2.0, ddf):
            return kk
    return None


def attribute(runs: pd.DataFrame) -> Tuple[pd.DataFrame, str]:
    """The gap study's table (one row per variant: its latency and interval across runs,
    Δ % over back to back, whether it is shown faster than the plain gap, the share of the
    slowdown it recovers with its interval, whether it restores the back-to-back latency)
    and one sentence naming the cause, or why none can be named."""
    rows = latest_per_clocks(runs)
    if not len(rows):
        return pd.DataFrame(), "no ok rows to attribute"
    gap = pd.to_numeric(_col(rows, "gap_s", 0.0), errors="coerce").fillna(0.0)
    mode = _col(rows, "gap_mode", "sleep").astype(str)
    pre = _col(rows, "prewarm", "none").astype(str)
    clocks = _col(rows, "clocks_mode", "default").astype(str)
    stat = _stat(rows)
    conf = level(rows)

    def pick(gapped: bool, gm: str, pw: str, ck: str) -> pd.DataFrame:
        if not gapped:
            return rows[(gap == 0) & (pre == pw) & (clocks == ck)]
        return rows[(gap > 0) & (mode == gm) & (pre == pw) & (clocks == ck)]

    sel = {"b": pick(False, "sleep", "none", "default"), "s": pick(True, "sleep", "none", "default"),
           "b_max": pick(False, "sleep", "none", "max"), "s_max": pick(True, "sleep", "none", "max")}
    for name, (gm, pw, ck), _ in VARIANTS:
        if ck == "default":
            sel[name] = pick(True, gm, pw, ck)
    if not len(sel["b"]) or not len(sel["s"]):
        return pd.DataFrame(), ("the gap study needs a back-to-back row (gap_s 0) and a gap row (gap_mode sleep, "
                                "prewarm none) at clocks default")
    units = {g: unit_values(r, stat) for g, r in sel.items() if len(r)}
    design = LogDesign(units)
    gap_s = float(gap[sel["s"].index].median())
    slow_w = {"s": 1.0, "b": -1.0}
    table: List[dict] = []
    base = float(np.exp(design.mean({"b": 1.0}))) if design.k("b") else float("nan")

    def line(label: str, g: str, cause: str = "") -> dict:
        r = {"variant": label, "n_rows": len(sel.get(g, [])), "k": design.k(g)}
        if g in units and len(units[g]):
            v = units[g].to_numpy(float)
            point = float(np.exp(np.log(v).mean()))
            lo, hi = geometric_interval(v, conf) if len(v) >= 2 else _row_interval(sel[g], stat)
            r.update({stat: point, f"{stat[:-3]}_lo_ms": lo, f"{stat[:-3]}_hi_ms": hi,
                      "vs_back_to_back_pct": (point / base - 1) * 100 if base > 0 else np.nan})
        r["cause if it restores"] = cause
        table.append(r)
        return r

    line("back to back", "b")
    s_line = line(f"gap {gap_s * 1e3:g} ms, sleep", "s")
    est, se, df = design.estimate(slow_w)
    what = f"{stat.replace('_ms', '')} after a {gap_s * 1e3:g} ms gap vs back to back"
    if not math.isfinite(se) or not se > 0:
        slow_word, slow_text = NO_TEST, ""
    else:
        lo, hi, p, slow_word, _ = interval_verdict(est, se, df, conf)
        slow_text = f"×{math.exp(est):.3f} [{lo:.3f}, {hi:.3f}]"
        s_line["vs_gap"] = ""
        s_line["shown slower than back to back"] = slow_word
    found: List[str] = []
    best: Optional[tuple] = None  # (share point, name, est of the 75 % contrast, se, df, k)
    for label, (gm, pw, ck), cause in VARIANTS:
        if ck == "max":
            r = line(label, "s_max", cause)
            num = {"s": 1.0, "b": -1.0, "s_max": -1.0, "b_max": 1.0}  # the slowdown gone at max
            faster_w = {"s_max": 1.0, "b_max": -1.0, "s": -1.0, "b": 1.0}
            r["n_rows"] = len(sel["s_max"]) + len(sel["b_max"])
        else:
            r = line(label, label, cause)
            num = {"s": 1.0, label: -1.0}
            faster_w = {label: 1.0, "s": -1.0}
        if not design.ready(num) or not design.ready(slow_w):
            r["restores"] = NO_TEST
            continue
        f_est, f_se, f_df = design.estimate(faster_w)
        f_word = interval_verdict(f_est, f_se, f_df, conf)[3] if f_se > 0 else NO_TEST
        share, s_lo, s_hi = design.share(num, slow_w, conf)
        restores = f_word == "faster" and s_lo >= RECOVERED
        r.update({"vs_gap": f_word, "recovered_pct": share * 100, "recovered_lo_pct": s_lo * 100,
                  "recovered_hi_pct": s_hi * 100, "restores": "yes" if restores else "no"})
        if restores:
            found.append(cause)
        elif math.isfinite(share) and share >= RECOVERED:
            contrast = dict(num)
            for g, w in slow_w.items():
                contrast[g] = contrast.get(g, 0.0) - RECOVERED * w
            c_est, c_se, c_df = design.estimate(contrast)
            k = min(design.k(g) for g in contrast)
            if best is None or share > best[0]:
                best = (share, label, c_est, c_se, c_df, k)
    if len(sel["b_max"]):
        line("back to back, clocks max", "b_max")
    out = pd.DataFrame(table)
    if slow_word == NO_TEST:
        ks = (design.k("b"), design.k("s"))
        return out, (f"inconclusive: whether the gap slows it down is not known ({what}: {min(ks)} run(s) a side, "
                     f"run-to-run noise unknown); {HOW}")
    if slow_word != "slower":
        return out, f"no slowdown shown after the gap ({what}: {slow_text}): nothing to attribute"
    if found:
        names = found[0] if len(found) == 1 else ", ".join(found[:-1]) + " and " + found[-1]
        return out, (f"cause: {names} ({what}: {slow_text}; restored by "
                     + ", ".join(r["variant"] for r in table if r.get("restores") == "yes") + ")")
    if best is None:
        return out, (f"inconclusive: the gap slows it down ({what}: {slow_text}) but no variant is shown to "
                     f"recover {RECOVERED * 100:.0f} % of it, none even by its point estimate; a variant of "
                     f"another suspect, or a longer gap, would decide it")
    share, label, c_est, c_se, c_df, k = best
    need = _repeats_needed(c_est, c_se, c_df, k, conf)
    more = f"about {need} repeats (now {k})" if need else "more repeats"
    return out, (f"inconclusive: the gap slows it down ({what}: {slow_text}); {label} recovers {share * 100:.0f} % "
                 f"of it by its point estimate, but the runs do not show at least {RECOVERED * 100:.0f} %: {more} "
                 f"at this spread would decide it, or a longer gap (a larger slowdown)")


def _row_interval(rows: pd.DataFrame, stat: str) -> Tuple[float, float]:
    if len(rows) != 1:
        return float("nan"), float("nan")
    r = rows.iloc[0]
    base = stat[:-3]
    return (float(r.get(f"{base}_ci_lo_ms", np.nan)), float(r.get(f"{base}_ci_hi_ms", np.nan)))

