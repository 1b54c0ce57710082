"""Comparison tables, derived from ``runs`` rows (data first, presentation after), each
difference with its interval and whether it is beyond the noise.

The rule, used by every table (and by ``results.explain``): each side of a comparison
gets an interval of its p50 at the runs' ``confidence`` (0.95 unless the spec said
otherwise). A side measured in several rows of the same condition (repeats, or runs of
``--all``) gets the interval across them: Student's t interval of the mean of their p50s
(``timing._stats.across_interval``), the noise between runs. A side of one row gets that
row's own interval (``p50_ci_lo_ms``..``p50_ci_hi_ms``: the order-statistic interval of
its median). Two intervals that overlap make the difference *within noise*
(``significant: no``); disjoint intervals make it ``yes``; a side without an interval
(too few samples, trees written before the intervals existed) gives ``—``. The interval
of a difference is the range the two intervals allow (:func:`difference_interval`): it
excludes zero exactly when the intervals are disjoint, so it agrees with the column.

Rows are grouped by every condition that differs for one model (``CONDITION_COLUMNS``:
mode, clocks, MPS, gap, ...; repeats and runs are pooled, never conditions), and the
values of a group pool its samples (``samples`` given: the percentiles of all its
inferences) or, without samples, weight each row by its ``n`` (exact for the mean, an
approximation for percentiles): never a mean of percentiles.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..timing._stats import CONFIDENCE, across_interval

STATS = ("mean_ms", "p50_ms", "p99_ms")
NO_TEST = "—"

#: run conditions: a column of these that takes two values for one model splits the rows
#: (``phase``, ``mode`` and ``n_models`` are handled by each table; ``repeat`` and
#: ``run_id`` never split: rows that differ only there are repeats of one condition)
CONDITION_COLUMNS = ("mode", "clocks_mode", "mps", "power_mode", "gap_s", "sync", "gap_mode", "prewarm",
                     "repeat_isolation", "backend", "precision", "batch", "imgsz_h", "imgsz_w", "input_kind",
                     "experiment", "point", "host", "gpu_name")


def pct(new, base):
    """Percentage change of ``new`` over ``base``."""
    return (np.asarray(new, dtype=float) / np.asarray(base, dtype=float) - 1.0) * 100.0


def _finite(*v) -> bool:
    return all(x is not None and not pd.isna(x) and np.isfinite(float(x)) for x in v)


def significance(a_lo, a_hi, b_lo, b_hi) -> str:
    """Whether two intervals ``[a_lo, a_hi]`` and ``[b_lo, b_hi]`` tell their values
    apart: ``"yes"`` when they do not overlap, ``"no"`` when they do (the difference is
    within noise), ``"—"`` when either bound is missing (NaN / None). Works on any
    intervals of one quantity (per-row bootstrap, across repeats); engineer's rule, not
    a test with a stated level: for two independent 95 % intervals of the same value it
    says ``yes`` far less often than 5 % of the time (measured in tests/results/
    test_significance.py)."""
    if not _finite(a_lo, a_hi, b_lo, b_hi):
        return NO_TEST
    return "yes" if (b_lo > a_hi or a_lo > b_hi) else "no"


def difference_interval(a_lo, a_hi, b_lo, b_hi, relative: bool = False) -> Tuple[float, float]:
    """The interval of ``b - a`` the two intervals allow: ``[b_lo - a_hi, b_hi - a_lo]``;
    with ``relative``, of ``b / a - 1`` in %: ``[b_lo / a_hi - 1, b_hi / a_lo - 1] x 100``
    (``a`` positive). It excludes 0 exactly when :func:`significance` says ``yes``."""
    if not _finite(a_lo, a_hi, b_lo, b_hi):
        return float("nan"), float("nan")
    if relative:
        if a_lo <= 0:
            return float("nan"), float("nan")
        return (b_lo / a_hi - 1.0) * 100.0, (b_hi / a_lo - 1.0) * 100.0
    return b_lo - a_hi, b_hi - a_lo


def confidence_of(runs: pd.DataFrame) -> float:
    """The level the rows were measured at (the spec's ``confidence``), else 0.95."""
    if "confidence" in runs.columns and runs["confidence"].notna().any():
        return float(runs["confidence"].dropna().iloc[0])
    return CONFIDENCE


def condition_interval(rows: pd.DataFrame, stat: str = "p50_ms", confidence: Optional[float] = None) -> Tuple[float, float]:
    """The interval of ``stat`` (``p50_ms``, ``mean_ms``, ``gpu_p50_ms``, ``gpu_mean_ms``) of
    one condition measured in ``rows``: across them (t interval of their values) when two
    or more have one, else the one row's own ``<stat minus _ms>_ci_lo_ms``/``_hi_ms``."""
    c = confidence_of(rows) if confidence is None else confidence
    v = pd.to_numeric(rows[stat], errors="coerce").dropna() if stat in rows.columns else pd.Series(dtype=float)
    if len(v) >= 2:
        return across_interval(v.to_numpy(), c)
    base = stat[:-3]
    lo, hi = f"{base}_ci_lo_ms", f"{base}_ci_hi_ms"
    if len(v) == 1 and lo in rows.columns and hi in rows.columns:
        r = rows.loc[v.index[0]]
        if _finite(r[lo], r[hi]):
            return float(r[lo]), float(r[hi])
    return float("nan"), float("nan")


def conditions_that_vary(ok: pd.DataFrame, exclude: Sequence[str] = ()) -> List[str]:
    """The columns of ``CONDITION_COLUMNS`` (and sweep ``axis:`` columns) that take two
    values (NaN counts as one) for one model of ``ok``."""
    cands = [c for c in list(CONDITION_COLUMNS) + [c for c in ok.columns if str(c).startswith("axis:")]
             if c in ok.columns and c not in exclude]
    if not len(ok):
        return []
    out = []
    for c in cands:
        per = ok[c].astype(str).groupby(ok["model"]).nunique()
        if (per > 1).any():
            out.append(c)
    return out


#: statistics pooled per group: from the samples' column, how
_POOL = {"": "host_ms", "gpu_": "gpu_ms"}
_QUANTILES = {"p50_ms": 0.50, "p90_ms": 0.90, "p95_ms": 0.95, "p99_ms": 0.99}


def _measured_samples(samples: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    from .explain import row_keys

    sel = samples["in_window"].astype(bool) if "in_window" in samples.columns else ~samples["warmup"].astype(bool)
    s = samples.loc[sel]
    return pd.concat([row_keys(s), s[[c for c in cols if c in s.columns]]], axis=1)


def pooled(ok: pd.DataFrame, keys: List[str], samples: Optional[pd.DataFrame] = None,
           medians: Sequence[str] = ()) -> pd.DataFrame:
    """One row per group of ``keys`` of the ok rows ``ok``: ``n`` (sum), ``n_rows``, and
    per prefix ``""`` (host) and ``gpu_`` the mean, std, min, max, p50..p99, fps and cv of
    all the group's inferences (from ``samples`` where they hold every one of them; else
    n-weighted means of the rows' values), the condition interval of p50 and mean
    (``p50_lo_ms``, ``p50_hi_ms``, ``mean_lo_ms``, ``mean_hi_ms``, ``gpu_p50_lo_ms``, ...),
    and the pooled median of each samples column of ``medians`` (``load_ms`` -> ``load_p50_ms``)."""
    from .explain import SAMPLE_KEYS, row_keys

    ok = ok.reset_index(drop=True)
    if not len(ok):
        return pd.DataFrame(columns=keys)
    kf = ok[keys].astype(object).where(ok[keys].notna(), "<none>") if keys else pd.DataFrame(index=ok.index)
    gid = kf.groupby(keys, sort=False, dropna=False).ngroup().to_numpy() if keys else np.zeros(len(ok), int)
    ok = ok.assign(_g=gid)
    n = pd.to_numeric(ok["n"], errors="coerce").fillna(0) if "n" in ok.columns else pd.Series(0.0, index=ok.index)
    out = ok.groupby("_g", sort=True)[keys].first() if keys else pd.DataFrame(index=[0])
    out["n"] = n.groupby(gid).sum().astype(int).reindex(out.index, fill_value=0)
    out["n_rows"] = ok.groupby("_g").size()
    batch = pd.to_numeric(ok["batch"], errors="coerce").groupby(gid).first() if "batch" in ok.columns else None
    cols = [f"{p}{s}" for p in _POOL for s in ("mean_ms", "std_ms", "min_ms", "max_ms", *_QUANTILES, "fps", "cv")]
    # without samples: n-weighted means (min, max: the extremes)
    for c in cols:
        if c not in ok.columns:
            continue
        v = pd.to_numeric(ok[c], errors="coerce")
        w = n.where(v.notna(), 0.0)
        if c.endswith("min_ms"):
            out[c] = v.groupby(gid).min()
        elif c.endswith("max_ms"):
            out[c] = v.groupby(gid).max()
        else:
            tot = w.groupby(gid).sum()
            num = (v.fillna(0) * w).groupby(gid).sum()
            unweighted = v.groupby(gid).mean()  # rows without n: plain mean
            out[c] = (num / tot.where(tot > 0)).fillna(unweighted)
    for m in medians:  # stage columns: n-weighted medians of the rows
        c = f"{m[:-3]}_p50_ms"
        if c in ok.columns:
            v = pd.to_numeric(ok[c], errors="coerce")
            w = n.where(v.notna(), 0.0)
            tot = w.groupby(gid).sum()
            out[c] = ((v.fillna(0) * w).groupby(gid).sum() / tot.where(tot > 0)).fillna(v.groupby(gid).mean())
    m = None
    if samples is not None and len(samples):
        want = list(_POOL.values()) + list(medians)
        s = _measured_samples(samples, want)
        rk = row_keys(ok).assign(_g=gid)
        m = s.merge(rk.drop_duplicates(SAMPLE_KEYS), on=SAMPLE_KEYS, how="inner")
        full = m.groupby("_g").size().reindex(out.index, fill_value=0) == out["n"]
        full &= out["n"] > 0
        m = m[m["_g"].isin(out.index[full])]
        for p, col in _POOL.items():
            if col not in m.columns or not m[col].notna().any():
                continue
            g = m.dropna(subset=[col]).groupby("_g")[col]
            if not len(g.size()):
                continue
            q = g.quantile(list(_QUANTILES.values())).unstack()
            agg = pd.DataFrame({f"{p}mean_ms": g.mean(), f"{p}std_ms": g.std(ddof=1), f"{p}min_ms": g.min(),
                                f"{p}max_ms": g.max(),
                                **{f"{p}{name}": q[v] for name, v in _QUANTILES.items()}})
            agg[f"{p}cv"] = agg[f"{p}std_ms"] / agg[f"{p}mean_ms"]
            if batch is not None:
                agg[f"{p}fps"] = batch.reindex(agg.index).fillna(1) * 1000.0 / agg[f"{p}mean_ms"]
            for c in agg.columns:
                if c not in out.columns:
                    out[c] = np.nan
                out.loc[agg.index, c] = agg[c]
        for med in medians:  # pooled medians of the stages
            if med in m.columns and m[med].notna().any():
                c = f"{med[:-3]}_p50_ms"
                if c not in out.columns:
                    out[c] = np.nan
                v = m.dropna(subset=[med]).groupby("_g")[med].median()
                out.loc[v.index, c] = v
    conf = confidence_of(ok)
    for p in _POOL:
        for stat in ("p50", "mean"):
            if f"{p}{stat}_ms" not in ok.columns:
                continue
            iv = {g: condition_interval(rows, f"{p}{stat}_ms", conf) for g, rows in ok.groupby("_g")}
            out[f"{p}{stat}_lo_ms"] = pd.Series({g: v[0] for g, v in iv.items()})
            out[f"{p}{stat}_hi_ms"] = pd.Series({g: v[1] for g, v in iv.items()})
    if m is not None and len(m):  # one row without stored intervals (older trees): from its samples
        from ..timing._stats import mean_interval, median_interval

        for p, col in _POOL.items():
            if col not in m.columns:
                continue
            for gk, vals in m.dropna(subset=[col]).groupby("_g")[col]:
                if out.at[gk, "n_rows"] != 1:
                    continue
                for stat, f in (("p50", median_interval), ("mean", mean_interval)):
                    lo, hi = f"{p}{stat}_lo_ms", f"{p}{stat}_hi_ms"
                    if lo not in out.columns or pd.isna(out.at[gk, lo]):
                        out.loc[gk, [lo, hi]] = f(vals.to_numpy(), conf)
    return out.reset_index(drop=True)


def _delta(base: pd.Series, row: pd.Series, stat: str = "p50") -> dict:
    """Δ % of ``stat`` of ``row`` over ``base``, its interval, and its significance."""
    a, b = base.get(f"{stat}_ms", np.nan), row.get(f"{stat}_ms", np.nan)
    a_lo, a_hi = base.get(f"{stat}_lo_ms", np.nan), base.get(f"{stat}_hi_ms", np.nan)
    b_lo, b_hi = row.get(f"{stat}_lo_ms", np.nan), row.get(f"{stat}_hi_ms", np.nan)
    lo, hi = difference_interval(a_lo, a_hi, b_lo, b_hi, relative=True)
    val = float(pct(b, a)) if _finite(a, b) and a > 0 else np.nan
    return {"pct": val, "lo_pct": lo, "hi_pct": hi, "significant": significance(a_lo, a_hi, b_lo, b_hi)}


def _ordered_models(runs: pd.DataFrame) -> list:
    return list(dict.fromkeys(runs["model"]))


def _key_str(df: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    key = pd.Series("", index=df.index)
    for c in cols:
        key = key + "\x1f" + df[c].astype(str)
    return key


def alone_vs_together(runs: pd.DataFrame, stats: Sequence[str] = STATS,
                      samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per model and condition that differs for it (mode, clocks, MPS, gap, ...:
    ``CONDITION_COLUMNS``): alone and together values of each statistic over the
    condition's successful rows (pooled: module doc), the % increase, and for p50 the
    interval of that increase and whether it is ``significant`` (yes / no / —), as in
    the users' seed 002 tables."""
    ok = runs[runs["status"] == "ok"]
    conds = conditions_that_vary(ok)
    g = pooled(ok, ["model"] + conds + ["phase"], samples)
    bad = runs[runs["status"] != "ok"]
    bad_key = _key_str(bad, ["model"] + [c for c in conds if c in bad.columns])
    rows = []
    groups = {k: grp for k, grp in g.groupby(["model"] + conds, sort=False, dropna=False)} if len(g) else {}
    by_model: Dict[str, list] = {}
    for k, grp in groups.items():
        by_model.setdefault(k if isinstance(k, str) else k[0], []).append((k, grp))
    for model in _ordered_models(runs):
        for k, grp in by_model.get(model, [((model,), g.iloc[0:0])]):
            k = (k,) if isinstance(k, str) else k
            row = {"model": model, **dict(zip(conds, k[1:]))}
            a = grp[grp["phase"] == "alone"]
            t = grp[grp["phase"] == "together"]
            a = a.iloc[0] if len(a) else pd.Series(dtype=object)
            t = t.iloc[0] if len(t) else pd.Series(dtype=object)
            for s in stats:
                av, tv = a.get(s, np.nan), t.get(s, np.nan)
                name = s.replace("_ms", "")
                row[f"alone_{s}"] = av
                row[f"together_{s}"] = tv
                row[f"increase_{name}_pct"] = float(pct(tv, av)) if _finite(av, tv) else np.nan
                if s == "p50_ms":  # the median's difference is the one tested
                    d = _delta(a, t, name)
                    row[f"increase_{name}_lo_pct"], row[f"increase_{name}_hi_pct"] = d["lo_pct"], d["hi_pct"]
                    row["significant"] = d["significant"]
            row["alone_n"] = int(a.get("n", 0) or 0)
            row["together_n"] = int(t.get("n", 0) or 0)
            here = bad[bad_key == _key_str(pd.DataFrame([row]), ["model"] + [c for c in conds if c in bad.columns]).iloc[0]]
            row["status"] = "ok" if here.empty else "; ".join(f"{p}: {s}" for p, s in zip(here["phase"], here["status"]))
            rows.append(row)
    return pd.DataFrame(rows)


VERSUS = ("n", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms", "fps", "gpu_p50_ms")


def versus(runs: pd.DataFrame, baseline: str, stats: Sequence[str] = VERSUS,
           samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per model (and condition that differs for one model): seed 003's table,
    mean/std/min/max/P95/P99/FPS (latency-bound) pooled over repeats, the p50's interval
    (``p50_lo_ms``..``p50_hi_ms``), the speedup over ``baseline`` (its mean over theirs),
    and the p50's % change over the baseline's with its interval and ``significant``."""
    ok = runs[runs["status"] == "ok"]
    if baseline not in set(ok["model"]):
        from ..errors import UserError

        raise UserError("--baseline", f"{baseline!r} has no successful run here (have {', '.join(dict.fromkeys(runs['model']))})")
    split_phase = "phase" in ok.columns and bool((ok.groupby("model")["phase"].nunique() > 1).any())
    keys = conditions_that_vary(ok) + (["phase"] if split_phase else [])
    g = pooled(ok, keys + ["model"], samples)
    stats = [c for c in stats if c in g.columns and g[c].notna().any()]
    cols = keys + ["model"] + [c for c in stats if c == "n"]
    for c in stats:
        if c == "n":
            continue
        cols.append(c)
        if c == "p50_ms" and "p50_lo_ms" in g.columns:
            cols += ["p50_lo_ms", "p50_hi_ms"]
    out = g[cols].copy()
    key = _key_str(g, keys)
    base_rows = {k: r for k, (_, r) in zip(key[g["model"] == baseline], g[g["model"] == baseline].iterrows())}
    speed, deltas = [], []
    for k, (_, r) in zip(key, g.iterrows()):
        b = base_rows.get(k)
        speed.append(b["mean_ms"] / r["mean_ms"] if b is not None and _finite(b["mean_ms"], r["mean_ms"]) else np.nan)
        if b is None or r["model"] == baseline:
            deltas.append({"pct": np.nan, "lo_pct": np.nan, "hi_pct": np.nan, "significant": NO_TEST})
        else:
            deltas.append(_delta(b, r, "p50"))
    out["speedup"] = speed
    out["vs_baseline_p50_pct"] = [d["pct"] for d in deltas]
    out["vs_baseline_p50_lo_pct"] = [d["lo_pct"] for d in deltas]
    out["vs_baseline_p50_hi_pct"] = [d["hi_pct"] for d in deltas]
    out["significant"] = [d["significant"] for d in deltas]
    return out


#: seed 002's columns, in its order: (mode, phase)
BY_MODE = (("inference", "alone"), ("inference", "together"), ("pipeline", "alone"), ("pipeline", "together"),
           ("validation", "alone"), ("without_val", "alone"), ("validation", "together"),
           ("without_val", "together"))


def by_mode(runs: pd.DataFrame, stat: str = "mean_ms", base=("inference", "alone"),
            samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Seed 002's tables in one: per model (and condition that differs for it, other than
    the mode), ms per image of each (mode, phase) measured (pooled over repeats), and the
    % increase of each over ``base`` (InferenceTime alone by default) with its interval
    and ``<mode>_<phase>_significant`` (yes / no / —)."""
    ok = runs[runs["status"] == "ok"].copy()
    if "mode" not in ok.columns:
        ok["mode"] = "inference"
    if "batch" not in ok.columns:
        ok["batch"] = 1
    conds = conditions_that_vary(ok, exclude=("mode",))
    g = pooled(ok, ["model"] + conds + ["mode", "phase"], samples)
    per = g["batch"].fillna(1).to_numpy(float) if "batch" in g.columns else np.ones(len(g))
    if "batch" not in g.columns:
        b = ok.groupby("model")["batch"].first()
        per = g["model"].map(b).fillna(1).to_numpy(float)
    s = stat[:-3]
    for c in (stat, f"{s}_lo_ms", f"{s}_hi_ms"):
        g[c] = (pd.to_numeric(g[c], errors="coerce") / per) if c in g.columns else np.nan
    present = [k for k in BY_MODE if ((g["mode"] == k[0]) & (g["phase"] == k[1])).any()]
    rows = []
    groups = list(g.groupby(["model"] + conds, sort=False, dropna=False)) if len(g) else []
    by_model: Dict[str, list] = {}
    for k, grp in groups:
        by_model.setdefault(k if isinstance(k, str) else k[0], []).append((k, grp))
    for model in _ordered_models(runs):
        for k, grp in by_model.get(model, [((model,), g.iloc[0:0])]):
            k = (k,) if isinstance(k, str) else k
            row = {"model": model, **dict(zip(conds, k[1:]))}
            cell = {(r["mode"], r["phase"]): r for _, r in grp.iterrows()}
            for mode, phase in present:
                row[f"{mode}_{phase}_ms"] = cell[(mode, phase)][stat] if (mode, phase) in cell else np.nan
            b = cell.get(tuple(base), pd.Series(dtype=object))
            for mode, phase in present:
                if (mode, phase) == tuple(base):
                    continue
                d = _delta(b, cell.get((mode, phase), pd.Series(dtype=object)), s)
                name = f"{mode}_{phase}_vs_{base[0]}"
                row[f"{name}_pct"], row[f"{name}_lo_pct"], row[f"{name}_hi_pct"] = d["pct"], d["lo_pct"], d["hi_pct"]
                row[f"{mode}_{phase}_significant"] = d["significant"]
            for m in ("top1", "top5", "map50", "map50_95", "box_map50_95", "mask_map50_95", "pose_map50_95"):
                if m in ok.columns and ok.loc[ok["model"] == model, m].notna().any():
                    row[m] = float(ok.loc[ok["model"] == model, m].dropna().iloc[-1])
            rows.append(row)
    return pd.DataFrame(rows)


#: the pipeline's stages, in the order an image goes through them (runs columns ``<stage>_p50_ms``)
STAGES = ("load", "pre", "infer", "post", "metrics")


def stages(runs: pd.DataFrame, samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Where the time of each pipeline / validation row goes: one row per model, mode and
    phase (and MPS or clocks where they vary), the p50 of every stage, their sum, the
    measured p50 per image and the GPU time, in ms (pooled over repeats). Answers seed
    002's "why is X slower without the metric work": the stage that moved is named by its
    column. ``vs_first_p50_pct`` is the measured p50's change over the model's first row
    (modes in their usual order), with its interval and ``significant``."""
    from ..errors import UserError

    cols = [f"{s}_p50_ms" for s in STAGES]
    ok = runs[(runs["status"] == "ok")] if "status" in runs.columns else runs
    present = [c for c in cols if c in ok.columns and ok[c].notna().any()]
    if not present:
        raise UserError("runs", "no stage times: --by stage needs pipeline or validation runs (modes pipeline, "
                        "validation, without_val)")
    ok = ok[ok[present].notna().any(axis=1)]
    if "mode" not in ok.columns:
        ok = ok.assign(mode="inference")
    keys = ["mode", "phase"] + conditions_that_vary(ok, exclude=("mode",))
    g = pooled(ok, ["model"] + keys, samples, medians=[f"{s}_ms" for s in STAGES])
    extra = [c for c in ("p50_ms", "gpu_p50_ms") if c in ok.columns]
    modes = list(dict.fromkeys(m for m, _ in BY_MODE))
    order = {"mode": modes, "phase": ["alone", "together"], "model": list(dict.fromkeys(runs["model"]))}

    def rank(col: pd.Series) -> pd.Series:  # modes, phases and models in their usual order
        if col.name not in order:
            return col.astype(str)
        known = order[col.name]
        return col.map(lambda v: known.index(v) if v in known else len(known))

    g = g.sort_values(keys + ["model"], kind="stable", key=rank).reset_index(drop=True)
    out = g[["model"] + keys + present + extra].copy()
    out.insert(len(keys) + 1 + len(present), "stages_ms", out[present].sum(axis=1, min_count=1))
    first = {}
    deltas = []
    for _, r in g.iterrows():
        b = first.setdefault(r["model"], r)
        deltas.append({"pct": np.nan, "lo_pct": np.nan, "hi_pct": np.nan, "significant": NO_TEST}
                      if b is r else _delta(b, r, "p50"))
    out["vs_first_p50_pct"] = [d["pct"] for d in deltas]
    out["vs_first_p50_lo_pct"] = [d["lo_pct"] for d in deltas]
    out["vs_first_p50_hi_pct"] = [d["hi_pct"] for d in deltas]
    out["significant"] = [d["significant"] for d in deltas]
    return out.rename(columns={c: c.replace("_p50_ms", "_ms") for c in present + extra})


def _fmt(v, col: str) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "-"
        if col.endswith("_pct"):
            return f"{v:+.1f}%"
        if col == "speedup":
            return f"{v:.2f}x"
        if col == "throughput_ips" or col.endswith("fps"):
            return f"{v:.0f}"
        return f"{v:.2f}ms" if col.endswith("_ms") else f"{v:.3g}"
    return str(v)


def _ms(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}"


def shown(df: pd.DataFrame, cell=None) -> pd.DataFrame:
    """``df`` as strings for a table: every ``X_lo_pct``/``X_hi_pct`` pair joins the cell
    of ``X_pct`` (``+12.3% [+8.1, +16.0]``), every ``X_lo_ms``/``X_hi_ms`` pair becomes one
    ``X CI`` cell (``[0.95, 1.05]ms``). ``cell(value, column)`` formats a value."""
    cell = cell or _fmt
    out = {}
    cols = list(df.columns)
    for c in cols:
        if c.endswith(("_lo_pct", "_hi_pct")) and c[:-7] + "_pct" in cols:
            continue
        if c.endswith("_hi_ms") and c[:-6] + "_lo_ms" in cols:
            continue
        if c.endswith("_lo_ms") and c[:-6] + "_hi_ms" in cols:
            hi = c[:-6] + "_hi_ms"
            name = c[:-9] if c.endswith("_ci_lo_ms") else c[:-6]  # p50_ci_lo_ms -> p50 CI
            out[name + "_CI"] = [f"[{_ms(lo)}, {_ms(h)}]ms" if _finite(lo, h) else "-" for lo, h in zip(df[c], df[hi])]
            continue
        vals = [cell(v, c) for v in df[c]]
        lo, hi = c[:-4] + "_lo_pct", c[:-4] + "_hi_pct"
        if c.endswith("_pct") and lo in cols and hi in cols:
            vals = [v + (f" [{a:+.1f}, {b:+.1f}]" if _finite(a, b) else "") for v, a, b in zip(vals, df[lo], df[hi])]
        out[c] = vals
    return pd.DataFrame(out, index=df.index)


def head(col: str) -> str:
    """``alone_p50_ms`` -> ``alone_p50``, ``increase_p50_pct`` -> ``Δ p50 %``, ``p50_CI`` -> ``p50 CI``."""
    return col.replace("_ms", "").replace("increase_", "Δ ").replace("_pct", " %").replace("_CI", " CI")


def to_markdown(df: pd.DataFrame, headers: List[str] = None) -> str:
    s = shown(df)
    heads = headers or [head(c) for c in s.columns]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in s.columns) + "|"]
    for _, r in s.iterrows():
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def render(df: pd.DataFrame, fmt: str = "md") -> str:
    if fmt == "csv":
        return df.to_csv(index=False, float_format="%.4f")
    return to_markdown(df)
