"""What the report's figures draw of the samples, gathered in one pass over them, a runs
row at a time and only the columns drawn (``Results.iter_samples``): never more than one
row's samples in memory, whatever the size of the run.

- Distributions (box plots): per column, model and series, a ``Box``: the values
  themselves while all the boxes together hold at most ``EXACT_MAX`` (so a run of up to a
  million or two inferences is drawn exactly as from the whole table), else a histogram of
  ``PER_DECADE`` logarithmic bins per decade (quartiles and whiskers within 0.12 %, one
  outlier dot per bin).
- Timelines (latency over time), for the first ``MAX_RUNS`` runs with samples: a run of at
  most ``MAX_POINTS`` inferences keeps every one (drawn as before); a larger one keeps, per
  row, its points where it has fewer than ``COLUMNS`` (the figure's width in pixels), else
  per pixel column of the run's span the fastest, median and slowest of its inferences in
  that column (warm-up and measured apart), and every ``step``-th latency, as the figure
  decimated them before, for its scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..results.aggregates import BIN_S

#: time-axis figures: at most this many runs
MAX_RUNS = 6
#: a run of at most this many inferences is drawn point by point
MAX_POINTS = 20_000
#: the time-axis figure's width (inches) and resolution: its pixel columns are the bins
TIMELINE_WIDTH_IN = 10
DPI = 100
COLUMNS = TIMELINE_WIDTH_IN * DPI
#: values held as they are, all boxes together, before the largest become histograms
EXACT_MAX = 2_000_000
#: the histograms' bins: 10^LOG_LO .. 10^LOG_HI ms, PER_DECADE to a decade
LOG_LO, LOG_HI, PER_DECADE = -4, 6, 1000
NBINS = (LOG_HI - LOG_LO) * PER_DECADE

#: the per-second aggregates' bin, in nanoseconds
BIN_NS = int(round(BIN_S * 1e9))

#: the samples' columns the figures read
COLUMNS_READ = ("warmup", "in_window", "t_start_ns", "host_ms", "gpu_ms")


class Box:
    """The values of one box: exact (``parts``) until ``to_histogram``, then counts per
    logarithmic bin, with the exact minimum, maximum, count and sum."""

    def __init__(self) -> None:
        self.parts: List[np.ndarray] = []
        self.counts: Optional[np.ndarray] = None
        self.n = 0
        self.total = 0.0
        self.lo = np.inf
        self.hi = -np.inf

    @property
    def exact(self) -> bool:
        return self.counts is None

    def add(self, x: np.ndarray) -> None:
        if not len(x):
            return
        self.n += len(x)
        self.total += float(x.sum())
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        if self.counts is None:
            self.parts.append(x)
        else:
            self._bin(x)

    def _bin(self, x: np.ndarray) -> None:
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.floor((np.log10(np.where(x > 0, x, 10.0 ** LOG_LO)) - LOG_LO) * PER_DECADE)
        self.counts += np.bincount(np.clip(b, 0, NBINS - 1).astype(np.int64), minlength=NBINS)

    def to_histogram(self) -> None:
        if self.counts is not None:
            return
        self.counts = np.zeros(NBINS, np.int64)
        for x in self.parts:
            self._bin(x)
        self.parts = []

    def values(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.empty(0)

    def _value(self, k: float) -> float:
        """The ``k``-th smallest value (0-based, fractional: linear between neighbours, as
        ``np.percentile`` takes them), read from the histogram."""
        cum = np.cumsum(self.counts)

        def at(i: int) -> float:
            j = int(np.searchsorted(cum, i, side="right"))
            before = cum[j - 1] if j else 0
            frac = (i - before + 0.5) / self.counts[j]  # its place among the bin's values
            lo = 10.0 ** (LOG_LO + j / PER_DECADE)
            return float(np.clip(lo * 10.0 ** (frac / PER_DECADE), self.lo, self.hi))

        i = int(np.floor(k))
        v = at(i)
        return v if k == i or i + 1 >= self.n else v + (k - i) * (at(i + 1) - v)

    def stats(self) -> dict:
        """``matplotlib.cbook.boxplot_stats``' dict (whiskers at 1.5 IQR), for ``Axes.bxp``."""
        if self.exact:
            from matplotlib import cbook

            return cbook.boxplot_stats(self.values())[0]
        q1, med, q3 = (self._value(p * (self.n - 1)) for p in (0.25, 0.5, 0.75))
        iqr = q3 - q1
        lo_lim, hi_lim = q1 - 1.5 * iqr, q3 + 1.5 * iqr
        edges = 10.0 ** (LOG_LO + np.arange(NBINS + 1) / PER_DECADE)
        centre = np.sqrt(edges[:-1] * edges[1:])
        full = np.flatnonzero(self.counts)
        vals = np.clip(centre[full], self.lo, self.hi)
        vals[0], vals[-1] = self.lo, self.hi  # the extremes are known exactly
        inside = vals[(vals >= lo_lim) & (vals <= hi_lim)]
        whislo = float(inside.min()) if inside.size else q1
        whishi = float(inside.max()) if inside.size else q3
        fliers = vals[(vals < whislo) | (vals > whishi)]
        return {"mean": self.total / self.n, "med": med, "q1": q1, "q3": q3, "iqr": iqr,
                "cilo": med - 1.57 * iqr / np.sqrt(self.n), "cihi": med + 1.57 * iqr / np.sqrt(self.n),
                "whislo": whislo, "whishi": whishi, "fliers": fliers}


@dataclass
class Aggregated:
    """One row's inferences per pixel column: its centre (ns), fastest, median, slowest."""

    t: np.ndarray
    lo: np.ndarray
    med: np.ndarray
    hi: np.ndarray


@dataclass
class RunLine:
    """What the time-axis figure of one run draws (``digest``)."""

    run_id: str
    n: int
    t_min: int
    t_max: int
    #: every inference kept (``n <= MAX_POINTS``)
    exact: bool
    #: the pixel columns over the run's span (``COLUMNS``)
    width: int = COLUMNS
    #: the run's rows (labels) in the order their samples were recorded
    rows: List[object] = field(default_factory=list)
    model: Dict[object, str] = field(default_factory=dict)
    #: per row: (t_start_ns, host_ms, warm-up) of every inference it draws as a point
    points: Dict[object, Tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: per row and part (True: warm-up), its pixel columns
    columns: Dict[Tuple[object, bool], Aggregated] = field(default_factory=dict)
    #: per row, every ``step``-th host latency (the scale of a large run)
    strided: Dict[object, np.ndarray] = field(default_factory=dict)
    #: drawn from the per-second aggregates (a run that kept no samples: ``timing.samples:
    #: none``): per second the median (``med``) and the slowest (``hi``; ``lo`` = ``med``)
    per_second: bool = False

    @property
    def step(self) -> int:
        return max(1, -(-self.n // MAX_POINTS))

    def models(self) -> List[str]:
        return list(dict.fromkeys(self.model[r] for r in self.rows))

    def scale_values(self) -> np.ndarray:
        """The latencies the figure's scale is chosen from: every one drawn as a point
        where the run is small, else every ``step``-th."""
        if self.exact:
            parts = [self.points[r][1] for r in self.rows if r in self.points]
        else:
            parts = [self.strided[r] for r in self.rows if r in self.strided]
        return np.concatenate(parts) if parts else np.empty(0)


@dataclass
class Digest:
    """``boxes[col][(model, series)]``, the rows' order (``order``: per row label, the
    place of its first sample), each row's series, and the timelines of the first runs."""

    boxes: Dict[str, Dict[Tuple[str, str], Box]]
    series: Dict[object, str]
    order: Dict[object, float]
    lines: List[RunLine]
    #: runs with samples, in order (only the first MAX_RUNS have a line)
    runs_with_samples: List[str]

    #: (row label, column) of the rows with a value of the column
    has: set = field(default_factory=set)

    def series_order(self, col: str) -> List[str]:
        """Series with a value of ``col``, in the order their first samples were recorded."""
        out: List[str] = []
        for lb, _ in sorted(self.order.items(), key=lambda kv: kv[1]):
            s = self.series.get(lb)
            if (lb, col) in self.has and s not in out:
                out.append(s)
        return out

    def models_with(self, col: str) -> set:
        return {m for (m, _), box in self.boxes.get(col, {}).items() if box.n}


def _aggregate(t: np.ndarray, y: np.ndarray, t_min: int, t_max: int, cols: int) -> Aggregated:
    """Per pixel column of ``[t_min, t_max]`` holding some of ``t``, its centre and the
    fastest, median and slowest of ``y`` in it."""
    span = max(1, int(t_max) - int(t_min) + 1)
    b = ((t.astype(np.int64) - np.int64(t_min)) * cols) // span
    b = np.clip(b, 0, cols - 1)
    order = np.lexsort((y, b))
    b, y = b[order], y[order]
    cut = np.flatnonzero(b[1:] != b[:-1]) + 1
    start = np.concatenate(([0], cut))
    end = np.concatenate((cut, [len(b)]))
    mid_lo, mid_hi = start + (end - start - 1) // 2, start + (end - start) // 2
    centre = t_min + (b[start] + 0.5) * span / cols
    return Aggregated(centre, y[start], (y[mid_lo] + y[mid_hi]) / 2.0, y[end - 1])


def _flags(frame: pd.DataFrame, col: str, default: bool) -> np.ndarray:
    if col not in frame.columns:
        return np.full(len(frame), default)
    return frame[col].astype(bool).to_numpy()


def _numbers(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)


def digest(res, runs: pd.DataFrame, series: pd.Series, cols: Sequence[str] = ("host_ms", "gpu_ms")) -> Digest:
    """One pass over the samples of ``runs`` (rows of ``res.runs``; ``series``: each row's
    series label, same index) gathering what the figures draw (module doc)."""
    boxes: Dict[str, Dict[Tuple[str, str], Box]] = {c: {} for c in cols}
    if not len(runs):
        return Digest(boxes, {}, {}, [], [])
    info = res.samples_index(runs)
    order = {lb: float(o) for lb, o in info["order"].items() if np.isfinite(o)}
    per_run = res.samples_per_run()
    with_samples = [str(r) for r, n in zip(per_run["run_id"], per_run["n"]) if n > 0]
    lines: Dict[str, RunLine] = {}
    for _, r in per_run.iterrows():
        rid = str(r["run_id"])
        if rid in with_samples[:MAX_RUNS] and pd.notna(r["t_min"]):
            lines[rid] = RunLine(rid, int(r["n"]), int(r["t_min"]), int(r["t_max"]), int(r["n"]) <= MAX_POINTS,
                                 COLUMNS)
    rid_of = runs["run_id"].astype(str) if "run_id" in runs.columns else pd.Series("", index=runs.index)
    models = runs["model"].astype(str)
    has = set()
    exact_held = [0]

    def budget() -> None:  # the largest exact boxes become histograms while all hold too many
        while exact_held[0] > EXACT_MAX:
            big = max((b for by in boxes.values() for b in by.values() if b.exact), key=lambda b: b.n, default=None)
            if big is None:
                return
            exact_held[0] -= big.n
            big.to_histogram()

    for label, f in res.iter_samples(list(COLUMNS_READ), runs):
        warm = _flags(f, "warmup", False)
        timed = ~warm & _flags(f, "in_window", True)
        key = (models[label], series[label])
        for c in cols:
            v = _numbers(f, c)[timed]
            v = v[~np.isnan(v)]
            if len(v):
                box = boxes[c].setdefault(key, Box())
                box.add(v)
                if box.exact:
                    exact_held[0] += len(v)
                has.add((label, c))
        budget()
        line = lines.get(rid_of[label])
        if line is not None and "t_start_ns" in f.columns and len(f):
            t = pd.to_numeric(f["t_start_ns"], errors="coerce").to_numpy()
            y = _numbers(f, "host_ms")
            ok = ~np.isnan(t.astype(np.float64))
            t, y, w = t[ok].astype(np.int64), y[ok], warm[ok]
            line.rows.append(label)
            line.model[label] = models[label]
            if line.exact or len(t) <= line.width:
                line.points[label] = (t, y, w)
            else:
                for part in (True, False):
                    sel = (w == part) & ~np.isnan(y)
                    if sel.any():
                        line.columns[(label, part)] = _aggregate(t[sel], y[sel], line.t_min, line.t_max, line.width)
            if not line.exact:
                line.strided[label] = y[::line.step]
        del f
    for line in lines.values():
        line.rows.sort(key=lambda lb: order.get(lb, np.inf))
    room = MAX_RUNS - len(lines)
    for line in (_from_aggregates(res, runs, set(with_samples)) if room > 0 else [])[:room]:
        lines[line.run_id] = line
        with_samples.append(line.run_id)
    return Digest(boxes, {lb: series[lb] for lb in runs.index}, order,
                  [lines[r] for r in with_samples if r in lines], with_samples, has)


def _from_aggregates(res, runs: pd.DataFrame, skip: set) -> List[RunLine]:
    """The timelines of runs that kept no samples (``timing.samples: none``), from their
    per-second aggregates (``results.aggregates``): per row and second of its measured
    inferences, the median host latency (dot) up to the slowest (line)."""
    agg = getattr(res, "aggregates", None)
    if agg is None or not len(agg) or "run_id" not in agg.columns or not len(runs):
        return []
    agg = agg[~agg["run_id"].astype(str).isin(skip) & agg["host_p50_ms"].notna()]
    if not len(agg):
        return []
    from ..results._keys import SAMPLE_KEYS, row_keys

    label_of = dict(zip(row_keys(runs).itertuples(index=False, name=None), runs.index))
    out: List[RunLine] = []
    for rid, a in agg.groupby(agg["run_id"].astype(str), sort=False):
        t = a["t_ns"].to_numpy(np.int64)
        t_min, t_max = int(t.min()), int(t.max()) + int(BIN_NS)
        line = RunLine(rid, int(a["n"].sum()), t_min, t_max, False, COLUMNS, per_second=True)
        keys = row_keys(a)
        for key, pos in keys.groupby(list(SAMPLE_KEYS), sort=False).indices.items():
            label = label_of.get(tuple(key))
            if label is None:
                continue
            g = a.iloc[pos]
            for part in (True, False):  # in_window False: warm-up and outside the window
                sel = g["in_window"].astype(bool).to_numpy() != part
                if sel.any():
                    med = g["host_p50_ms"].to_numpy(np.float64)[sel]
                    hi = g["host_max_ms"].to_numpy(np.float64)[sel]
                    line.columns[(label, part)] = Aggregated(g["t_ns"].to_numpy(np.float64)[sel] + BIN_NS / 2, med,
                                                             med, hi)
            line.rows.append(label)
            line.model[label] = str(runs.at[label, "model"])
            line.strided[label] = g["host_p50_ms"].to_numpy(np.float64)
        if line.rows:
            out.append(line)
    return out
