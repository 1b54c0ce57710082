"""Comparison tables, derived from ``runs`` rows (data first, presentation after): each
condition's values and interval, and each difference tested on runs, not on inferences.

**Conditions.** Rows of one model are repeats of one condition only when they differ in
nothing but the repeat (and the run): every column of ``CONDITION_COLUMNS`` that takes
two values within a model, phase and mode splits the rows and is shown as a column, named
by its field; so does ``settings`` (the resolved spec, less its name, output and
description: a field without a column of its own, such as ``timing.start_lead_s``, is
named there). Software versions, the host and the GPU are conditions too.

**A condition's value.** One row: its own statistics and the intervals of its median and
mean (``timing._stats``: under the dependence between its inferences). Several rows
(repeats, or runs with ``--all``): the point of p50 and mean is the geometric mean of the
values of the processes that measured them (units of evidence, as the verdict counts
them: the repeats of one process combined first), with its Student's t interval on the
logarithms across those processes (``p50_lo_ms`` .. ``p50_hi_ms``): one quantity for the
point and its interval, the p50 a run of this condition typically has. Repeats that all
shared one process (``repeat_isolation: actor``) give that process's own: the interval
across its repeats, which knows nothing of the noise between processes (``k`` is 1).
Tail percentiles are never averaged nor pooled into a mixture: a pooled row's
``p90_ms`` .. ``p99_ms`` are NaN and its ``p99_ms_repeats`` lists each row's. ``fps`` is
the latency-bound rate of all the inferences (batch x 1000 over their mean latency: their
summed latencies, not a mean of the rows' fps), ``throughput_ips`` the achieved rate over
the pooled span (all inferences over the sum of the rows' measured spans); min and max are
the extremes, std and cv those of all inferences.

**A difference** between two conditions is tested by ``results.verdict`` on their runs
(units of evidence: a process each), Welch's or the paired t on log p50: the Δ % is the
ratio of the two conditions' geometric means, its interval (``*_lo_pct`` .. ``*_hi_pct``)
the ratio's, ``verdict`` slower / faster / not shown / — (with ``why``), ``p_value``, and
``detectable_pct`` the smallest difference the runs could have shown.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from ..spec import PRECISIONS
from ..timing._stats import across_interval, geometric_interval, geometric_mean, summarize
from ._keys import SAMPLE_KEYS, row_keys
from .schema import STAGES
from .verdict import NO_TEST, UNIT_COLUMNS, Verdict, compare_rows, level, unit_keys, unit_values

STATS = ("mean_ms", "p50_ms", "p99_ms")

#: run conditions: a column of these that takes two values for one model (within a phase
#: and mode) splits the rows. ``repeat`` and ``run_id`` never split: rows that differ only
#: there are repeats of one condition.
CONDITION_COLUMNS = (
    # what was measured and how
    "mode", "variant", "backend", "precision", "batch", "imgsz_h", "imgsz_w", "input_kind", "n_inputs", "onnx_sha256",
    "engine_path", "typing", "converted_sha256", "transfers", "cuda_graph", "dla_core", "options", "threads", "opt_level",
    "providers", "device",
    # the loop
    "sync", "gap_s", "gap_mode", "prewarm", "warmup", "warmup_s", "iterations", "duration_s", "keep_warm", "fill",
    "n_models", "repeat_isolation", "arrivals", "rate_hz", "jitter_ms", "backlog", "deadline_ms",
    # the machine's state asked for
    "clocks_mode", "mps", "power_mode",
    # where, and with what software
    "experiment", "point", "host", "platform", "board", "gpu_name", "gpu_driver", "cuda_version", "jetpack", "l4t", "cpu_model",
    "python_version", "trb_version", "ray_version", "onnxruntime_version", "numpy_version", "tensorrt_version",
    "torch_version", "ultralytics_version",
    # the rest of the resolved spec
    "settings",
)
#: split within these (a column varies when it takes two values inside one of them)
_WITHIN = ("model", "phase", "mode")

#: statistics of a pooled group, per prefix ``""`` (host) and ``gpu_`` (CUDA events)
_PREFIXES = ("", "gpu_")
_TAILS = ("p90_ms", "p95_ms", "p99_ms")


def pct(new, base):
    """Percentage change of ``new`` over ``base``."""
    return (np.asarray(new, dtype=float) / np.asarray(base, dtype=float) - 1.0) * 100.0


def _finite(*v) -> bool:
    return all(x is not None and not pd.isna(x) and np.isfinite(float(x)) for x in v)


def confidence_of(runs: pd.DataFrame) -> float:
    """The level the rows were measured at (the spec's ``confidence``), else 0.95."""
    return level(runs)


def _num(rows: pd.DataFrame, col: str) -> pd.Series:
    if col not in rows.columns:
        return pd.Series(np.nan, index=rows.index, dtype=float)
    return pd.to_numeric(rows[col], errors="coerce")


def condition_interval(rows: pd.DataFrame, stat: str = "p50_ms", confidence: Optional[float] = None):
    """The point and interval of ``stat`` (``p50_ms``, ``mean_ms``, ``gpu_p50_ms``, ...) of
    one condition measured in ``rows`` (module doc): ``(point, lo, hi)``. Two or more
    processes (units of evidence, ``verdict.unit_keys``): the geometric mean of their
    values and its interval across them. One process: its own, a single row's interval,
    or, for repeats that shared the process, the interval across those repeats."""
    c = confidence_of(rows) if confidence is None else confidence
    have = _num(rows, stat).notna().to_numpy()  # (a mask: the labels of a concatenated frame may repeat)
    v = _num(rows, stat)[have]
    units = unit_values(rows[have], stat) if len(v) >= 2 else v
    if len(units) >= 2:
        return (geometric_mean(units.to_numpy()), *geometric_interval(units.to_numpy(), c))
    if len(v) >= 2:
        return (geometric_mean(v.to_numpy()), *geometric_interval(v.to_numpy(), c))
    base = stat[:-3]
    if len(v) == 1:
        r = rows[have].iloc[0]
        lo, hi = r.get(f"{base}_ci_lo_ms", np.nan), r.get(f"{base}_ci_hi_ms", np.nan)
        return (float(v.iloc[0]), float(lo) if _finite(lo) else np.nan, float(hi) if _finite(hi) else np.nan)
    return (np.nan, np.nan, np.nan)


def pooled_stage(rows: pd.DataFrame, col: str) -> float:
    """A stage's median over pooled rows, as their p50 is pooled (``condition_interval``:
    the geometric mean over the processes) where every value is positive, else (a stage
    that took no measurable time) the mean of the processes' values."""
    have = _num(rows, col).notna().to_numpy()
    v = _num(rows, col)[have]
    if not len(v):
        return np.nan
    if (v > 0).all():
        return condition_interval(rows[have], col)[0]
    return float(v.groupby(unit_keys(rows[have]).map(str).to_numpy()).mean().mean())


def settings_labels(rows: pd.DataFrame) -> pd.Series:
    """Per row, the spec fields (flattened, dotted) in which its ``settings`` differ from
    those of the other rows, ``field=value`` joined by ``, ``; empty where all agree."""
    if "settings" not in rows.columns or rows["settings"].nunique(dropna=True) < 2:
        return pd.Series("", index=rows.index, dtype=object)
    flat = {}
    for s in rows["settings"].dropna().unique():
        try:
            flat[s] = _flatten(json.loads(s))
        except (TypeError, ValueError):
            flat[s] = {"settings": s[:12]}
    keys = sorted({k for f in flat.values() for k in f})
    differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat.values()}) > 1]
    label = {s: ", ".join(f"{k}={json.dumps(f.get(k))}" for k in differ) for s, f in flat.items()}
    return rows["settings"].map(label).fillna("")


def _flatten(d, prefix: str = "") -> dict:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = d
    return out


def conditions_that_vary(ok: pd.DataFrame, exclude: Sequence[str] = ()) -> List[str]:
    """The columns of ``CONDITION_COLUMNS`` (and sweep ``axis:`` columns) that take two
    values (NaN counts as one) within one model, phase and mode of ``ok`` (``mode`` itself:
    within one model and phase)."""
    cands = [c for c in list(CONDITION_COLUMNS) + [c for c in ok.columns if str(c).startswith("axis:")]
             if c in ok.columns and c not in exclude]
    if not len(ok):
        return []
    out = []
    for c in cands:
        within = [w for w in _WITHIN if w in ok.columns and w != c]
        key = _joined(ok, within)
        if (ok[c].map(str).groupby(key).nunique() > 1).any():
            out.append(c)
    return out


def _joined(df: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    """Per row, the values of ``cols`` as one string (NaN and None as themselves)."""
    return pd.Series(["\x1f".join(map(str, t)) for t in df[list(cols)].itertuples(index=False, name=None)],
                     index=df.index, dtype=object)


def _with_labels(ok: pd.DataFrame, conds: List[str]) -> pd.DataFrame:
    """``settings`` shown as the fields that differ, not as a JSON blob."""
    if "settings" in conds:
        ok = ok.assign(settings=settings_labels(ok))
    return ok


def pooled(ok: pd.DataFrame, keys: List[str], samples: Optional[pd.DataFrame] = None,
           medians: Sequence[str] = ()) -> pd.DataFrame:
    """One row per group of ``keys`` of the ok rows ``ok`` (module doc): ``n`` (sum),
    ``n_rows``, ``k`` (processes: units of evidence), per prefix ``""`` (host) and
    ``gpu_`` the point and interval of p50 and mean (``p50_ms``, ``p50_lo_ms``,
    ``p50_hi_ms``, ``mean_ms``, ...), std, min, max, the tail percentiles of a single row
    (``p99_ms_repeats`` and the like listing each row's), fps, cv, ``throughput_ips``, and
    the stage medians of ``medians`` (``load_ms`` -> ``load_p50_ms``: a single row's, else
    the geometric mean over the processes, as p50's), and where a row has an energy
    (``results.energy``) ``mj_per_inf`` (the rows' energy over their inferences:
    ``pooled_energy``)
    and ``inf_per_j``. ``_rows`` holds each group's row labels in ``ok``. ``samples``,
    where given, fills the statistics of rows written without them (``with_row_stats``)."""
    if samples is not None and len(samples):
        ok = with_row_stats(ok, samples)
    if not len(ok):
        return pd.DataFrame(columns=list(keys) + ["n", "n_rows", "k", "_rows"])
    kf = ok[keys].astype(object).where(ok[keys].notna(), "<none>") if keys else pd.DataFrame(index=ok.index)
    groups = kf.groupby(keys, sort=False, dropna=False).indices if keys else {(): np.arange(len(ok))}
    conf = confidence_of(ok)
    units = unit_keys(ok)
    out = []
    for gkey, pos in groups.items():
        rows = ok.iloc[pos]
        one = len(rows) == 1
        rec = {k: rows[k].iloc[0] for k in keys}
        n = _num(rows, "n").fillna(0)
        rec.update(n=int(n.sum()), n_rows=len(rows), k=int(units.iloc[pos].nunique()), _rows=list(rows.index))
        batch = float(_num(rows, "batch").fillna(1).iloc[0]) if "batch" in rows.columns else 1.0
        for p in _PREFIXES:
            if f"{p}p50_ms" not in rows.columns and f"{p}mean_ms" not in rows.columns:
                continue
            for stat in ("p50", "mean"):
                point, lo, hi = condition_interval(rows, f"{p}{stat}_ms", conf)
                rec[f"{p}{stat}_ms"], rec[f"{p}{stat}_lo_ms"], rec[f"{p}{stat}_hi_ms"] = point, lo, hi
            pn = _num(rows, f"{p}n").fillna(n) if p else n
            means, stds = _num(rows, f"{p}mean_ms"), _num(rows, f"{p}std_ms")
            have = means.notna() & (pn > 0)
            if one:
                rec[f"{p}std_ms"] = float(stds.iloc[0])
            elif have.any():  # the standard deviation of all the inferences of the rows
                w, m, s = pn[have], means[have], stds[have].fillna(0.0)
                tot = float(w.sum())
                grand = float((w * m).sum()) / tot
                ss = float(((w - 1).clip(lower=0) * s * s + w * (m - grand) ** 2).sum())
                rec[f"{p}std_ms"] = float(np.sqrt(ss / (tot - 1))) if tot > 1 else np.nan
                rec[f"_{p}grand"] = grand
            rec[f"{p}min_ms"] = float(_num(rows, f"{p}min_ms").min())
            rec[f"{p}max_ms"] = float(_num(rows, f"{p}max_ms").max())
            for t in _TAILS:
                vals = _num(rows, f"{p}{t}")
                rec[f"{p}{t}"] = float(vals.iloc[0]) if one else np.nan
                if not one:
                    rec[f"{p}{t}_repeats"] = [float(v) for v in vals]
            # latency-bound rate over all the inferences (their summed latencies), never a mean of fps
            grand = rec.pop(f"_{p}grand", rec.get(f"{p}mean_ms"))
            rec[f"{p}fps"] = batch * 1000.0 / grand if _finite(grand) and grand > 0 else np.nan
            std = rec.get(f"{p}std_ms", np.nan)
            rec[f"{p}cv"] = std / grand if _finite(std, grand) and grand > 0 else np.nan
        if "p50_from_arrival_ms" in rows.columns:
            _open_loop(rec, rows, conf, one)
        tput = _num(rows, "throughput_ips")
        if tput.notna().any():
            have = tput.notna() & (tput > 0) & (n > 0)
            span = (n[have] * batch / tput[have]).sum()
            rec["throughput_ips"] = float(n[have].sum() * batch / span) if span > 0 else np.nan
        mj = _num(rows, "energy_mj_per_inf")  # energy per inference (results.energy): summed energy / inferences
        if mj.notna().any():
            rec["mj_per_inf"] = pooled_energy(rows, "energy_mj_per_inf")
            rec["inf_per_j"] = 1e3 / rec["mj_per_inf"] if rec["mj_per_inf"] > 0 else np.nan
        for med in medians:
            c = f"{med[:-3]}_p50_ms"
            if c in rows.columns:
                rec[c] = pooled_stage(rows, c)
        out.append(rec)
    return pd.DataFrame(out)


#: an open loop's statistics a pooled condition shows (``timing._queueing``)
OPEN_LOOP = ("p50_from_arrival_ms", "p99_from_arrival_ms", "deadline_miss", "dropped")


def _open_loop(rec: dict, rows: pd.DataFrame, conf: float, one: bool) -> None:
    """A condition's from-arrival p50 (``condition_interval``), p99 (one row's; several:
    NaN, each row's listed, never averaged), deadline miss rate (one row's with its
    interval; several: the mean of the processes' rates with its t interval, each process
    counted once: runs are the evidence; one process: across its repeats) and the frames
    dropped (summed)."""
    v = _num(rows, "p50_from_arrival_ms").dropna()
    if len(v):
        (rec["p50_from_arrival_ms"], rec["p50_from_arrival_lo_ms"],
         rec["p50_from_arrival_hi_ms"]) = condition_interval(rows, "p50_from_arrival_ms", conf)
    p99 = _num(rows, "p99_from_arrival_ms")
    rec["p99_from_arrival_ms"] = float(p99.iloc[0]) if one else np.nan
    if not one:
        rec["p99_from_arrival_ms_repeats"] = [float(x) for x in p99]
    miss = _num(rows, "deadline_miss")
    have = miss.notna()
    if one and have.all():
        r = rows.iloc[0]
        rec["deadline_miss"] = float(miss.iloc[0])
        rec["deadline_miss_lo"] = float(r.get("deadline_miss_lo", np.nan))
        rec["deadline_miss_hi"] = float(r.get("deadline_miss_hi", np.nan))
    elif have.any():  # one rate per process (its repeats' mean), the interval across processes
        per = miss[have].groupby(unit_keys(rows[have]).map(str).to_numpy()).mean()
        per = per if len(per) >= 2 else miss[have]
        rec["deadline_miss"] = float(per.mean())
        lo, hi = across_interval(per.to_numpy(), conf)
        rec["deadline_miss_lo"], rec["deadline_miss_hi"] = (max(0.0, lo), min(1.0, hi)) if lo == lo else (lo, hi)
    d = _num(rows, "dropped")
    rec["dropped"] = float(d.sum()) if d.notna().any() else np.nan


def stats_todo(runs: pd.DataFrame) -> pd.Series:
    """The rows ``with_row_stats`` computes again: written without ``n_eff`` (before the
    intervals respected the dependence between inferences), with inferences measured."""
    todo = runs["n_eff"].isna() if "n_eff" in runs.columns else pd.Series(True, index=runs.index)
    if "n" in runs.columns:
        todo &= pd.to_numeric(runs["n"], errors="coerce").fillna(0) > 0
    return todo


def in_window(samples: pd.DataFrame) -> pd.Series:
    """Which of ``samples`` a row's statistics are computed over: ``in_window`` (the
    warm-up left out where a tree has no such column)."""
    return samples["in_window"].astype(bool) if "in_window" in samples.columns else ~samples["warmup"].astype(bool)


def row_stats(r: pd.Series, sub: pd.DataFrame) -> Optional[Dict[str, float]]:
    """The statistics (host, and ``gpu_`` where timed) of the runs row ``r`` from its
    in-window samples ``sub``, in time order; None where they are not all of its samples
    (their count is not its ``n``: a row whose samples were not all kept)."""
    if _finite(r.get("n")) and len(sub) != int(r["n"]):
        return None
    conf = float(r["confidence"]) if _finite(r.get("confidence")) else 0.95
    batch = int(r["batch"]) if _finite(r.get("batch")) else 1
    out: Dict[str, float] = {}
    for p, col in (("", "host_ms"), ("gpu_", "gpu_ms")):
        x = pd.to_numeric(sub[col], errors="coerce").dropna().to_numpy() if col in sub.columns else []
        if len(x):
            out.update(summarize(x, batch, conf).as_dict(p))
    return out


def apply_row_stats(runs: pd.DataFrame, todo: pd.Series, found: Dict[object, Dict[str, float]]) -> pd.DataFrame:
    """``runs`` (a copy) with the statistics ``found`` (per row label, ``row_stats``) of the
    rows ``todo``; those of ``todo`` not found keep their points and lose their intervals."""
    runs = runs.copy()
    for col in ("n_eff", "n_eff_mean", "acf1", "block_ratio", "gpu_n_eff", "gpu_n_eff_mean", "gpu_acf1",
                "gpu_block_ratio"):
        if col not in runs.columns:
            runs[col] = np.nan
    for label in runs.index[todo]:
        for k, v in (found.get(label) or {}).items():
            if k not in runs.columns:
                runs[k] = np.nan
            runs.at[label, k] = v
    lost = [lb for lb in runs.index[todo] if lb not in found]
    for p in _PREFIXES:
        for c in ("p50_ci_lo_ms", "p50_ci_hi_ms", "mean_ci_lo_ms", "mean_ci_hi_ms"):
            if f"{p}{c}" in runs.columns:
                runs.loc[lost, f"{p}{c}"] = np.nan
    return runs


def with_row_stats(runs: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the statistics of rows written without the dependence-aware intervals
    (no ``n_eff``) computed again from their in-window samples; rows whose samples are not
    there keep their points and lose their intervals (an interval that assumed independent
    inferences is not given). A copy; rows already complete are left as they are.
    (``results.load`` does this one row at a time, reading only that row's samples.)"""
    if not len(runs):
        return runs
    todo = stats_todo(runs)
    if not todo.any():
        return runs
    found: Dict[object, Dict[str, float]] = {}
    if samples is not None and len(samples):
        s = samples.loc[in_window(samples)]
        idx = s.groupby([row_keys(s)[k] for k in SAMPLE_KEYS], sort=False).indices
        keys = list(row_keys(runs.loc[todo]).itertuples(index=False, name=None))
        for label, key in zip(runs.index[todo], keys):
            pos = idx.get(key)
            if pos is None:
                continue  # no samples of this row
            st = row_stats(runs.loc[label], s.iloc[pos])
            if st is not None:
                found[label] = st
    return apply_row_stats(runs, todo, found)


def _test(a_rows: pd.DataFrame, b_rows: pd.DataFrame, stat: str = "p50_ms") -> Verdict:
    return compare_rows(a_rows, b_rows, stat)


def _delta_cols(v: Optional[Verdict], name: str) -> dict:
    """The columns of one tested difference: ``<name>_pct`` and its interval, ``p_value``,
    ``verdict``, ``detectable_pct`` and ``why``."""
    if v is None:
        return {f"{name}_pct": np.nan, f"{name}_lo_pct": np.nan, f"{name}_hi_pct": np.nan, "p_value": np.nan,
                "verdict": NO_TEST, "detectable_pct": np.nan, "why": "not measured on both sides"}
    return {f"{name}_pct": (v.ratio - 1) * 100 if _finite(v.ratio) else np.nan,
            f"{name}_lo_pct": (v.lo - 1) * 100 if _finite(v.lo) else np.nan,
            f"{name}_hi_pct": (v.hi - 1) * 100 if _finite(v.hi) else np.nan,
            "p_value": v.p_value, "verdict": v.verdict,
            "detectable_pct": (v.detectable - 1) * 100 if _finite(v.detectable) else np.nan, "why": v.why}


def _vs_baseline(ok: pd.DataFrame, g: pd.DataFrame, b, i, missing: str) -> dict:
    """The ``vs_baseline_p50`` columns of group ``i`` of ``g`` tested against its baseline
    group ``b``: untested for the baseline itself, or where there is none (``missing``
    says why)."""
    if b is None or b == i:
        d = _delta_cols(None, "vs_baseline_p50")
        d.update(why="the baseline" if b == i else missing)
        return d
    return _delta_cols(_test(_group_rows(ok, g, b), _group_rows(ok, g, i)), "vs_baseline_p50")


def _ordered_models(runs: pd.DataFrame) -> list:
    return list(dict.fromkeys(runs["model"]))


def _key_str(df: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    return _joined(df, cols) if len(cols) else pd.Series("", index=df.index, dtype=object)


def _group_rows(ok: pd.DataFrame, g: pd.DataFrame, i, stat: str = "p50_ms") -> pd.DataFrame:
    """The rows of group ``i`` of ``g`` (its ``_rows``), only the columns a test of
    ``stat`` reads (a runs table is wide: copying it whole per test is what costs)."""
    cols = [c for c in dict.fromkeys(UNIT_COLUMNS + (stat,)) if c in ok.columns]
    return ok.loc[g.at[i, "_rows"], cols] if i is not None else ok.iloc[0:0][cols]


def alone_vs_together(runs: pd.DataFrame, stats: Sequence[str] = STATS,
                      samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per model and condition that differs for it (``CONDITION_COLUMNS``): alone
    and together values of each statistic (pooled: module doc), the % increase, and for
    p50 the tested difference (``verdict``, its interval, ``p_value``, ``detectable_pct``,
    ``why``), as in the users' seed 002 tables."""
    ok = runs[runs["status"] == "ok"]
    if samples is not None and len(samples):
        ok = with_row_stats(ok, samples)
    conds = conditions_that_vary(ok)
    ok = _with_labels(ok, conds)
    g = pooled(ok, ["model"] + conds + ["phase"])
    bad = runs[runs["status"] != "ok"]
    bad_key = _key_str(bad, ["model"] + [c for c in conds if c in bad.columns and c != "settings"])
    rows = []
    by_model: Dict[str, list] = {}
    if len(g):
        for k, grp in g.groupby(["model"] + conds, sort=False, dropna=False):
            k = k if isinstance(k, tuple) else (k,)
            by_model.setdefault(k[0], []).append((k, grp))
    for model in _ordered_models(runs):
        for k, grp in by_model.get(model, [((model,), g.iloc[0:0] if len(g) else pd.DataFrame())]):
            row = {"model": model, **dict(zip(conds, k[1:]))}
            ia = next((i for i in grp.index if grp.at[i, "phase"] == "alone"), None) if len(grp) else None
            it = next((i for i in grp.index if grp.at[i, "phase"] == "together"), None) if len(grp) else None
            a = g.loc[ia] if ia is not None else pd.Series(dtype=object)
            t = g.loc[it] if it is not None else pd.Series(dtype=object)
            for s in stats:
                av, tv = a.get(s, np.nan), t.get(s, np.nan)
                name = s.replace("_ms", "")
                row[f"alone_{s}"] = av
                row[f"together_{s}"] = tv
                if s == "p50_ms":  # the median's difference is the one tested
                    v = _test(_group_rows(ok, g, ia), _group_rows(ok, g, it)) if ia is not None and it is not None \
                        else None
                    row.update(_delta_cols(v, f"increase_{name}"))
                else:
                    row[f"increase_{name}_pct"] = float(pct(tv, av)) if _finite(av, tv) else np.nan
            if "mj_per_inf" in g.columns:  # energy per inference, where a power reading gave one
                row["alone_mj_per_inf"], row["together_mj_per_inf"] = a.get("mj_per_inf", np.nan), \
                    t.get("mj_per_inf", np.nan)
            for s in OPEN_LOOP if _open(g) else ():
                row[f"alone_{s}"], row[f"together_{s}"] = a.get(s, np.nan), t.get(s, np.nan)
                if s == "deadline_miss":
                    for side, src in (("alone", a), ("together", t)):
                        row[f"{side}_deadline_miss_lo"] = src.get("deadline_miss_lo", np.nan)
                        row[f"{side}_deadline_miss_hi"] = src.get("deadline_miss_hi", np.nan)
            row["alone_n"] = int(a.get("n", 0) or 0)
            row["together_n"] = int(t.get("n", 0) or 0)
            row["alone_k"] = int(a.get("k", 0) or 0)
            row["together_k"] = int(t.get("k", 0) or 0)
            key = _key_str(pd.DataFrame([row]), ["model"] + [c for c in conds if c in bad.columns and c != "settings"])
            here = bad[bad_key == key.iloc[0]]
            row["status"] = "ok" if here.empty else "; ".join(f"{p}: {s}" for p, s in zip(here["phase"], here["status"]))
            rows.append(row)
    return _tails_beside(pd.DataFrame(rows), g, "phase", ("alone", "together"))


def _open(g: pd.DataFrame) -> bool:
    """Whether pooled rows ``g`` hold an open loop's (or a deadline's) statistics."""
    return any(c in g.columns and g[c].notna().any() for c in ("p50_from_arrival_ms", "deadline_miss"))


def _tails_beside(out: pd.DataFrame, g: pd.DataFrame, col: str, values) -> pd.DataFrame:
    """Where a side pooled several rows, its per-row p99s (never averaged) in ``<side>_p99_ms_repeats``."""
    if not len(out) or "p99_ms_repeats" not in g.columns:
        return out
    for v in values:
        name = f"{v}_p99_ms"
        if name not in out.columns:
            continue
        lists = []
        for _, r in out.iterrows():
            sel = (g["model"] == r["model"]) & (g[col] == v)
            for c in out.columns:
                if c in g.columns and c not in ("model", col) and not c.startswith(("alone_", "together_")) \
                        and c in CONDITION_COLUMNS:
                    sel &= g[c].map(str) == str(r[c])
            rep = g.loc[sel, "p99_ms_repeats"]
            lists.append(rep.iloc[0] if len(rep) and isinstance(rep.iloc[0], list) else None)
        if any(x is not None for x in lists):
            out.insert(list(out.columns).index(name) + 1, f"{name}_repeats", lists)
    return out


VERSUS = ("n", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms", "fps", "gpu_p50_ms", "mj_per_inf",
          "inf_per_j")


def versus(runs: pd.DataFrame, baseline: str, stats: Sequence[str] = VERSUS,
           samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per model (and condition that differs for one model): seed 003's table,
    mean/std/min/max/P95/P99/FPS (latency-bound) pooled over repeats (module doc), the
    p50's interval (``p50_lo_ms``..``p50_hi_ms``), the speedup over ``baseline`` (its p50
    over theirs: the statistic the verdict beside it tests) and the p50's tested difference
    from the baseline's (``verdict`` ...)."""
    ok = runs[runs["status"] == "ok"]
    if baseline not in set(ok["model"]):
        raise UserError("--baseline", f"{baseline!r} has no successful run here (have {', '.join(dict.fromkeys(runs['model']))})")
    if samples is not None and len(samples):
        ok = with_row_stats(ok, samples)
    split_phase = "phase" in ok.columns and bool((ok.groupby("model")["phase"].nunique() > 1).any())
    conds = conditions_that_vary(ok)
    keys = conds + (["phase"] if split_phase else [])
    ok = _with_labels(ok, conds)
    g = pooled(ok, keys + ["model"])
    stats = [c for c in stats if c in g.columns and g[c].notna().any()]
    cols = keys + ["model"] + [c for c in stats if c == "n"] + ["k"]
    for c in stats:
        if c == "n":
            continue
        cols.append(c)
        if c == "p50_ms" and "p50_lo_ms" in g.columns:
            cols += ["p50_lo_ms", "p50_hi_ms"]
        if c in _TAILS and f"{c}_repeats" in g.columns:
            cols.append(f"{c}_repeats")
    out = g[cols].copy()
    # the baseline's row of the same other conditions (the columns that vary across models are
    # the models' own attributes, not conditions to match)
    match = [c for c in keys if c not in _model_attributes(ok, keys)]
    key = _key_str(g, match)
    base_idx = {k: i for k, i in zip(key[g["model"] == baseline], g.index[g["model"] == baseline])}
    speed, deltas = [], []
    for i in g.index:
        b = base_idx.get(key.loc[i])
        r = g.loc[i]
        bp = g.at[b, "p50_ms"] if b is not None else np.nan
        speed.append(bp / r["p50_ms"] if b is not None and _finite(bp, r["p50_ms"]) and r["p50_ms"] > 0 else np.nan)
        if b is None or r["model"] == baseline:
            d = _delta_cols(None, "vs_baseline_p50")
            d.update(verdict=NO_TEST, why="the baseline" if r["model"] == baseline else "no baseline row")
        else:
            d = _delta_cols(_test(_group_rows(ok, g, b), _group_rows(ok, g, i)), "vs_baseline_p50")
        deltas.append(d)
    out["speedup"] = speed
    for c in ("vs_baseline_p50_pct", "vs_baseline_p50_lo_pct", "vs_baseline_p50_hi_pct", "p_value", "verdict",
              "detectable_pct", "why"):
        out[c] = [d[c] for d in deltas]
    return out


def _model_attributes(ok: pd.DataFrame, keys: Sequence[str]) -> List[str]:
    """Of ``keys``, the columns that are constant within every model (its own attributes,
    such as its precision or backend), not run conditions to match a baseline on."""
    if not len(ok):
        return []
    return [c for c in keys if c in ok.columns and c != "phase"
            and (ok[c].map(str).groupby(ok["model"]).nunique() <= 1).all()]


BY = ("n", "k", "mean_ms", "p50_ms", "gpu_p50_ms", "mj_per_inf", "inf_per_j")


#: what ``--by COLUMN`` may name besides ``CONDITION_COLUMNS`` and sweep ``axis:`` columns
BY_EXTRA = ("repeat", "run_id", "phase")


def check_by(ok: pd.DataFrame, by: str) -> None:
    """``--by``: a condition of the runs (``CONDITION_COLUMNS``, a sweep's ``axis:``
    column, ``repeat``, ``run_id``, ``phase``) that the ok rows here have; a statistic, a
    list or the model's name is refused in one line, naming the conditions that vary."""
    allowed = by in CONDITION_COLUMNS or by in BY_EXTRA or str(by).startswith("axis:")
    if allowed and by in ok.columns and ok[by].notna().any():
        return
    vary = (["phase"] if "phase" in ok.columns and ok["phase"].nunique() > 1 else []) + \
        (conditions_that_vary(ok) if len(ok) else [])
    have = f" (conditions that vary here: {', '.join(vary)})" if vary else " (no condition varies here)"
    what = "is not a condition (a statistic, a list or the model itself)" if not allowed and by in ok.columns \
        else "the runs here have no such condition"
    raise UserError("--by", f"{by!r}: {what}{have}")


def by_condition(runs: pd.DataFrame, by: str, baseline=None, stats: Sequence[str] = BY,
                 samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per model, value of the runs column ``by`` (``variant``, ``gap_s``,
    ``clocks_mode``, ...) and other condition that differs: its values pooled over repeats
    (module doc), and its p50 tested against the row of the same model and other conditions
    whose ``by`` is ``baseline`` (default: the first value in the runs' order), paired where
    the same processes measured both (variants of one model)."""
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    check_by(ok, by)
    ok = ok[ok[by].notna()]
    if samples is not None and len(samples):
        ok = with_row_stats(ok, samples)
    values = list(dict.fromkeys(ok[by]))
    if baseline is None:
        baseline = values[0]
    elif baseline not in values:
        strs = {str(v): v for v in values}
        if str(baseline) not in strs:
            raise UserError("--baseline", f"{baseline!r} is not a value of {by} here (have {', '.join(map(str, values))})")
        baseline = strs[str(baseline)]
    conds = [c for c in conditions_that_vary(ok, exclude=(by,)) if c not in _follows(ok, by)]
    ok = _with_labels(ok, conds)
    phase = ["phase"] if "phase" in ok.columns and ok["phase"].nunique() > 1 else []
    g = pooled(ok, ["model"] + phase + conds + [by])
    match = ["model"] + phase + conds
    key = _key_str(g, match)
    order = {v: i for i, v in enumerate(values)}
    g = g.assign(_order=g[by].map(order)).sort_values(["_order"], kind="stable")
    g = g.loc[sorted(g.index, key=lambda i: (list(dict.fromkeys(key)).index(key[i]), g.at[i, "_order"]))]
    cols = match + [by] + [c for c in stats if c in g.columns and g[c].notna().any()]
    out_rows = []
    base_idx = {key[i]: i for i in g.index if g.at[i, by] == baseline}
    for i in g.index:
        r = {c: g.at[i, c] for c in cols}
        for c in ("p50_lo_ms", "p50_hi_ms"):
            if c in g.columns:
                r[c] = g.at[i, c]
        r.update(_vs_baseline(ok, g, base_idx.get(key[i]), i, f"no row with {by}={baseline}"))
        out_rows.append(r)
    out = pd.DataFrame(out_rows)
    order_cols = [c for c in cols if c not in ("p50_ms",)]
    if "p50_ms" in out.columns:
        at = order_cols.index("mean_ms") + 1 if "mean_ms" in order_cols else len(order_cols)
        order_cols[at:at] = [c for c in ("p50_ms", "p50_lo_ms", "p50_hi_ms") if c in out.columns]
    rest = [c for c in out.columns if c not in order_cols]
    return out[order_cols + rest]


def _follows(ok: pd.DataFrame, by: str) -> List[str]:
    """Condition columns whose value is fixed by ``by`` (a variant's ``gap_s`` and ``prewarm``):
    shown with it rather than split on."""
    out = []
    for c in CONDITION_COLUMNS:
        if c == by or c not in ok.columns:
            continue
        per = ok.groupby(ok[by].map(str))[c].agg(lambda s: s.map(str).nunique())
        if (per <= 1).all() and ok[c].map(str).nunique() > 1:
            out.append(c)
    return out


#: the accuracy metrics a validation row carries (fractions: top-1 accuracy, mAP)
METRICS = ("top1", "top5", "map50", "map50_95", "box_map50", "box_map50_95", "mask_map50", "mask_map50_95",
           "pose_map50", "pose_map50_95")
#: how a precision came about: attributes of the model at that precision, not conditions
#: to match its baseline on
_PRECISION_ATTRS = ("precision", "typing", "converter", "converted_sha256", "calib_sha256", "engine_path",
                    "options", "onnx_path", "dla_core", "dla_gpu_layers")
#: what makes two models the same network at two precisions (besides the source ONNX)
_SAME_NETWORK = ("backend", "imgsz_h", "imgsz_w", "batch")


def _network(ok: pd.DataFrame) -> pd.Series:
    """Per row, the network it runs: the source ONNX's hash (the same for every precision
    converted or built from it), else its ``source``, else the model's name."""
    out = pd.Series(ok["model"].astype(object), index=ok.index)
    for c in ("source", "onnx_sha256"):
        if c in ok.columns:
            out = ok[c].astype(object).where(ok[c].notna() & (ok[c].astype(str) != ""), out)
    return out


def pooled_energy(rows: pd.DataFrame, col: str = "energy_mj_per_inf") -> float:
    """Energy per inference of pooled rows: their energy over their inferences, never a
    mean of per-row ratios. A row's inferences are those its energy is divided by: for a
    together window, every model's in it (``energy_j`` over ``energy_mj_per_inf``), so two
    windows pool as their summed energy over their summed inferences."""
    e, n = _num(rows, col), _num(rows, "n")
    joules, per = _num(rows, "energy_j"), _num(rows, "energy_mj_per_inf")
    n_all = (joules * 1e3 / per).where(joules.notna() & (per > 0), n)
    have = e.notna() & n_all.notna() & (n_all > 0)
    return float((e[have] * n_all[have]).sum() / n_all[have].sum()) if have.any() else np.nan


def by_precision(runs: pd.DataFrame, baseline: Optional[str] = None,
                 samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Per network (the source ONNX, at one backend, size and batch) and run condition
    that differs, one row per model at each precision (FP32, FP16, INT8; a precision
    reached two ways, two rows): its p50 pooled over repeats (module doc), the speedup
    over the same network's ``baseline`` precision (default fp32: the ratio of the two
    p50s) with the difference tested on the runs (``verdict``, its interval, why), the
    energy per inference where the runs have ``energy_mj_per_inf`` (NaN: —), and where
    validation ran, each accuracy metric and its change from the baseline's
    (``<metric>_delta``, in the metric's own units). A model on a DLA core is one more way
    of reaching its precision (``dla_core`` shown): it is set against the network's FP32
    on the GPU."""
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    if "precision" not in ok.columns or not ok["precision"].notna().any():
        raise UserError("--by", "'precision': the runs here have no precision column")
    ok = ok[ok["precision"].notna()]
    if samples is not None and len(samples):
        ok = with_row_stats(ok, samples)
    values = sorted(dict.fromkeys(ok["precision"]), key=lambda v: (PRECISIONS.index(v) if v in PRECISIONS
                                                                    else len(PRECISIONS), str(v)))
    if baseline is None:
        baseline = values[0]
    elif baseline not in values:
        raise UserError("--baseline", f"{baseline!r} is not a precision measured here (have {', '.join(values)})")
    ok = ok.assign(network=_network(ok))
    # conditions: what varies within a network (not within a model: the precisions of one
    # network are different models, and rows of two experiments or generations must not meet)
    conds = conditions_that_vary(ok.assign(model=ok["network"]), exclude=_PRECISION_ATTRS + _SAME_NETWORK)
    ok = _with_labels(ok, conds)
    phase = ["phase"] if "phase" in ok.columns and ok["phase"].nunique() > 1 and "phase" not in conds else []
    match = ["network"] + [c for c in _SAME_NETWORK if c in ok.columns] + phase + conds
    g = pooled(ok, match + ["precision", "model"])
    key = _key_str(g, match)
    networks = list(dict.fromkeys(ok["network"]))
    models = list(dict.fromkeys(ok["model"]))
    rank = {i: (networks.index(g.at[i, "network"]), list(dict.fromkeys(key)).index(key[i]),
                values.index(g.at[i, "precision"]), models.index(g.at[i, "model"])) for i in g.index}
    g = g.loc[sorted(g.index, key=rank.get)]
    base_idx: Dict[str, object] = {}
    for i in g.index:  # the first model at the baseline precision of each network and condition
        if g.at[i, "precision"] == baseline:
            base_idx.setdefault(key[i], i)
    energy = [c for c in ok.columns if str(c).endswith("energy_mj_per_inf")] or ["energy_mj_per_inf"]
    metrics = [m for m in METRICS if m in ok.columns and ok[m].notna().any()]
    on_dla = "dla_core" in ok.columns and bool(_num(ok, "dla_core").notna().any())
    not_mode = [c for c in match if c not in ("mode", "phase")]

    def metric_of(i, m):  # the model's last validated value (any mode or phase of this condition)
        rows = ok.loc[ok["model"] == g.at[i, "model"]]
        for c in not_mode:
            rows = rows[rows[c].map(str) == str(g.at[i, c])]
        v = _num(rows, m).dropna()
        return float(v.iloc[-1]) if len(v) else np.nan

    label = ok.groupby("network")["source"].first() if "source" in ok.columns else None
    out_rows = []
    for i in g.index:
        net = g.at[i, "network"]
        r = {"model": g.at[i, "model"]}
        src = label.get(net) if label is not None else None
        r["source"] = (src.replace("\\", "/").rsplit("/", 1)[-1] if isinstance(src, str) and src else net)
        for c in match[1:]:
            r[c] = g.at[i, c]
        r.update(precision=g.at[i, "precision"], n=g.at[i, "n"], k=g.at[i, "k"])
        if on_dla:  # a DLA core runs FP16 / INT8 only: its rows meet the network's FP32 on the GPU
            r["dla_core"] = ok.at[g.at[i, "_rows"][0], "dla_core"]
        for c in ("p50_ms", "p50_lo_ms", "p50_hi_ms", "gpu_p50_ms"):
            if c in g.columns:
                r[c] = g.at[i, c]
        b = base_idx.get(key[i])
        d = _vs_baseline(ok, g, b, i, f"no {baseline} row of this network")
        if b is None or b == i:
            r["speedup"] = 1.0 if b == i else np.nan
        else:
            bp, p = g.at[b, "p50_ms"], g.at[i, "p50_ms"]
            r["speedup"] = float(bp / p) if _finite(bp, p) and p > 0 else np.nan
        r.update(d)
        for c in energy:
            r[c] = pooled_energy(ok.loc[g.at[i, "_rows"]], c)
        for m in metrics:
            r[m] = metric_of(i, m)
            r[f"{m}_delta"] = (r[m] - metric_of(b, m)) if b is not None and b != i else np.nan
        out_rows.append(r)
    out = pd.DataFrame(out_rows)
    if "gpu_p50_ms" in out.columns and not out["gpu_p50_ms"].notna().any():
        out = out.drop(columns=["gpu_p50_ms"])
    lead = ["source"] + [c for c in match[1:] if c in ("backend",)] + [c for c in match[1:] if c != "backend"]
    lead = [c for c in lead if c in out.columns and (c in ("source", "backend") or c in conds + phase)]
    shown_cols = lead + ["model", "precision", "dla_core", "n", "k"] + [c for c in ("p50_ms", "p50_lo_ms", "p50_hi_ms",
                                                                         "gpu_p50_ms") if c in out.columns]
    shown_cols += ["speedup"] + [c for c in out.columns if c.startswith("vs_baseline_p50")]
    shown_cols += ["verdict", "p_value", "detectable_pct", "why"] + energy
    shown_cols += [c for m in metrics for c in (m, f"{m}_delta")]
    return out[[c for c in shown_cols if c in out.columns]].reset_index(drop=True)


#: seed 002's columns, in its order: (mode, phase)
BY_MODE = (("inference", "alone"), ("inference", "together"), ("pipeline", "alone"), ("pipeline", "together"),
           ("validation", "alone"), ("without_val", "alone"), ("validation", "together"),
           ("without_val", "together"))


def by_mode(runs: pd.DataFrame, stat: str = "mean_ms", base=("inference", "alone"),
            samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Seed 002's tables in one: per model (and condition that differs for it, other than
    the mode), ms per image of each (mode, phase) measured (pooled over repeats), and the
    % change of each over ``base`` (InferenceTime alone by default), tested on the runs
    (``<mode>_<phase>_verdict``, with its interval and why)."""
    ok = runs[runs["status"] == "ok"].copy()
    if "mode" not in ok.columns:
        ok["mode"] = "inference"
    if "batch" not in ok.columns:
        ok["batch"] = 1
    if samples is not None and len(samples):
        ok = with_row_stats(ok, samples)
    conds = conditions_that_vary(ok, exclude=("mode",))
    ok = _with_labels(ok, conds)
    g = pooled(ok, ["model"] + conds + ["mode", "phase"])
    per = _num(g, "batch").fillna(1).to_numpy(float) if "batch" in g.columns else \
        g["model"].map(ok.groupby("model")["batch"].first()).fillna(1).to_numpy(float)
    s = stat[:-3]
    shown_g = g.copy()
    for c in (stat, f"{s}_lo_ms", f"{s}_hi_ms"):
        shown_g[c] = (_num(g, c) / per) if c in g.columns else np.nan
    present = [k for k in BY_MODE if ((g["mode"] == k[0]) & (g["phase"] == k[1])).any()]
    rows = []
    by_model: Dict[str, list] = {}
    if len(g):
        for k, grp in g.groupby(["model"] + conds, sort=False, dropna=False):
            k = k if isinstance(k, tuple) else (k,)
            by_model.setdefault(k[0], []).append((k, grp))
    for model in _ordered_models(runs):
        for k, grp in by_model.get(model, [((model,), g.iloc[0:0])]):
            row = {"model": model, **dict(zip(conds, k[1:]))}
            cell = {(grp.at[i, "mode"], grp.at[i, "phase"]): i for i in grp.index}
            for mode, phase in present:
                row[f"{mode}_{phase}_ms"] = shown_g.at[cell[(mode, phase)], stat] if (mode, phase) in cell else np.nan
            b = cell.get(tuple(base))
            for mode, phase in present:
                if (mode, phase) == tuple(base):
                    continue
                i = cell.get((mode, phase))
                v = _test(_group_rows(ok, g, b, stat), _group_rows(ok, g, i, stat), stat) if b is not None and i is not None \
                    else None
                d = _delta_cols(v, f"{mode}_{phase}_vs_{base[0]}")
                name = f"{mode}_{phase}"
                for c in (f"{name}_vs_{base[0]}_pct", f"{name}_vs_{base[0]}_lo_pct", f"{name}_vs_{base[0]}_hi_pct"):
                    row[c] = d[c]
                row[f"{name}_verdict"] = d["verdict"]
                row[f"{name}_why"] = d["why"]
            for m in ("top1", "top5", "map50", "map50_95", "box_map50_95", "mask_map50_95", "pose_map50_95"):
                if m in ok.columns and ok.loc[ok["model"] == model, m].notna().any():
                    row[m] = float(ok.loc[ok["model"] == model, m].dropna().iloc[-1])
            rows.append(row)
    return pd.DataFrame(rows)


def stages(runs: pd.DataFrame, samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Where the time of each pipeline / validation row goes: one row per model, mode and
    phase (and MPS or clocks where they vary), the p50 of every stage (one row's, or pooled
    over its repeats as the p50 is: ``pooled_stage``), their sum, the measured p50 per image and the GPU time, in ms.
    Answers seed 002's "why is X slower without the metric work": the stage that moved is
    named by its column. ``vs_first_p50_pct`` is the measured p50's change over the
    model's first row (modes in their usual order), tested on the runs (``verdict``)."""
    cols = [f"{s}_p50_ms" for s in STAGES]
    ok = runs[(runs["status"] == "ok")] if "status" in runs.columns else runs
    present = [c for c in cols if c in ok.columns and ok[c].notna().any()]
    if not present:
        raise UserError("runs", "no stage times: --by stage needs pipeline or validation runs (modes pipeline, "
                        "validation, without_val)")
    ok = ok[ok[present].notna().any(axis=1)]
    if "mode" not in ok.columns:
        ok = ok.assign(mode="inference")
    if samples is not None and len(samples):
        ok = with_row_stats(ok, samples)
    conds = conditions_that_vary(ok, exclude=("mode",))
    ok = _with_labels(ok, conds)
    keys = ["mode", "phase"] + conds
    g = pooled(ok, ["model"] + keys, medians=[f"{s}_ms" for s in STAGES])
    extra = [c for c in ("p50_ms", "gpu_p50_ms") if c in ok.columns]
    modes = list(dict.fromkeys(m for m, _ in BY_MODE))
    order = {"mode": modes, "phase": ["alone", "together"], "model": list(dict.fromkeys(runs["model"]))}

    def rank(col: pd.Series) -> pd.Series:  # modes, phases and models in their usual order
        if col.name not in order:
            return col.astype(str)
        known = order[col.name]
        return col.map(lambda v: known.index(v) if v in known else len(known))

    g = g.sort_values(keys + ["model"], kind="stable", key=rank).reset_index(drop=True)
    out = g[["model"] + keys + [c for c in present if c in g.columns] + [c for c in extra if c in g.columns]].copy()
    out.insert(len(keys) + 1 + len(present), "stages_ms", out[present].sum(axis=1, min_count=1))
    first: Dict[str, int] = {}
    deltas = []
    for i in g.index:
        b = first.setdefault(g.at[i, "model"], i)
        deltas.append(_delta_cols(None, "vs_first_p50") if b == i else
                      _delta_cols(_test(_group_rows(ok, g, b), _group_rows(ok, g, i)), "vs_first_p50"))
        if b == i:
            deltas[-1].update(why="the model's first row")
    for c in ("vs_first_p50_pct", "vs_first_p50_lo_pct", "vs_first_p50_hi_pct", "verdict", "why"):
        out[c] = [d[c] for d in deltas]
    return out.rename(columns={c: c.replace("_p50_ms", "_ms") for c in present + extra})


# ---------------------------------------------------------------------------- presentation

def _fmt(v, col: str) -> str:
    if isinstance(v, list):
        vals = [x for x in v if _finite(x)]
        if not vals:
            return "—"
        if len(vals) > 4:
            return f"{_ms(min(vals))}…{_ms(max(vals))}ms ({len(vals)})"
        return " / ".join(_ms(x) for x in vals) + "ms"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "—"
        if col.endswith("_pct"):
            return f"{v:+.1f}%"
        if col == "speedup":
            return f"{v:.2f}x"
        if col == "p_value":
            return "<0.001" if v < 0.001 else f"{v:.3f}"
        if col == "throughput_ips" or col.endswith(("fps", "dropped")):
            return f"{v:.0f}"
        return f"{v:.2f}ms" if col.endswith("_ms") else f"{v:.3g}"
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "—"
    return str(v)


def _ms(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}"


def shown(df: pd.DataFrame, cell=None) -> pd.DataFrame:
    """``df`` as strings for a table: every ``X_lo_pct``/``X_hi_pct`` pair joins the cell
    of ``X_pct`` (``+12.3% [+8.1, +16.0]``), every ``X_lo_ms``/``X_hi_ms`` pair becomes one
    ``X CI`` cell (``[0.95, 1.05]ms``), ``detectable_pct`` reads ``±4.1%``; the ``why``
    columns are left to :func:`notes`. ``cell(value, column)`` formats a value."""
    cell = cell or _fmt
    out = {}
    cols = list(df.columns)
    for c in cols:
        if c == "why" or c.endswith("_why") or c == "_rows":
            continue
        if c.endswith(("_lo_pct", "_hi_pct")) and c[:-7] + "_pct" in cols:
            continue
        if c.endswith("_hi_ms") and c[:-6] + "_lo_ms" in cols:
            continue
        if c.endswith("_lo_ms") and c[:-6] + "_hi_ms" in cols:
            hi = c[:-6] + "_hi_ms"
            name = c[:-9] if c.endswith("_ci_lo_ms") else c[:-6]  # p50_ci_lo_ms -> p50 CI
            out[name + "_CI"] = [f"[{_ms(lo)}, {_ms(h)}]ms" if _finite(lo, h) else "—" for lo, h in zip(df[c], df[hi])]
            continue
        if c == "detectable_pct":
            out[c] = [f"±{v:.1f}%" if _finite(v) else "—" for v in df[c]]
            continue
        if c.endswith(("deadline_miss_lo", "deadline_miss_hi")) and c[:-3] in cols:
            continue
        if c.endswith("deadline_miss"):  # a rate: 1.2% [0.5, 2.9]
            lo = df[c + "_lo"] if c + "_lo" in cols else [np.nan] * len(df)
            hi = df[c + "_hi"] if c + "_hi" in cols else [np.nan] * len(df)
            out[c] = [("—" if not _finite(v) else f"{v * 100:.1f}%" + (f" [{a * 100:.1f}, {b * 100:.1f}]"
                                                                       if _finite(a, b) else ""))
                      for v, a, b in zip(df[c], lo, hi)]
            continue
        vals = [cell(v, c) for v in df[c]]
        lo, hi = c[:-4] + "_lo_pct", c[:-4] + "_hi_pct"
        if c.endswith("_pct") and lo in cols and hi in cols:
            vals = [v + (f" [{a:+.1f}, {b:+.1f}]" if _finite(a, b) else "") for v, a, b in zip(vals, df[lo], df[hi])]
        out[c] = vals
    return pd.DataFrame(out, index=df.index)


def notes(df: pd.DataFrame) -> List[str]:
    """The reasons behind each ``—`` verdict of a table, once each (``why`` columns)."""
    out: List[str] = []
    for c in [c for c in df.columns if c == "why" or c.endswith("_why")]:
        vcol = "verdict" if c == "why" else c[:-4] + "_verdict"
        if vcol not in df.columns:
            continue
        for v, w in zip(df[vcol], df[c]):
            if v == NO_TEST and isinstance(w, str) and w and w not in ("the baseline", "the model's first row"):
                line = f"verdict —: {w}"
                if line not in out:
                    out.append(line)
    return out


def head(col: str) -> str:
    """``alone_p50_ms`` -> ``alone_p50``, ``increase_p50_pct`` -> ``Δ p50 %``, ``p50_CI`` -> ``p50 CI``."""
    return (col.replace("_ms_repeats", " per run").replace("_from_arrival", " from arrival").replace("_ms", "")
            .replace("deadline_miss", "missed").replace("increase_", "Δ ")
            .replace("detectable_pct", "detectable").replace("_pct", " %").replace("_CI", " CI")
            .replace("p_value", "p"))


def to_markdown(df: pd.DataFrame, headers: List[str] = None) -> str:
    s = shown(df)
    heads = headers or [head(c) for c in s.columns]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in s.columns) + "|"]
    for _, r in s.iterrows():
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def render(df: pd.DataFrame, fmt: str = "md") -> str:
    """A table as markdown (its ``—`` verdicts' reasons below it) or CSV (every column)."""
    if fmt == "csv":
        return df.drop(columns=[c for c in ("_rows",) if c in df.columns]).to_csv(index=False, float_format="%.4f")
    text = to_markdown(df)
    extra = notes(df)
    return text + ("\n" + "\n".join(extra) if extra else "")
