"""Per-second aggregates of a row's measured inferences: the ``aggregates`` table.

A long run (a soak that waits for the GPU to throttle) need not keep every inference to
show how its latency moved: per runs row and per second (``BIN_S``) of its measured
inferences, the count, the median and the slowest host latency, and the same of the GPU
time. They are written whatever ``timing.samples`` keeps. Each value is of the inferences
that started in that second: a real percentile of them, never an average of percentiles.

>>> from trt_ray_bench import results
>>> r = results.load("results/soak")
>>> a = r.aggregates[r.aggregates.in_window]
>>> a.groupby("model").host_p50_ms.describe()        # how the per-second medians spread
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import pandas as pd

from ._keys import SAMPLE_KEYS, row_keys

#: the width of a bin, in seconds: a row's measured inferences are binned by their start,
#: from its window's start (the first measured start where it has no window) in steps of it
BIN_S = 1.0

#: the value columns of one bin, in the schema's order
COLUMNS = ("t_ns", "in_window", "n", "host_p50_ms", "host_max_ms", "gpu_p50_ms", "gpu_max_ms")


def per_second(t_start_ns: np.ndarray, t_end_ns: np.ndarray, gpu_ms: Optional[np.ndarray], in_window: np.ndarray,
               anchor_ns: int, bin_s: float = BIN_S) -> Dict[str, np.ndarray]:
    """The bins of one row's measured inferences (``t_start_ns``, ``t_end_ns``: their host
    latency, ``gpu_ms`` or None, ``in_window``: equal lengths, in time order): ``COLUMNS`` as arrays, one
    entry per bin that holds an inference. A bin ``[t_ns, t_ns + bin_s)`` starts
    ``anchor_ns`` plus a whole number of ``bin_s`` (before ``anchor_ns`` too); within one
    second the inferences in the window and those outside it are two bins."""
    n = len(t_start_ns)
    if n == 0:
        return {"t_ns": np.empty(0, np.int64), "in_window": np.empty(0, bool), "n": np.empty(0, np.int64),
                **{c: np.empty(0) for c in COLUMNS[3:]}}
    bin_ns = int(round(bin_s * 1e9))
    ts = np.asarray(t_start_ns, dtype=np.int64)
    te = np.asarray(t_end_ns, dtype=np.int64)
    key = ts - np.int64(anchor_ns)
    key //= bin_ns
    key *= 2
    key += ~np.asarray(in_window, dtype=bool)  # in the window first, then the rest of that second
    gpu = None if gpu_ms is None else np.asarray(gpu_ms, dtype=np.float64)
    if n > 1 and (key[1:] < key[:-1]).any():  # not in time order: sort (stable, so ties keep it)
        order = np.argsort(key, kind="stable")
        key, ts, te = key[order], ts[order], te[order]
        gpu = None if gpu is None else gpu[order]
    cuts = np.flatnonzero(key[1:] != key[:-1]) + 1
    lo = np.concatenate(([0], cuts))
    hi = np.concatenate((cuts, [n]))
    del cuts
    gk = key[lo]
    del key
    k = len(lo)
    h50, hmax = np.empty(k), np.empty(k)
    g50, gmax = np.full(k, np.nan), np.full(k, np.nan)
    for i in range(k):
        x = (te[lo[i]:hi[i]] - ts[lo[i]:hi[i]]) / 1e6
        h50[i] = np.median(x)
        hmax[i] = x.max()
        if gpu is not None:
            g = gpu[lo[i]:hi[i]]
            g = g[np.isfinite(g)]
            if g.size:
                g50[i] = np.median(g)
                gmax[i] = g.max()
    bins = gk // 2
    return {"t_ns": np.int64(anchor_ns) + bins * bin_ns, "in_window": (gk % 2) == 0,
            "n": (hi - lo).astype(np.int64), "host_p50_ms": h50, "host_max_ms": hmax,
            "gpu_p50_ms": g50, "gpu_max_ms": gmax}


def row_bins(aggregates: Optional[pd.DataFrame], runs: pd.DataFrame) -> Dict[tuple, pd.DataFrame]:
    """The in-window bins of each runs row present in ``aggregates``, in time order, keyed
    by the row's ``SAMPLE_KEYS`` as ``row_keys`` normalises them."""
    if aggregates is None or not len(aggregates) or not len(runs):
        return {}
    a = aggregates
    if "in_window" in a.columns:
        a = a[a["in_window"].astype(bool)]
    a = pd.concat([row_keys(a), a[[c for c in ("t_ns", "n", "host_p50_ms") if c in a.columns]]], axis=1)
    a = a.sort_values("t_ns", kind="stable")
    return {key: frame for key, frame in a.groupby(SAMPLE_KEYS, sort=False)}
