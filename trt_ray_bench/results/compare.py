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
    if "mode" in runs.columns and runs["mode"].nunique() > 1:  # one mode at a time here
        runs = runs[runs["mode"] == ("inference" if "inference" in set(runs["mode"]) else runs["mode"].iloc[0])]
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


#: run conditions that, when they differ between the runs compared, split the rows
CONDITIONS = ("mode", "phase", "clocks_mode", "mps")
VERSUS = ("n", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms", "fps", "gpu_p50_ms")


def versus(runs: pd.DataFrame, baseline: str, stats: Sequence[str] = VERSUS) -> pd.DataFrame:
    """One row per model (and condition that varies): seed 003's table, mean/std/min/max/
    P95/P99/FPS, plus the speedup of each over ``baseline`` (its mean over theirs)."""
    ok = runs[runs["status"] == "ok"]
    if baseline not in set(ok["model"]):
        from ..errors import UserError

        raise UserError("--baseline", f"{baseline!r} has no successful run here (have {', '.join(dict.fromkeys(runs['model']))})")
    keys = [c for c in CONDITIONS if c in ok.columns and ok[c].astype(str).nunique() > 1]
    stats = [c for c in stats if c in ok.columns and ok[c].notna().any()]
    agg = {c: ("sum" if c == "n" else "mean") for c in stats}
    g = ok.groupby(keys + ["model"], sort=False).agg(agg).reset_index()
    base = g[g["model"] == baseline].set_index(keys)["mean_ms"] if keys else g.loc[g["model"] == baseline, "mean_ms"].iloc[0]
    if keys:
        b = g.set_index(keys).index.map(lambda k: base.get(k, np.nan))
        g["speedup"] = np.asarray(b, dtype=float) / g["mean_ms"]
    else:
        g["speedup"] = base / g["mean_ms"]
    return g


#: seed 002's columns, in its order: (mode, phase)
BY_MODE = (("inference", "alone"), ("inference", "together"), ("pipeline", "alone"), ("pipeline", "together"),
           ("validation", "alone"), ("without_val", "alone"), ("validation", "together"),
           ("without_val", "together"))


def by_mode(runs: pd.DataFrame, stat: str = "mean_ms", base=("inference", "alone")) -> pd.DataFrame:
    """Seed 002's tables in one: per model, ms per image of each (mode, phase) measured,
    and the % increase of each over ``base`` (InferenceTime alone by default)."""
    ok = runs[runs["status"] == "ok"].copy()
    if "mode" not in ok.columns:
        ok["mode"] = "inference"
    ok["per_image"] = ok[stat] / ok["batch"].fillna(1)
    g = ok.groupby(["model", "mode", "phase"])["per_image"].mean()
    present = [k for k in BY_MODE if any((m, k[0], k[1]) in g.index for m in ok["model"].unique())]
    rows = []
    for model in dict.fromkeys(runs["model"]):
        row = {"model": model}
        for mode, phase in present:
            row[f"{mode}_{phase}_ms"] = g.get((model, mode, phase), np.nan)
        b = g.get((model,) + tuple(base), np.nan)
        for mode, phase in present:
            if (mode, phase) != tuple(base):
                row[f"{mode}_{phase}_vs_{base[0]}_pct"] = float(pct(row[f"{mode}_{phase}_ms"], b))
        for k in ("top1", "top5", "map50", "map50_95", "box_map50_95", "mask_map50_95", "pose_map50_95"):
            if k in ok.columns and ok.loc[ok["model"] == model, k].notna().any():
                row[k] = float(ok.loc[ok["model"] == model, k].dropna().iloc[-1])
        rows.append(row)
    return pd.DataFrame(rows)


#: the pipeline's stages, in the order an image goes through them (runs columns ``<stage>_p50_ms``)
STAGES = ("load", "pre", "infer", "post", "metrics")


def stages(runs: pd.DataFrame) -> pd.DataFrame:
    """Where the time of each pipeline / validation row goes: one row per model, mode and
    phase (and MPS or clocks where they vary), the p50 of every stage, their sum, the
    measured p50 per image and the GPU time, in ms. Answers seed 002's "why is X slower
    without the metric work": the stage that moved is named by its column."""
    from ..errors import UserError

    cols = [f"{s}_p50_ms" for s in STAGES]
    ok = runs[(runs["status"] == "ok")] if "status" in runs.columns else runs
    present = [c for c in cols if c in ok.columns and ok[c].notna().any()]
    if not present:
        raise UserError("runs", "no stage times: --by stage needs pipeline or validation runs (modes pipeline, "
                        "validation, without_val)")
    ok = ok[ok[present].notna().any(axis=1)]
    keys = [c for c in CONDITIONS if c in ok.columns and (c in ("mode", "phase") or ok[c].astype(str).nunique() > 1)]
    extra = [c for c in ("p50_ms", "gpu_p50_ms") if c in ok.columns]
    g = ok.groupby(["model"] + keys, sort=False)[present + extra].mean().reset_index()
    modes = list(dict.fromkeys(m for m, _ in BY_MODE))
    order = {"mode": modes, "phase": ["alone", "together"], "model": list(dict.fromkeys(runs["model"]))}

    def rank(col: pd.Series) -> pd.Series:  # modes, phases and models in their usual order
        if col.name not in order:
            return col.astype(str)
        known = order[col.name]
        return col.map(lambda v: known.index(v) if v in known else len(known))

    g = g.sort_values(keys + ["model"], kind="stable", key=rank).reset_index(drop=True)
    g.insert(len(keys) + 1 + len(present), "stages_ms", g[present].sum(axis=1, min_count=1))
    return g.rename(columns={c: c.replace("_p50_ms", "_ms") for c in present + extra})


def _fmt(v, col: str) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "-"
        if col.endswith("_pct"):
            return f"{v:+.1f}%"
        if col == "speedup":
            return f"{v:.2f}x"
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
