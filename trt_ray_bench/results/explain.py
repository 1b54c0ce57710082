"""What else differed when two runs differ: the telemetry of each row's measured window
(mean SM clock, GPU utilization, power, P-state, temperature, throttling, CPU load; the
energy per inference where the row has one), and sentences that put it next to the
latency change.

>>> from trt_ray_bench import results
>>> r = results.load("results/gpu_alone_together")
>>> results.window_telemetry(r.runs, r.telemetry)[["tel_gpu_util_pct", "tel_power_w"]]
>>> print("\\n".join(results.explain(r.runs, r.telemetry, "phase")))
"""

from __future__ import annotations

import re

from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import pandas as pd

from ..errors import UserError
# SAMPLE_KEYS, measured and row_keys are also imported from here (the report, benchmarks)
from ._keys import SAMPLE_KEYS, measured, row_keys, row_windows  # noqa: F401
from .join import placed_t_ns
from .schema import STAGES
from .verdict import UNIT_COLUMNS, compare_rows


#: One quantity, as each sampler names it, best first: ``(source, metric, scale)``. Per
#: run the first candidate with readings wins, so NVML and tegrastats never mix. A metric
#: given as ``re:<pattern>`` is every matching metric, averaged per reading (a Jetson has
#: no total CPU load, only ``cpu<i>_util_pct`` of each online core). Jetson power is the
#: rail that holds the GPU: on Orin AGX ``VDD_GPU_SOC`` (GPU and SoC), on Orin NX/Nano
#: ``VDD_CPU_GPU_CV`` (CPU, GPU and CV together), elsewhere a GPU-only rail. Jetson temperature
#: is the GPU's sensor, else the junction's (``tj``, the hottest: Orin on JetPack 6 prints no ``gpu@``);
#: without NVML or tegrastats, the hottest thermal zone's (the host sampler's ``temp_c:zone``).
QUANTITIES: Dict[str, List[Tuple[str, str, float]]] = {
    "gpu_freq_mhz": [("nvml", "gpu_freq_mhz", 1.0), ("tegrastats", "gpu_freq_mhz", 1.0)],
    "gpu_util_pct": [("nvml", "gpu_util_pct", 1.0), ("tegrastats", "gpu_util_pct", 1.0)],
    "power_w": [("nvml", "power_mw:gpu", 1e-3)] + [
        ("tegrastats", f"power_mw:{rail}", 1e-3)
        for rail in ("VDD_GPU", "GPU", "POM_5V_GPU", "VDD_SYS_GPU", "VDD_GPU_SOC", "VDD_CPU_GPU_CV")
    ],
    "pstate": [("nvml", "pstate", 1.0)],
    "temp_c": [("nvml", "temp_c:gpu", 1.0), ("tegrastats", "temp_c:gpu", 1.0), ("tegrastats", "temp_c:tj", 1.0),
               ("host", "temp_c:zone", 1.0)],
    "cpu_util_pct": [("host", "cpu_util_pct", 1.0), ("tegrastats", r"re:cpu\d+_util_pct", 1.0)],
    "throttle_reasons": [("nvml", "throttle_reasons", 1.0)],
    # a Jetson's DLA cores: 1 where tegrastats printed the core busy (NVDLA0 @1600), 0 where "off"
    **{f"nvdla{c}_on": [("tegrastats", f"nvdla{c}_on", 1.0)] for c in range(2)},
}

#: Clock event reasons that are not a slowdown: the GPU is idle (0x1), runs at the
#: application clocks someone set (0x2), follows the clocks of the GPUs it is
#: sync-boosted with (sync_boost, 0x10), or at a clock the display asked for
#: (display_clock_setting, 0x100). Any other bit (power cap, thermal, power brake,
#: hardware slowdown) counts as throttling.
NOT_THROTTLE = 0x1 | 0x2 | 0x10 | 0x100

#: What NVML reports as the P-state when it does not know it.
PSTATE_UNKNOWN = 32

#: When ``explain`` calls a difference "unchanged" (or a latency "barely differs"):
#: latency, SM clock, power and energy per inference within this share (relative); utilization, CPU load and
#: temperature within this many points or degrees, as printed (rounded); the throttled
#: share of readings within this share.
TOLERANCES = {"latency": 0.03, "gpu_freq_mhz": 0.01, "power_w": 0.03, "gpu_util_pct": 2.0,
              "cpu_util_pct": 2.0, "temp_c": 1.0, "throttle_frac": 0.05, "energy": 0.03}

Readings = Dict[str, Tuple[np.ndarray, np.ndarray]]  # run_id -> (t_ns sorted, values)


#: the last telemetry tables looked up, with their rows per (source, metric): the same
#: table is asked for one quantity after another (``_chosen``)
_INDEXES: List[Tuple[pd.DataFrame, Dict[Tuple[str, str], np.ndarray]]] = []


def _by_metric(telemetry: pd.DataFrame) -> Dict[Tuple[str, str], np.ndarray]:
    """The row positions of each (source, metric) of ``telemetry``: one grouping per table
    (kept for the last two tables), not one scan of the whole table per quantity."""
    for frame, index in _INDEXES:
        if frame is telemetry:
            return index
    groups = telemetry.groupby([telemetry["source"].astype(str), telemetry["metric"].astype(str)], sort=False)
    index = {(str(s), str(m)): i for (s, m), i in groups.indices.items()}
    _INDEXES.insert(0, (telemetry, index))
    del _INDEXES[2:]
    return index


def _chosen(telemetry: pd.DataFrame, quantity: str) -> Optional[pd.DataFrame]:
    """The readings of one quantity: ``run_id, t_ns, value`` (scaled), ``avg_s`` (0 where
    the table has none) and ``source``, per run from its first candidate with readings,
    in time order; None where there are none."""
    cands = QUANTITIES[quantity]
    if telemetry is None or not len(telemetry):
        return None
    has_avg = "avg_s" in telemetry.columns
    index = _by_metric(telemetry)
    parts = []
    for rank, (source, metric, scale) in enumerate(cands):
        if metric.startswith("re:"):
            rx = re.compile(metric[3:])
            pos = [i for (s, m), i in index.items() if s == source and rx.fullmatch(m)]
        else:
            pos = [index[(source, metric)]] if (source, metric) in index else []
        if not pos:
            continue
        sel = telemetry.iloc[np.sort(np.concatenate(pos))]  # in the table's order
        avg = pd.to_numeric(sel["avg_s"], errors="coerce").fillna(0.0) if has_avg else 0.0
        sel = pd.DataFrame({"run_id": sel["run_id"], "t_ns": sel["t_ns"], "value": sel["value"], "avg_s": avg})
        if metric.startswith("re:"):  # one value per reading: the mean over the cores
            sel = sel.groupby(["run_id", "t_ns"], as_index=False)[["value", "avg_s"]].mean()
        parts.append(sel.assign(value=sel["value"] * scale, rank=rank, source=source))
    if not parts:
        return None
    tel = pd.concat(parts, ignore_index=True)
    return tel[tel["rank"] == tel.groupby("run_id")["rank"].transform("min")].sort_values(["run_id", "t_ns"],
                                                                                         kind="stable")


def readings(telemetry: pd.DataFrame, quantity: str) -> Readings:
    """Per run, the readings of one quantity of ``QUANTITIES`` on the node's clock, each
    at its placed time (``join.placed_t_ns``: an averaged reading at the middle of the
    period it covers). For instantaneous readings (clocks, P-state, throttle reasons) the
    time they were read; ``timed_readings`` keeps every reading's period."""
    if telemetry is None or not len(telemetry):
        return {}
    tel = _chosen(telemetry, quantity)
    if tel is None:
        return {}
    # an averaged reading stands where the period it averages is (``join.placed_t_ns``)
    t, v = placed_t_ns(tel).to_numpy(np.int64), tel["value"].to_numpy(np.float64)
    out = {}
    for rid, idx in tel.groupby("run_id", sort=False).indices.items():
        order = np.argsort(t[idx], kind="stable")
        out[rid] = (t[idx][order], v[idx][order])
    return out


class Series(NamedTuple):
    """One quantity's readings in one run, as ``timed_readings`` returns them."""

    #: the sampler they came from (``nvml``, ``tegrastats``, ``host``)
    source: str
    #: instantaneous readings (``avg_s`` 0): when read (ns, sorted) and their values
    t: np.ndarray
    v: np.ndarray
    #: averaged readings: the end of the period each covers (ns, sorted), values, and the
    #: period's length (ns); a reading covers ``[t_end - avg_ns, t_end]``
    t_end: np.ndarray
    v_avg: np.ndarray
    avg_ns: np.ndarray
    #: the period the averaged readings cover (their median ``avg_s``); 0 without any
    period_s: float


def timed_readings(telemetry: pd.DataFrame, quantity: str) -> Dict[object, Series]:
    """Per run, the readings of one quantity of ``QUANTITIES`` with the period each covers
    (the telemetry table's ``avg_s``: a reading averages ``[t_ns - avg_s, t_ns]``; 0, or a
    table without the column: instantaneous), for ``window_mean``."""
    tel = _chosen(telemetry, quantity)
    return {} if tel is None else series_of(tel)


def series_of(tel: pd.DataFrame) -> Dict[object, Series]:
    """Per run, ``Series`` of readings ``tel`` (``run_id``, ``t_ns``, ``value``, ``avg_s``,
    ``source``; in time order within a run), for ``window_mean``."""
    t = tel["t_ns"].to_numpy(np.int64)
    v = tel["value"].to_numpy(np.float64)
    a = np.round(tel["avg_s"].to_numpy(np.float64) * 1e9).astype(np.int64)
    src = tel["source"].to_numpy()
    out: Dict[object, Series] = {}
    for rid, idx in tel.groupby("run_id", sort=False).indices.items():
        ai = a[idx]
        avg = ai > 0
        inst = idx[~avg]
        av = idx[avg]
        out[rid] = Series(str(src[idx[0]]), t[inst], v[inst], t[av], v[av], a[av],
                          float(np.median(a[av])) / 1e9 if av.size else 0.0)
    return out


def window_mean(s: Optional[Series], start, end) -> Tuple[float, float]:
    """The mean of one run's quantity over the window ``[start, end]`` (ns) and, where it
    cannot be known, why: ``(value, coarse_s)``.

    An averaged reading counts by the share of its period inside the window (a reading
    over ``[t - avg_s, t]`` half inside weighs half); an instantaneous reading inside the
    window counts as one, and a window with none inside takes the latest one before its
    end. A window shorter than the period the averaged readings cover (``s.period_s``)
    has no value of its own: ``(nan, period_s)``. Otherwise ``coarse_s`` is 0, and the
    value NaN where no reading describes the window."""
    if s is None or start is None or end is None or pd.isna(start) or pd.isna(end):
        return np.nan, 0.0
    a, b = int(start), int(end)
    if s.period_s > 0 and (b - a) / 1e9 < s.period_s:
        return np.nan, s.period_s
    num = den = 0.0
    if s.t_end.size:  # the readings whose period [t - avg, t] meets the window: a < t < b + longest period
        lo = np.searchsorted(s.t_end, a, "right")
        hi = np.searchsorted(s.t_end, b + int(s.avg_ns.max()), "left")
        t, per = s.t_end[lo:hi], s.avg_ns[lo:hi]
        w = np.clip(np.minimum(t, b) - np.maximum(t - per, a), 0, None) / per
        num, den = float(np.dot(w, s.v_avg[lo:hi])), float(w.sum())
    if s.t.size:
        lo, hi = np.searchsorted(s.t, a, "left"), np.searchsorted(s.t, b, "right")
        if hi > lo:
            num, den = num + float(s.v[lo:hi].sum()), den + (hi - lo)
        elif den == 0 and hi > 0:  # shorter than the polling interval: the reading in force
            num, den = float(s.v[hi - 1]), 1.0
    return (num / den if den > 0 else np.nan), 0.0


def in_window(r: Readings, run_id, start, end, as_of: bool = False) -> np.ndarray:
    """The values read within ``[start, end]`` ns; with ``as_of``, a window without a
    reading (shorter than the polling interval) gets the latest reading before its end."""
    if run_id not in r or start is None or end is None or pd.isna(start) or pd.isna(end):
        return np.empty(0)
    t, v = r[run_id]
    lo, hi = np.searchsorted(t, int(start), "left"), np.searchsorted(t, int(end), "right")
    if hi > lo or not as_of:
        return v[lo:hi]
    return v[hi - 1:hi] if hi > 0 else np.empty(0)


#: The quantities ``window_telemetry`` averages over a window (``window_mean``); the
#: P-state and the throttle reasons, read at an instant, are counted instead.
MEANS = ("gpu_freq_mhz", "gpu_util_pct", "power_w", "temp_c", "cpu_util_pct")


def window_telemetry(runs: pd.DataFrame, telemetry: pd.DataFrame) -> pd.DataFrame:
    """Per runs row (same index), means over its measured window: ``tel_gpu_freq_mhz``
    (SM clock), ``tel_gpu_util_pct``, ``tel_power_w``, ``tel_pstate`` (the most frequent),
    ``tel_temp_c``, ``tel_cpu_util_pct`` and ``tel_throttle_frac`` (share of readings with
    a clock event reason other than idle or application clocks). NaN where not measured.

    Means are ``window_mean``'s: an averaged reading (``avg_s`` > 0) weighs by the share
    of its period inside the window, an instantaneous one inside it counts as one, and a
    window without an instantaneous reading gets the latest before its end. A window
    shorter than the period of a quantity's averaged readings gets NaN for it
    (``coarse_telemetry`` says which; ``results.diagnose`` names them)."""
    win = row_windows(runs)
    cols = {"gpu_freq_mhz": "tel_gpu_freq_mhz", "gpu_util_pct": "tel_gpu_util_pct", "power_w": "tel_power_w",
            "pstate": "tel_pstate", "temp_c": "tel_temp_c", "cpu_util_pct": "tel_cpu_util_pct",
            "throttle_reasons": "tel_throttle_frac"}
    out = pd.DataFrame(index=runs.index, columns=list(cols.values()), dtype=np.float64)
    rids = runs["run_id"].to_numpy() if "run_id" in runs.columns else [None] * len(runs)
    starts, ends = win["start_ns"].to_numpy(), win["end_ns"].to_numpy()
    for q, col in cols.items():
        if q in MEANS:
            series = timed_readings(telemetry, q)
            if series:
                out[col] = [window_mean(series.get(rid), a, b)[0] for rid, a, b in zip(rids, starts, ends)]
            continue
        r = readings(telemetry, q)
        if not r:
            continue
        vals = []
        for rid, a, b in zip(rids, starts, ends):
            v = in_window(r, rid, a, b, as_of=True)
            if not v.size:
                vals.append(np.nan)
            elif q == "pstate":
                v = v[v != PSTATE_UNKNOWN]
                u, c = np.unique(v, return_counts=True)
                vals.append(float(u[np.argmax(c)]) if v.size else np.nan)
            else:  # throttle_reasons
                vals.append(float(np.mean((v.astype(np.int64) & ~NOT_THROTTLE) != 0)))
        out[col] = vals
    return out


def coarse_telemetry(runs: pd.DataFrame, telemetry: pd.DataFrame, starts=None,
                     ends=None) -> List[List[Tuple[str, str, float, float]]]:
    """Per runs row (in order), the quantities of ``MEANS`` its window is too short to
    have a value of: ``(quantity, source, period_s, window_s)``, the window shorter than
    the period the quantity's averaged readings cover (``window_mean`` gives NaN). The
    windows are ``starts``/``ends`` (ns) where given, else ``row_windows(runs)``."""
    if starts is None or ends is None:
        win = row_windows(runs)
        starts, ends = win["start_ns"].to_numpy(), win["end_ns"].to_numpy()
    out: List[List[Tuple[str, str, float, float]]] = [[] for _ in range(len(runs))]
    rids = runs["run_id"].to_numpy() if "run_id" in runs.columns else [None] * len(runs)
    for q in MEANS:
        series = timed_readings(telemetry, q)
        for j, (rid, a, b) in enumerate(zip(rids, starts, ends)):
            s = series.get(rid)
            if s is None or not s.period_s:
                continue
            coarse = window_mean(s, a, b)[1]
            if coarse > 0:
                out[j].append((q, s.source, coarse, (int(b) - int(a)) / 1e9))
    return out


# ---------------------------------------------------------------------------- explain

#: Columns that can tell two comparable rows apart, besides ``by`` (and sweep axes).
_KEYS = ["run_id", "experiment", "model", "phase", "mode", "variant", "repeat", "gap_s", "sync", "clocks_mode",
         "mps", "backend", "precision", "batch", "imgsz_h", "imgsz_w", "n_models", "sweep"]
#: Of those, the ones a sentence names when they differ between pairs (the others are
#: the model's own attributes, or follow from these).
_SETTINGS = ["phase", "mode", "variant", "repeat", "gap_s", "sync", "clocks_mode", "mps", "run_id"]


def explain(runs: pd.DataFrame, telemetry: pd.DataFrame, by: str, baseline=None,
            metric: str = "p50_ms") -> List[str]:
    """One sentence per pair of ok rows that differ in ``by`` (a runs column): each row
    against the row of the same model and other settings whose ``by`` is ``baseline``
    (default ``alone`` for ``phase``, else the smallest value), with the latency change
    (``metric``) and what the telemetry of the two measured windows says."""
    if by not in runs.columns:
        raise UserError("by", f"{by!r} is not a runs column")
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    ok = ok[ok[by].notna()].reset_index(drop=True)
    if not len(ok):
        return []
    values = _ordered(ok[by].unique())
    if baseline is None:
        baseline = "alone" if by == "phase" and "alone" in values else values[0]
    elif baseline not in values:
        raise UserError("baseline", f"{baseline!r} is not a value of {by} here (have {', '.join(map(str, values))})")
    tel = window_telemetry(ok, telemetry)
    if "energy_mj_per_inf" in ok.columns:  # the window's energy per inference (results.energy), where known
        tel["energy_mj_per_inf"] = pd.to_numeric(ok["energy_mj_per_inf"], errors="coerce").to_numpy()
        why = ok["energy_why"].astype(str) if "energy_why" in ok.columns else pd.Series("", index=ok.index)
        tel["energy_shared"] = why.str.startswith("together:").to_numpy()  # a window of several models
    keys = _pair_keys(ok, by)
    key_frame = ok[keys].astype(object).where(ok[keys].notna(), "<none>") if keys else None
    groups = key_frame.groupby(keys, sort=False).indices if keys else {(): np.arange(len(ok))}
    ctx_cols = [k for k in keys if (k in _SETTINGS or k.startswith("axis:")) and ok[k].nunique(dropna=False) > 1]
    pairs = []  # (baseline row, other row), by group then by value of ``by``
    for idx in groups.values():
        g = ok.iloc[idx]
        base = g[g[by] == baseline]
        if len(base):
            others = g[g[by] != baseline]
            pairs += [(base.index[0], i) for i in sorted(others.index, key=lambda i: values.index(ok.at[i, by]))]
    if not pairs:
        return []
    ctx = {i: [_desc(k, ok.at[i, k]) for k in ctx_cols] for _, i in pairs}
    if "run_id" in ctx_cols:  # name the run only where the rest of the label does not tell it apart
        j = ctx_cols.index("run_id")
        short = {i: c[:j] + c[j + 1:] for i, c in ctx.items()}
        labels = {(ok.at[b, "model"], ok.at[i, "model"], ok.at[i, by], tuple(short[i])) for b, i in pairs}
        if len(labels) == len(pairs):
            ctx = short
    # each row's condition: the rows that differ from it in nothing but the repeat and run
    same = [c for c in _KEYS + sorted(c for c in ok.columns if c.startswith("axis:")) + [by]
            if c in ok.columns and c not in ("repeat", "run_id")]
    cond = pd.Series(["\x1f".join(map(str, t)) for t in ok[same].itertuples(index=False, name=None)], index=ok.index)
    narrow = ok[[c for c in dict.fromkeys(UNIT_COLUMNS + (metric,)) if c in ok.columns]]
    of_cond = {c: narrow.iloc[idx] for c, idx in cond.groupby(cond.to_numpy(), sort=False).indices.items()}
    out = []
    for b, i in pairs:
        rb, ri = ok.loc[b], ok.loc[i]
        if rb["model"] == ri["model"]:
            head = f"{ri['model']} {_desc(by, ri[by])} vs {_desc(by, rb[by])}"
        else:
            head = f"{ri['model']} ({_desc(by, ri[by])}) vs {rb['model']} ({_desc(by, rb[by])})"
        if ctx[i]:
            head += ", " + ", ".join(ctx[i])
        stages = _stages(rb, ri)
        ca, cb = of_cond[cond[b]], of_cond[cond[i]]
        several = max(len(ca), len(cb)) > 1  # the sentence's numbers are this pair's; the test is over all
        noise, shown = _noise(metric, ca, cb, several)
        latency = _latency(metric, rb.get(metric), ri.get(metric), shown, "here " if several else "")
        out.append(f"{head}: {latency}{noise}{stages}"
                   f"{queueing(ri, _desc(by, ri[by]))}{queueing(rb, _desc(by, rb[by]))}; "
                   f"{_telemetry(tel.loc[b], tel.loc[i])}.")
    return out


#: from arrival this many times the service (medians): the frames waited in a queue
QUEUEING = 1.5


def queueing(r: pd.Series, label: str = "") -> str:
    """``; <label>: frames queued (from arrival p50 9.1 ms, service 2.0 ms), deadline 33 ms
    missed by 12 % [8, 17], 30 of 600 frames dropped``: an open loop's row where its frames
    waited (from-arrival median over ``QUEUEING`` times the service's) or missed their
    deadline; "" otherwise."""
    def num(c):
        v = r.get(c)
        return float(v) if v is not None and not pd.isna(v) else float("nan")

    since, service = num("p50_from_arrival_ms"), num("p50_ms")
    miss, lo, hi = num("deadline_miss"), num("deadline_miss_lo"), num("deadline_miss_hi")
    dropped, frames = num("dropped"), num("frames")
    parts = []
    if since == since and service > 0 and since > QUEUEING * service:
        parts.append(f"frames queued behind slower inferences (from arrival p50 {fmt_ms(since)} ms, service "
                     f"{fmt_ms(service)} ms)")
    if miss == miss and miss > 0:
        ci = f" [{lo * 100:.1f}, {hi * 100:.1f}]" if lo == lo and hi == hi else ""
        parts.append(f"deadline {num('deadline_ms'):g} ms missed by {miss * 100:.1f} %{ci}")
    if dropped == dropped and dropped > 0:
        parts.append(f"{dropped:.0f} of {frames:.0f} frames dropped")
    if not parts:
        return ""
    return "; " + (f"{label}: " if label else "") + ", ".join(parts)


#: how a sentence names each pipeline stage (``schema.STAGES``: runs columns ``<stage>_p50_ms``)
_STAGE_NAMES = {"load": "load", "pre": "preprocess", "infer": "inference", "post": "postprocess",
                "metrics": "metric work"}


def _stages(a: pd.Series, b: pd.Series) -> str:
    """Where a pipeline row's time moved, stage by stage, largest change first (stages
    measured on one side only, such as the metric work of validation vs without_val,
    count as 0 on the other); empty where neither row has stage times."""
    diffs = []
    for st in STAGES:
        name = _STAGE_NAMES[st]
        x, y = a.get(f"{st}_p50_ms"), b.get(f"{st}_p50_ms")
        x = None if x is None or pd.isna(x) else float(x)
        y = None if y is None or pd.isna(y) else float(y)
        if x is None and y is None:
            continue
        diffs.append((name, (y or 0.0) - (x or 0.0), x is None or y is None))
    if not diffs:
        return ""
    diffs.sort(key=lambda d: -abs(d[1]))
    parts = [f"{name} {d:+.2f}" + (" (one side only)" if one else "") for name, d, one in diffs]
    return "; stages (p50, ms): " + ", ".join(parts)


def _ordered(values) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _pair_keys(ok: pd.DataFrame, by: str) -> List[str]:
    """The columns two rows must share to be compared: the candidates present, less
    ``by`` and less those that move with it (no value of theirs occurs with two values of
    ``by``: the run when comparing MPS runs, ``n_models`` when comparing phases, the model
    name when each gap was its own model) and those ``by`` decides (one value of theirs for
    each value of ``by``: the ``gap_s`` of a timing variant)."""
    cands = [c for c in _KEYS + sorted(c for c in ok.columns if c.startswith("axis:")) if c in ok.columns and c != by]
    keep = []
    for c in cands:
        col = ok[c].map(str)
        pair = pd.DataFrame({"c": col, "by": ok[by].map(str)})
        moves = pair.groupby("c")["by"].nunique().max() <= 1
        decided = pair.groupby("by")["c"].nunique().max() <= 1 and col.nunique() > 1
        if not moves and not decided:
            keep.append(c)
    return keep


def _desc(col: str, v) -> str:
    if col in ("phase", "mode"):
        return str(v)
    if col == "mps":
        return "MPS on" if bool(v) else "MPS off"
    if col == "clocks_mode":
        return f"clocks {v}"
    if col == "gap_s":
        return f"gap {v:g} s"
    if col == "run_id":
        return f"run {v}"
    if col == "repeat":
        return f"repeat {int(v)}"
    name = col[len("axis:"):] if col.startswith("axis:") else col  # a sweep axis: its spec field
    return f"{name}={v:g}" if isinstance(v, float) else f"{name}={v}"


def fmt_ms(x: float) -> str:
    """A latency in ms, to the digits that matter: 0.48, 4.55, 12.3, 250."""
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}" if abs(x) < 100 else f"{x:.0f}"


def _latency(metric: str, a, b, shown: bool = False, where: str = "") -> str:
    """The change of ``metric`` between two rows; "barely differs" only where no test over
    the runs says otherwise (``shown``); ``where`` ("here ") marks one pair of several."""
    name = metric[:-3].replace("gpu_", "GPU ") if metric.endswith("_ms") else metric
    if a is None or b is None or pd.isna(a) or pd.isna(b) or a <= 0:
        return f"{name} not measured on both sides"
    change = b / a - 1
    if abs(change) <= TOLERANCES["latency"] and not shown:
        return f"{name} barely differs {where}({fmt_ms(a)} → {fmt_ms(b)} ms, {change * 100:+.1f} %)"
    digits = ".1f" if abs(change) <= TOLERANCES["latency"] else ".0f"
    return f"{name} {change * 100:+{digits}} % {where}({fmt_ms(a)} → {fmt_ms(b)} ms)"


def _noise(metric: str, a: pd.DataFrame, b: pd.DataFrame, several: bool = False) -> Tuple[str, bool]:
    """What the runs show of the change of ``metric`` (``p50_ms``, ``mean_ms``, ``gpu_*``)
    between two conditions (their rows: every repeat and run of each), tested on the runs
    (``results.verdict``): shown slower or faster, not shown (and what could have been),
    or untested and why; and whether it was shown. ``several``: the conditions have more
    rows than the sentence's pair, so the test is said to be over all of them."""
    if not metric.endswith("_ms"):
        return "", False
    v = compare_rows(a, b, metric)
    conf = f"{v.confidence * 100:g} %"
    if v.verdict == "—":
        return f" (untested: {v.why.split(';')[0]})", False
    runs = f"{v.k_a} pairs of runs" if v.paired else f"{v.k_a} and {v.k_b} runs"
    over = "over all its runs, " if several else ""
    if v.verdict == "not shown":
        return (f"; {over}not shown at {conf} over {runs} (×{v.ratio:.3f} [{v.lo:.3f}, {v.hi:.3f}]; a change of "
                f"{(v.detectable - 1) * 100:.0f} % would have been)"), False
    return f"; {over}{v.verdict} at {conf} over {runs} (×{v.ratio:.3f} [{v.lo:.3f}, {v.hi:.3f}])", True


def _telemetry(a: pd.Series, b: pd.Series) -> str:
    parts = []

    def both(col):
        return not (pd.isna(a[col]) or pd.isna(b[col]))

    def add(col, label, unit, tol, rel=False, small=False):
        if not both(col):
            return
        x, y = a[col], b[col]
        same = abs(y - x) <= tol * abs(x) if rel else abs(round(y) - round(x)) <= tol
        f = (lambda v: f"{v:.0f}" if abs(v) >= 10 else f"{v:.2g}") if small else (lambda v: f"{v:.0f}")
        parts.append(f"{label} {f(x)} → {f(y)}{unit}" + (" (unchanged)" if same else ""))

    add("tel_gpu_util_pct", "GPU utilization", " %", TOLERANCES["gpu_util_pct"])
    add("tel_gpu_freq_mhz", "SM clock", " MHz", TOLERANCES["gpu_freq_mhz"], rel=True)
    add("tel_power_w", "power", " W", TOLERANCES["power_w"], rel=True, small=True)  # a Jetson rail: under 1 W
    add("tel_temp_c", "temperature", " °C", TOLERANCES["temp_c"])
    if both("tel_pstate"):
        x, y = int(a["tel_pstate"]), int(b["tel_pstate"])
        parts.append(f"P-state P{x} → P{y}" + (" (unchanged)" if x == y else ""))
    if both("tel_throttle_frac") and (a["tel_throttle_frac"] > 0 or b["tel_throttle_frac"] > 0):
        x, y = a["tel_throttle_frac"] * 100, b["tel_throttle_frac"] * 100
        same = abs(y - x) <= TOLERANCES["throttle_frac"] * 100
        parts.append(f"throttled in {x:.0f} → {y:.0f} % of readings" + (" (unchanged)" if same else ""))
    add("tel_cpu_util_pct", "CPU load", " %", TOLERANCES["cpu_util_pct"])
    if "energy_mj_per_inf" in a.index and both("energy_mj_per_inf"):
        x, y = float(a["energy_mj_per_inf"]), float(b["energy_mj_per_inf"])
        same = abs(y - x) <= TOLERANCES["energy"] * abs(x)
        shared = any(bool(r.get("energy_shared", False)) for r in (a, b))
        parts.append(f"energy {x:.3g} → {y:.3g} mJ per inference" + (" (unchanged)" if same else "")
                     + (" (together: the whole window's energy over every model's inferences in it)" if shared
                        else ""))
    if not parts:
        return "no telemetry was measured in these windows"
    return "in the same windows " + ", ".join(parts)

