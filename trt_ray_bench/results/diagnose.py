"""The warnings a careful engineer would raise about each measured row, as values:
``{"code": ..., "message": ...}``, from the runs, samples and telemetry tables.

>>> from trt_ray_bench import results
>>> r = results.load("results/gap_study")
>>> results.diagnose(r.runs, r.samples, r.telemetry)   # a list per runs row
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from ..telemetry.nvml import decode_throttle_reasons
from ..timing._stats import CV_WARN, DRIFT_WARN
from .explain import NOT_THROTTLE, SAMPLE_KEYS, fmt_ms, in_window, measured, readings, row_keys, row_windows

#: When each diagnostic fires; every latency is the host latency of the row's measured
#: (in-window) inferences, the series its statistics are computed over.
THRESHOLDS: Dict[str, object] = {
    # cv: the standard deviation above this share of the mean
    "cv": CV_WARN,
    # drift: the median of the second half differs from the first half's by more than
    # this share (medians, so a few outliers are the cv's business, not a drift); needs
    # at least drift_min_n inferences
    "drift": DRIFT_WARN,
    "drift_min_n": 20,
    # few_samples: a percentile needs at least one inference beyond it (p99: 100), and
    # never fewer than 10
    "min_samples": {"p50": 10, "p90": 10, "p95": 20, "p99": 100},
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
    # the next warmup_head share (falling, not a bump). Needs warmup_min_n inferences.
    "warmup_trend": 0.05,
    "warmup_head": 0.10,
    "warmup_min_n": 50,
    # repeat_spread: the p50 of one model, mode and phase in the repeats of a run spans
    # more than this share of their median (a difference between two conditions smaller
    # than that is not shown by one repeat of each)
    "repeat_spread": 0.10,
}

CODES = ("cv", "drift", "few_samples", "warmup_short", "clock_changed", "throttle", "start_skew", "short_window",
         "repeat_spread")


def diagnose(runs: pd.DataFrame, samples: Optional[pd.DataFrame], telemetry: Optional[pd.DataFrame]) -> pd.Series:
    """Per runs row (same index), a list of ``{"code", "message"}`` (codes in ``CODES``,
    thresholds in ``THRESHOLDS``); rows not ``ok`` get an empty list. The telemetry
    window of a row is ``window_start_ns..window_end_ns``, else its measured inferences'
    span. Samples or telemetry may be empty: what needs them is then not checked."""
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
    phase = runs["phase"].to_numpy() if "phase" in runs.columns else np.full(len(runs), None)
    mode = runs["mode"].to_numpy() if "mode" in runs.columns else np.full(len(runs), None)
    one_pass = np.isin(mode.astype(str), ("validation", "without_val")) & np.isfinite(n_img)
    iters = np.where(one_pass, n_img, iters)  # trees written before build_tables stored n_images there
    dur = np.where(one_pass, np.nan, dur)
    rids = runs["run_id"].to_numpy() if "run_id" in runs.columns else np.full(len(runs), None)
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
        if len(x) >= T["drift_min_n"]:
            h = len(x) // 2
            a, b = float(np.median(x[:h])), float(np.median(x[h:]))
            d = b / a - 1 if a > 0 else 0.0
            if abs(d) > T["drift"]:
                add("drift", f"latency drifted: the median of the second half of the measured inferences is "
                             f"{abs(d) * 100:.0f} % {'above' if d > 0 else 'below'} that of the first "
                             f"({fmt_ms(a)} → {fmt_ms(b)} ms)")
        if n is not None:
            weak = [p for p, need in T["min_samples"].items() if n < need]
            if n == 0:
                add("few_samples", "no inference was measured in the window: the row has no statistics")
            elif weak:
                needs = ", ".join(f"{p} {T['min_samples'][p]}" for p in weak)
                add("few_samples", f"only {n} measured inferences: {_join(weak)} "
                                   f"{'is' if len(weak) == 1 else 'are'} unreliable (at least: {needs})")
        if len(x) >= T["warmup_min_n"]:
            k = max(1, int(round(T["warmup_head"] * len(x))))
            m1, m2 = float(np.median(x[:k])), float(np.median(x[k:2 * k]))
            rest, q75 = (float(v) for v in np.percentile(x[k:], (50, 75)))
            if rest > 0 and m1 > (1 + T["warmup_trend"]) * rest and m1 > q75 and m1 > m2:
                wn = "" if pd.isna(warm_n[j]) else f" (it was {int(warm_n[j])} inferences)"
                add("warmup_short", f"latency was still falling when measuring began: the first "
                                    f"{T['warmup_head'] * 100:.0f} % of the measured inferences (median {fmt_ms(m1)} ms) "
                                    f"were {(m1 / rest - 1) * 100:.0f} % slower than the rest ({fmt_ms(rest)} ms); "
                                    f"lengthen the warm-up{wn}")
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
    return pd.Series(lists, index=runs.index, dtype=object)


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


def _cv(x: np.ndarray) -> float:
    m = float(x.mean())
    return float(x.std(ddof=1)) / m if m > 0 else np.nan


def _join(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
