"""The warnings a careful engineer would raise about each measured row, as values:
``{"code": ..., "message": ...}``, from the runs, samples and telemetry tables.

>>> from trt_ray_bench import results
>>> r = results.load("results/gap_study")
>>> results.diagnose(r.runs, r.samples, r.telemetry, r.aggregates)   # a list per runs row

Two parts: what a row's latency series says (``series_diagnostics``: drift, warmup_short),
which a run's driver computes per phase, on each row's in-window inferences, before it
drops them; and what the runs table and the telemetry say, at the end. ``diagnose`` does
both for a table of runs; where a row's samples were not kept (``timing.samples: none``)
the series' part comes from its per-second aggregates (``bins_diagnostics``) and says so.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from ..telemetry.nvml import decode_throttle_reasons
from ..timing._stats import CONFIDENCE, CV_WARN, DRIFT_WARN, MIN_NEFF, median_interval, percentile_min_n
from ._keys import SAMPLE_KEYS, measured, row_keys, row_windows
from .aggregates import row_bins
from .explain import NOT_THROTTLE, QUANTITIES, coarse_telemetry, fmt_ms, in_window, readings
from .foreign import foreign_load as _foreign_load

#: When each diagnostic fires; every latency is the host latency of the row's measured
#: (in-window) inferences, the series its statistics are computed over.
THRESHOLDS: Dict[str, object] = {
    # cv: the standard deviation above this share of the mean
    "cv": CV_WARN,
    # drift: the median of the second half differs from the first half's by more than
    # this share (medians, so a few outliers are the cv's business, not a drift); needs
    # at least drift_min_n inferences. Where the samples were not kept (timing.samples:
    # none), the median of the per-second medians of each half of the row's seconds
    # (split where half its inferences are done), from at least drift_min_bins seconds.
    # From samples, the halves' medians must also differ beyond their own noise (their
    # order-statistic intervals do not overlap): short noisy rows differ by chance
    "drift": DRIFT_WARN,
    "drift_min_n": 20,
    "drift_min_bins": 2,
    # few_samples: below these counts no distribution-free interval of the percentile
    # exists at the row's confidence (``timing._stats.percentile_min_n``: at 95 %, p50 6,
    # p90 36, p95 72, p99 368); such tail percentiles are given as NaN (—). The figures
    # here are those at 95 %; each row is checked at its own level.
    "min_samples": {f"p{q}": percentile_min_n(q) for q in (50, 90, 95, 99)},
    # autocorrelated: consecutive inferences are dependent enough that the row's effective
    # sample size (``n_eff`` of its median) is at most 1/autocorrelated of ``n``: an
    # interval that treated them as independent would be sqrt(n / n_eff) times too narrow
    # (the row's own intervals account for it, or are not given)
    "autocorrelated": 2.0,
    # clock_changed: the GPU (SM) clock readings within the window span more than this
    # share of their highest value
    "clock_change": 0.05,
    # start_skew: the models of a together phase began further apart than this many of
    # the row's median inferences (skew > start_skew_latencies x p50): the early models
    # ran at least that many inferences before all were running. Relative, not absolute:
    # 1 ms is 3 inferences of a 0.3 ms model and 1 % of one of a 100 ms model.
    "start_skew_latencies": 1.0,
    # short_window: a together window that lasted this share less than the duration asked
    # (with iterations asked: any inference fewer than asked; validation and without_val
    # ask for one pass over the set, n_images, whatever the spec's iterations)
    "short_window": 0.05,
    # warmup_short: latency was still falling when measuring began. The median of the
    # first warmup_head share of the measured inferences (the head) is more than
    # warmup_trend above the median of the rest, above the rest's 75th percentile (a
    # shift beyond the rest's own jitter, not a few slow ones) and above the median of
    # the next warmup_head share (falling, not a bump), and the head's median interval lies
    # above the rest's (beyond the noise). Needs warmup_min_n inferences.
    # Without samples: the same of the per-second medians (the head: the seconds holding
    # the first warmup_head share of the inferences), from at least warmup_min_bins seconds
    "warmup_trend": 0.05,
    "warmup_head": 0.10,
    "warmup_min_n": 50,
    "warmup_min_bins": 20,
    # repeat_spread: the p50 of one model, mode and phase in the repeats of a run spans
    # more than this share of their median (a difference between two conditions smaller
    # than that is not shown by one repeat of each)
    "repeat_spread": 0.10,
    # telemetry_coarse: no threshold. A window shorter than the period an averaged reading
    # covers (the telemetry's avg_s: NVML power 1 s on Ampere and newer, NVML utilization
    # 1/6 s, psutil's CPU load and tegrastats' loads one polling interval) has no value of
    # that quantity (results.window_telemetry gives NaN): the row names each such quantity
    # foreign_load: processes that are not the run's (telemetry.foreign) used more than
    # foreign_cpu_pct % of one core on average over the row's window (an idle machine's
    # daemons use a few %, a busy process 50 to 100 % and more), or another trb run, or
    # another process on the experiment's GPU was seen during it; the message names the
    # processes at or above foreign_name_pct % of a core
    "foreign_cpu_pct": 10.0,
    "foreign_name_pct": 2.0,
    # dla_idle: no threshold. A row of a model on a DLA core (runs column dla_core) whose
    # every tegrastats reading of that core within the measured window says it was off
    # (NVDLA<N> off); not checked without tegrastats readings of the core
}

CODES = ("cv", "drift", "few_samples", "autocorrelated", "warmup_short", "clock_changed", "throttle",
         "cooldown_timeout", "start_skew", "short_window", "repeat_spread", "telemetry_coarse", "foreign_load",
         "dla_idle")


def diagnose(runs: pd.DataFrame, samples: Optional[pd.DataFrame], telemetry: Optional[pd.DataFrame],
             aggregates: Optional[pd.DataFrame] = None, series: Optional[Sequence[List[dict]]] = None) -> pd.Series:
    """Per runs row (same index), a list of ``{"code", "message"}`` (codes in ``CODES``,
    in that order; thresholds in ``THRESHOLDS``); rows not ``ok`` get an empty list. The
    telemetry window of a row is ``window_start_ns..window_end_ns``, else its measured
    inferences' span. Samples, telemetry or aggregates may be empty: what needs them is
    then not checked.

    The series' part (``series_diagnostics``) is computed from a row's in-window samples,
    else from its in-window ``aggregates`` (``bins_diagnostics``: "from per-second
    medians"); ``series``: per row, that part computed already (a run's driver does it per
    phase, on the whole series, before it drops the samples), used as it is."""
    T = THRESHOLDS
    lists: List[List[dict]] = [[] for _ in range(len(runs))]
    if not len(runs):
        return pd.Series(lists, index=runs.index, dtype=object)
    ok = (runs["status"] == "ok").to_numpy() if "status" in runs.columns else np.ones(len(runs), bool)
    have_samples = samples is not None and len(samples) > 0
    if have_samples:
        meas = measured(samples)
        host = meas["host_ms"].to_numpy(np.float64)
        groups = meas.groupby(SAMPLE_KEYS, sort=False).indices
    else:
        host, groups = np.empty(0), {}
    keys = list(row_keys(runs).itertuples(index=False, name=None))
    bins = row_bins(aggregates, runs) if series is None else {}
    win = row_windows(runs, samples if have_samples else None)
    starts, ends = win["start_ns"].to_numpy(), win["end_ns"].to_numpy()
    freq = readings(telemetry, "gpu_freq_mhz")
    thr = readings(telemetry, "throttle_reasons")

    def col(name):  # numbers, NaN where absent (a None in an object column too)
        if name not in runs.columns:
            return np.full(len(runs), np.nan)
        return pd.to_numeric(runs[name], errors="coerce").to_numpy(np.float64)

    n_col, cv_col, skew, iters, dur, wins, warm_n, p50, n_img = (col(c) for c in (
        "n", "cv", "start_skew_us", "iterations", "duration_s", "window_s", "warmup_n", "p50_ms", "n_images"))
    n_eff, acf1, ratio, conf, ci_lo = (col(c) for c in ("n_eff", "acf1", "block_ratio", "confidence", "p50_ci_lo_ms"))
    phase = runs["phase"].to_numpy() if "phase" in runs.columns else np.full(len(runs), None)
    mode = runs["mode"].to_numpy() if "mode" in runs.columns else np.full(len(runs), None)
    one_pass = np.isin(mode.astype(str), ("validation", "without_val")) & np.isfinite(n_img)
    iters = np.where(one_pass, n_img, iters)  # trees written before build_tables stored n_images there
    dur = np.where(one_pass, np.nan, dur)
    rids = runs["run_id"].to_numpy() if "run_id" in runs.columns else np.full(len(runs), None)
    oc, cool_c = col("oc_events"), col("cooldown_temp_c")
    oc_detail = runs["oc_events_detail"].to_numpy() if "oc_events_detail" in runs.columns else np.full(len(runs), None)
    settings = runs["settings"].to_numpy() if "settings" in runs.columns else np.full(len(runs), None)
    for j in range(len(runs)):
        if not ok[j]:
            continue
        found = lists[j]

        def add(code: str, message: str) -> None:
            found.append({"code": code, "message": message})

        pos = groups.get(keys[j])
        x = host[pos] if pos is not None else np.empty(0)
        n = int(n_col[j]) if not pd.isna(n_col[j]) else (len(x) if have_samples else None)
        cv = cv_col[j] if not pd.isna(cv_col[j]) else (_cv(x) if len(x) > 1 else np.nan)
        if cv > T["cv"]:
            add("cv", f"latency is unstable: its standard deviation is {cv * 100:.0f} % of the mean "
                      f"(above {T['cv'] * 100:.0f} %)")
        if series is not None:
            found.extend(series[j])
        elif len(x):
            found.extend(series_diagnostics(x, warm_n[j]))
        elif keys[j] in bins:
            b = bins[keys[j]]
            found.extend(bins_diagnostics(b["n"].to_numpy(np.int64), b["host_p50_ms"].to_numpy(np.float64),
                                          warm_n[j]))
        if n is not None:
            level = conf[j] if np.isfinite(conf[j]) else CONFIDENCE
            need = {f"p{q}": percentile_min_n(q, level) for q in (50, 90, 95, 99)}
            weak = [p for p, k in need.items() if n < k]
            if n == 0:
                add("few_samples", "no inference was measured in the window: the row has no statistics")
            elif weak:
                needs = ", ".join(f"{p} {need[p]}" for p in weak)
                add("few_samples", f"only {n} measured inferences: {_join(weak)} "
                                   f"{'has' if len(weak) == 1 else 'have'} no distribution-free {level * 100:g} % "
                                   f"interval below {needs} inferences"
                                   + (" (the tail percentiles are not given)" if weak != ["p50"] else ""))
            dep = _dependence_note(n, n_eff[j], acf1[j], ratio[j], bool(np.isfinite(ci_lo[j])))
            if dep:
                add("autocorrelated", dep)
        f = in_window(freq, rids[j], starts[j], ends[j])
        if f.size >= 2 and f.max() > 0:
            lo, hi = float(f.min()), float(f.max())
            if (hi - lo) / hi > T["clock_change"]:
                add("clock_changed", f"the GPU clock changed during the measured window: {f[0]:.0f} → {f[-1]:.0f} MHz "
                                     f"(between {lo:.0f} and {hi:.0f} MHz, {(hi - lo) / hi * 100:.0f} % apart)")
        r = in_window(thr, rids[j], starts[j], ends[j])
        if r.size:
            masks = r.astype(np.int64) & ~NOT_THROTTLE
            if masks.any():
                names = decode_throttle_reasons(int(np.bitwise_or.reduce(masks)))
                add("throttle", f"the GPU reported clock event (throttle) reasons during the measured window: "
                                f"{', '.join(names)} (in {int((masks != 0).sum())} of {r.size} readings)")
        if oc[j] > 0:
            add("throttle", f"the board counted {int(oc[j])} over-current event(s) during this phase"
                            + (f" ({oc_detail[j]})" if isinstance(oc_detail[j], str) and oc_detail[j] else "")
                            + ": each cuts the CPU and GPU clocks for a moment (a power supply or power mode too "
                              "small for the load)")
        late_hot = _cooldown_timeout(cool_c[j], settings[j])
        if late_hot:
            add("cooldown_timeout", late_hot)
        med = p50[j] if p50[j] > 0 else (float(np.median(x)) if len(x) else np.nan)  # rows without p50_ms
        if med > 0 and skew[j] > T["start_skew_latencies"] * med * 1e3:
            k = skew[j] / (med * 1e3)
            add("start_skew", f"the models started {skew[j]:.0f} µs apart, {k:.1f} of this model's median "
                              f"inferences ({fmt_ms(med)} ms; above {T['start_skew_latencies']:g}): the first "
                              f"models ran about {k:.0f} inference(s) before all of them were running")
        if phase[j] == "together" and n is not None:
            if not pd.isna(iters[j]) and n < iters[j]:
                add("short_window", f"the together window holds {n} of the {int(iters[j])} requested inferences")
            elif not pd.isna(dur[j]) and not pd.isna(wins[j]) and wins[j] < (1 - T["short_window"]) * dur[j]:
                add("short_window", f"the together window lasted {wins[j]:.3g} s of the {dur[j]:.3g} s requested")
    _repeat_spread(runs, ok, col("p50_ms"), lists)
    _telemetry_coarse(runs, telemetry, starts, ends, ok, lists)
    _foreign_load(runs, telemetry, starts, ends, ok, lists, THRESHOLDS)
    _dla_idle(runs, telemetry, starts, ends, ok, lists)
    order = {c: i for i, c in enumerate(CODES)}
    for found in lists:  # in CODES' order, whichever part found them
        found.sort(key=lambda d: order.get(d["code"], len(order)))
    return pd.Series(lists, index=runs.index, dtype=object)


def series_diagnostics(x: np.ndarray, warmup_n: Optional[float] = None) -> List[dict]:
    """``drift`` and ``warmup_short`` of one row's measured (in-window) host latencies
    ``x``, in time order; ``warmup_n``: the warm-up it had (for the message)."""
    T = THRESHOLDS
    x = np.asarray(x, dtype=np.float64)
    found: List[dict] = []
    if len(x) >= T["drift_min_n"]:
        h = len(x) // 2
        if _apart(x[:h], x[h:]):
            found += _drift(float(np.median(x[:h])), float(np.median(x[h:])))
    if len(x) >= T["warmup_min_n"]:
        k = max(1, int(round(T["warmup_head"] * len(x))))
        if _apart(x[:k], x[k:]):
            found += _warmup_short(x, k, f"{T['warmup_head'] * 100:.0f} % of the measured inferences (median", "",
                                   warmup_n)
    return found


def _apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the medians of two parts of a series differ by more than their own noise:
    their order-statistic intervals (at the default confidence) do not overlap. A share
    above the threshold alone is what a short row of noisy inferences shows by chance
    (at 50 inferences with a cv of 20 %, the halves' medians differ by 10 % in one row of
    six), so ``drift`` and ``warmup_short`` need both."""
    la, ha = median_interval(a)
    lb, hb = median_interval(b)
    return bool(np.isfinite([la, ha, lb, hb]).all() and (la > hb or lb > ha))


def _warmup_short(x: np.ndarray, k: int, head: str, how: str, warmup_n) -> List[dict]:
    """``warmup_short`` where the first ``k`` values of ``x`` (``head`` names them) are
    slower than the rest by more than the threshold, than its upper quartile and than the
    next ``k``: latency still falling when measuring began; ``how``: what the values are."""
    m1, m2 = float(np.median(x[:k])), float(np.median(x[k:2 * k]))
    rest, q75 = (float(v) for v in np.percentile(x[k:], (50, 75)))
    if not (rest > 0 and m1 > (1 + THRESHOLDS["warmup_trend"]) * rest and m1 > q75 and m1 > m2):
        return []
    return [{"code": "warmup_short", "message":
             f"latency was still falling when measuring began: the first {head} {fmt_ms(m1)} ms) were "
             f"{(m1 / rest - 1) * 100:.0f} % slower than the rest ({fmt_ms(rest)} ms{how}); lengthen the "
             f"warm-up{_warmup_was(warmup_n)}"}]


def _drift(a: float, b: float, how: str = "") -> List[dict]:
    """``drift`` where the median of the second half (``b``) differs from the first's
    (``a``) by more than its threshold; ``how``: what the halves' medians were taken of."""
    d = b / a - 1 if a > 0 else 0.0
    if abs(d) <= THRESHOLDS["drift"]:
        return []
    return [{"code": "drift", "message":
             f"latency drifted: the median of the second half of the measured inferences is "
             f"{abs(d) * 100:.0f} % {'above' if d > 0 else 'below'} that of the first "
             f"({fmt_ms(a)} → {fmt_ms(b)} ms{how})"}]


def bins_diagnostics(n: np.ndarray, p50: np.ndarray, warmup_n: Optional[float] = None) -> List[dict]:
    """``drift`` and ``warmup_short`` of a row whose samples were not kept, from its
    in-window per-second bins (``aggregates``: counts ``n`` and medians ``p50``, in time
    order). The halves and the head are split where that share of its inferences is done;
    each part's value is the median of its seconds' medians. The messages say so."""
    T = THRESHOLDS
    n = np.asarray(n, dtype=np.int64)
    p50 = np.asarray(p50, dtype=np.float64)
    keep = (n > 0) & np.isfinite(p50)
    n, p50 = n[keep], p50[keep]
    found: List[dict] = []
    total = int(n.sum())
    done = np.cumsum(n)
    if len(n) >= T["drift_min_bins"] and total >= T["drift_min_n"]:
        h = min(max(int(np.searchsorted(done, total / 2.0)) + 1, 1), len(n) - 1)  # the second half begins there
        found += _drift(float(np.median(p50[:h])), float(np.median(p50[h:])),
                        "; from per-second medians: the samples were not kept")
    if len(n) >= T["warmup_min_bins"] and total >= T["warmup_min_n"]:
        k = max(1, int(np.searchsorted(done, T["warmup_head"] * total)) + 1)
        if 2 * k < len(n):
            found += _warmup_short(p50, k, f"{k} s of the measured inferences (median of per-second medians",
                                   "; from per-second medians: the samples were not kept", warmup_n)
    return found


def _warmup_was(warmup_n) -> str:
    return "" if warmup_n is None or pd.isna(warmup_n) else f" (it was {int(warmup_n)} inferences)"


def _cooldown_timeout(temp_c: float, settings) -> str:
    """The ``cooldown_timeout`` message of a row whose phase began above the temperature its
    cooldown waited for (``timing.cooldown`` in the row's ``settings``), or ``""``."""
    if not np.isfinite(temp_c) or not isinstance(settings, str):
        return ""
    try:
        cool = (json.loads(settings).get("timing") or {}).get("cooldown") or {}
    except (TypeError, ValueError, AttributeError):
        return ""
    want = cool.get("temp_c")
    if want is None or temp_c <= float(want):
        return ""
    return (f"the phase began at {temp_c:.0f} °C, above the {float(want):g} °C its cooldown waited for "
            f"{float(cool.get('timeout_s', 0)):g} s for (timing.cooldown): it was measured hotter than the others; "
            f"lengthen timing.cooldown.timeout_s or cool the board")


def _repeat_spread(runs: pd.DataFrame, ok: np.ndarray, p50: np.ndarray, lists: List[List[dict]]) -> None:
    """Rows of one run, model, mode and phase in two or more repeats whose p50 spans more
    than ``THRESHOLDS["repeat_spread"]`` of their median: each gets the same message."""
    keys = row_keys(runs).drop(columns="repeat")
    for idx in keys.groupby(list(keys.columns), sort=False).indices.values():
        idx = [i for i in idx if ok[i] and np.isfinite(p50[i])]
        if len(idx) < 2:
            continue
        v = p50[idx]
        med = float(np.median(v))
        spread = (float(v.max()) - float(v.min())) / med if med > 0 else 0.0
        if spread > THRESHOLDS["repeat_spread"]:
            msg = (f"p50 spans {spread * 100:.0f} % of its median across the {len(idx)} repeats "
                   f"({fmt_ms(float(v.min()))} to {fmt_ms(float(v.max()))} ms): a difference between conditions "
                   f"smaller than that is not shown by one repeat of each")
            for i in idx:
                lists[i].append({"code": "repeat_spread", "message": msg})


#: How a ``telemetry_coarse`` message names each quantity of ``explain.MEANS``, and the
#: sampler that averages it
_QUANTITY_NAMES = {"gpu_util_pct": ("GPU utilization", "utilization"), "power_w": ("GPU power", "power"),
                   "cpu_util_pct": ("CPU load", "CPU load"), "gpu_freq_mhz": ("GPU clock", "clock"),
                   "temp_c": ("GPU temperature", "temperature")}
_AVERAGED_BY = {"nvml": "NVML", "tegrastats": "tegrastats", "host": "psutil"}


def _telemetry_coarse(runs: pd.DataFrame, telemetry: Optional[pd.DataFrame], starts: np.ndarray, ends: np.ndarray,
                      ok: np.ndarray, lists: List[List[dict]]) -> None:
    """Ok rows whose window is shorter than the period some quantity's averaged readings
    cover: one message naming each, its period and the window's length."""
    if telemetry is None or not len(telemetry) or not ok.any():
        return
    for j, found in enumerate(coarse_telemetry(runs, telemetry, starts, ends)):
        if not ok[j] or not found:
            continue
        parts = []
        for k, (q, src, period, _) in enumerate(found):
            label = _QUANTITY_NAMES.get(q, (q, q))[0]
            who = _AVERAGED_BY.get(src, src)
            parts.append(f"{label} is averaged by {who} over {period:.3g} s" if k == 0
                         else f"{label} by {who} over {period:.3g} s")
        longest, length = max(p for _, _, p, _ in found), found[0][3]
        if len(found) == 1:
            q = found[0][0]
            what = f"its {_QUANTITY_NAMES.get(q, (q, q))[1]} is not known (no value given)"
        else:
            what = "their values are not known (none given)"
        lists[j].append({"code": "telemetry_coarse", "message":
                         f"{_join(parts)} but this window lasted {length:.2g} s: {what}; lengthen the phase "
                         f"(timing.duration_s or iterations) to at least {longest:.3g} s"})


def _dla_idle(runs: pd.DataFrame, telemetry: Optional[pd.DataFrame], starts: np.ndarray, ends: np.ndarray,
              ok: np.ndarray, lists: List[List[dict]]) -> None:
    """Ok rows of a model on a DLA core whose core tegrastats saw off in every reading of
    the measured window: the inferences did not run there."""
    if telemetry is None or not len(telemetry) or "dla_core" not in runs.columns or not ok.any():
        return
    core = pd.to_numeric(runs["dla_core"], errors="coerce").to_numpy(np.float64)
    rids = runs["run_id"].to_numpy() if "run_id" in runs.columns else np.full(len(runs), None)
    seen: Dict[int, object] = {}
    for j in np.flatnonzero(ok & np.isfinite(core)):
        c = int(core[j])
        if f"nvdla{c}_on" not in QUANTITIES:
            continue
        if c not in seen:
            seen[c] = readings(telemetry, f"nvdla{c}_on")
        on = in_window(seen[c], rids[j], starts[j], ends[j])
        if on.size and not (on > 0).any():
            lists[j].append({"code": "dla_idle", "message":
                             f"DLA core {c} was idle through the measured window (tegrastats printed NVDLA{c} off "
                             f"in all {on.size} of its readings): the inferences did not run on it; see the layers "
                             f"that fell back to the GPU (dla_gpu_layers) and whether the engine was built for "
                             f"core {c}"})


#: ``autocorrelated`` also fires where the medians of consecutive tenths spread at least
#: this many times as much as shuffled and WANDER_MARGIN times what the neighbours'
#: dependence explains (a 10-block ratio of independent inferences varies by about 25 %)
WANDER_RATIO = 1.5
WANDER_MARGIN = 1.3


def _dependence_note(n: int, n_eff: float, acf1: float, ratio: float, has_interval: bool) -> str:
    """The ``autocorrelated`` message of a row of ``n`` inferences, or ``""``."""
    if not n or not np.isfinite(n_eff) or n_eff <= 0:
        return ""
    explained = float(np.sqrt(n / n_eff))  # the spread of block medians the neighbours' dependence accounts for
    wander = bool(np.isfinite(ratio) and ratio >= WANDER_RATIO and ratio > WANDER_MARGIN * explained)
    if n / n_eff < THRESHOLDS["autocorrelated"] and not wander:
        return ""
    what = [f"lag-1 autocorrelation {acf1:.2f}"] if np.isfinite(acf1) else []
    if np.isfinite(ratio):
        what.append(f"medians of consecutive tenths spread {ratio:.1f}x as much as shuffled")
    head = "consecutive inferences are dependent" + (f" ({', '.join(what)})" if what else "")
    if not has_interval:
        more = int(np.ceil(n * 2 * max(MIN_NEFF / n_eff, 1.0) / 100.0) * 100)
        return (f"{head}: {n} inferences are worth about {n_eff:.0f} independent ones, too few for an interval of "
                f"the median under that dependence (none given); run it longer (at least {more} inferences)")
    if wander:
        return (f"{head}: the intervals account for the dependence between neighbouring inferences ({n} worth "
                f"about {n_eff:.0f} independent ones, {explained:.1f}x), not for a slower wander: the tenths' "
                f"medians spread {ratio:.1f}x, so the row's intervals may be up to {ratio / explained:.1f}x too "
                f"narrow; compare conditions over several runs (repeats in separate processes), as the verdicts do")
    return (f"{head}: {n} inferences are worth about {n_eff:.0f} independent ones; the intervals account for it "
            f"(an interval assuming independence would be {explained:.1f}x too narrow)")


def _cv(x: np.ndarray) -> float:
    m = float(x.mean())
    return float(x.std(ddof=1)) / m if m > 0 else np.nan


def _join(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
