"""The report's figures, one function per kind, each returning the figures its data
allows (none where the data lacks what it plots). matplotlib is imported here only,
and drawn through its Agg canvas without pyplot, so no global backend is touched."""

from __future__ import annotations

import io
from typing import Callable, List, Sequence, Tuple

import numpy as np
import pandas as pd

from ..results.compare import STAGES, condition_interval, pooled_energy, pooled_stage
from ..results.explain import readings
from .data import ReportData, conditions, label, labels, ordered, present, same_partition, varies, varying_within_model
from .digest import DPI, MAX_POINTS, MAX_RUNS, TIMELINE_WIDTH_IN, RunLine  # noqa: F401 (MAX_POINTS: its home moved)
from .document import Figure

MAX_MODELS = 12     # panels in one distribution figure
MAX_SERIES = 8      # boxes per model
MAX_LINES = 12      # lines in one curve
MAX_BARS = 40       # bars in one stage figure

#: telemetry drawn under the latency on the time axis: panel title, quantity as
#: ``results.explain`` reads it (NVML or tegrastats, whichever the run has; power in W; the
#: temperature the GPU's, on a Jetson without a GPU sensor the junction's, the hottest)
TRACES = (("GPU clock (MHz)", "gpu_freq_mhz"), ("GPU utilization (%)", "gpu_util_pct"),
          ("GPU power (W)", "power_w"), ("GPU or board temperature (°C)", "temp_c"),
          ("CPU utilization (%)", "cpu_util_pct"))

PIPELINE_STAGES = tuple(f"{s}_p50_ms" for s in STAGES)
GPU_STAGES = ("h2d_p50_ms", "compute_p50_ms", "d2h_p50_ms")
#: the accuracy metric of a row, the first present (one per task)
ACCURACY = ("top1", "mask_map50_95", "pose_map50_95", "map50_95", "box_map50_95")


# --- drawing helpers ---------------------------------------------------------------

def _new(nrows: int, ncols: int, width: float, height: float, **kw):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")  # legends below a figure included
    return buf.getvalue()


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if n <= 10 else colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _log_if_wide(ax, values) -> None:
    """A log axis where the values span more than 30x (a 3 ms and a 180 ms model)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and np.percentile(v, 99) / max(np.percentile(v, 1), 1e-9) > 30:
        ax.set_yscale("log")


def _series_note(cols: Sequence[str]) -> str:
    names = {"phase": "alone vs together", "mps": "MPS"}
    return ", ".join(names.get(c, c.replace("axis:", "")) for c in cols) or "one condition"


# --- (a) latency distribution --------------------------------------------------------

def latency_distribution(d: ReportData, col: str) -> List[Figure]:
    """Box plots of each model's per-inference ``col`` (after warm-up, in the window),
    one panel per model, one box per phase and condition the model was measured under.
    Drawn from ``d.digest`` (the samples read a row at a time): exactly the values where
    they are few enough, else from histograms fine enough not to show it."""
    dg = d.digest
    boxes = dg.boxes.get(col, {})
    every = dg.series_order(col)
    if not every:
        return []
    conds = conditions(d.runs, d.axes)
    series_cols = ["phase"] + conds
    series = every[:MAX_SERIES]
    have = dg.models_with(col)
    models = [m for m in ordered(d.runs["model"]) if m in have][:MAX_MODELS]
    ncols = min(3, len(models))
    nrows = -(-len(models) // ncols)
    fig, axes = _new(nrows, ncols, 4.2 * ncols, 3.4 * nrows)
    colors = dict(zip(series, _colors(len(series))))
    ticks = len(series) <= 4 and max(len(x) for x in series) <= 24
    binned = False
    for ax, model in zip(axes.flat, models):
        here = [x for x in series if (model, x) in boxes]
        kw = dict(patch_artist=True, widths=0.6, flierprops={"markersize": 2, "alpha": 0.4},
                  medianprops={"color": "black"})
        if all(boxes[(model, x)].exact for x in here):
            box = ax.boxplot([boxes[(model, x)].values() for x in here], **kw)
        else:  # what Axes.boxplot draws, from the statistics of the histograms
            binned = True
            box = ax.bxp([boxes[(model, x)].stats() for x in here], boxprops={"linestyle": "solid"}, **kw)
        for patch, x in zip(box["boxes"], here):
            patch.set_facecolor(colors[x])
            patch.set_alpha(0.6)
        if ticks:
            ax.set_xticks(range(1, len(here) + 1), here, rotation=25, ha="right", fontsize=8)
        else:  # long or many labels: told by colour, in the legend below
            ax.set_xticks([])
        ax.set_title(model, fontsize=10)
        ax.set_ylabel(col.replace("_ms", " ms"))
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    if not ticks:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(facecolor=colors[x], alpha=0.6, label=x) for x in series], fontsize=8,
                   loc="upper center", bbox_to_anchor=(0.5, 0), ncol=2 if len(series) > 4 else 1)
    what = "host latency (wall time per inference)" if col == "host_ms" else "GPU time (CUDA events)"
    cap = (f"Distribution of the {what} of each inference after warm-up and inside the measurement window, "
           f"per model, split by {_series_note(series_cols)}. Box: quartiles and median; whiskers: 1.5 IQR; "
           f"dots: outliers.")
    if binned:
        cap += (" Boxes of many inferences are drawn from a histogram of their values (1000 bins a decade: "
                "within 0.12 %), one dot per bin of outliers.")
    if len(every) > MAX_SERIES or len(have) > MAX_MODELS:
        cap += f" Only the first {MAX_SERIES} conditions and {MAX_MODELS} models are drawn."
    return [Figure(f"latency-{col.replace('_ms', '')}", cap, _png(fig), models)]


# --- (b) latency over time with the telemetry ------------------------------------------

def _draw_line(ax, line: RunLine, t0: int) -> List[str]:
    """The latency of one run's inferences over time (``digest.RunLine``): every one as a
    point, or per pixel column its median (point) and its range (line); returns the
    models, in the legend's order."""
    models = line.models()
    colors = dict(zip(models, _colors(len(models))))

    def points(warm: bool, model=None):
        ts, ys = [], []
        for r in line.rows:
            if r in line.points and (model is None or line.model[r] == model):
                t, y, w = line.points[r]
                sel = w if warm else ~w
                ts.append(t[sel])
                ys.append(y[sel])
            agg = line.columns.get((r, warm))
            if agg is not None and (model is None or line.model[r] == model):
                ax.vlines((agg.t - t0) / 1e9, agg.lo, agg.hi, colors="0.6" if warm else colors[line.model[r]],
                          lw=0.6, alpha=0.6)
                ts.append(agg.t)
                ys.append(agg.med)
        t = np.concatenate(ts) if ts else np.empty(0)
        return (t - t0) / 1e9, (np.concatenate(ys) if ys else np.empty(0))

    x, y = points(True)
    ax.scatter(x, y, s=3, c="0.6", marker="x", label="warm-up")
    for model in models:
        x, y = points(False, model)
        ax.scatter(x, y, s=3, color=colors[model], label=model)
    _log_if_wide(ax, line.scale_values())
    return models


def over_time(d: ReportData) -> List[Figure]:
    """Per run: every inference's host latency on the node's clock (a large run: per
    pixel column, the median and the range of its inferences), with the GPU clock,
    utilization, power and CPU load below it on the same axis."""
    dg = d.digest
    rids = dg.runs_with_samples
    per_run = [(title, readings(d.telemetry, q)) for title, q in TRACES]
    out = []
    for line in dg.lines:
        rid = line.run_id
        traces = [(title, *r[rid]) for title, r in per_run if rid in r and len(r[rid][0])]
        t0 = min([line.t_min] + [t[0] for _, t, _ in traces])
        fig, axes = _new(1 + len(traces), 1, TIMELINE_WIDTH_IN, 3.2 + 1.4 * len(traces), sharex=True,
                         gridspec_kw={"height_ratios": [2.2] + [1] * len(traces)})
        ax = axes[0, 0]
        models = _draw_line(ax, line, t0)
        ax.set_ylabel("host ms")
        ax.legend(fontsize=7, markerscale=3, ncol=min(6, len(models) + 1), loc="upper left")
        ax.grid(alpha=0.3)
        together = d.runs[(d.runs["run_id"] == rid) & (d.runs["phase"] == "together")]
        for lo, hi in together[["window_start_ns", "window_end_ns"]].dropna().drop_duplicates().itertuples(index=False):
            for a in axes[:, 0]:
                a.axvspan((lo - t0) / 1e9, (hi - t0) / 1e9, color="tab:orange", alpha=0.08)
        for a, (title, t, v) in zip(axes[1:, 0], traces):
            a.step((t - t0) / 1e9, v, where="post", lw=0.8)
            a.set_ylabel(title, fontsize=8)
            a.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("seconds from the start of the run")
        names = [t[0] for t in traces]
        what = ("the host latency of its inferences per second (it kept no samples: timing.samples none): "
                "the median (dot) to the slowest (line) of each second" if line.per_second else
                "the host latency of every inference" if line.exact else
                f"the host latency of its {line.n} inferences, per pixel column of the time axis ({line.width} over "
                f"the run) the median (dot) and the fastest to the slowest (line) of those in it (a row of fewer "
                f"inferences than columns point by point)")
        cap = (f"Run {rid}: {what} (warm-up in grey)"
               + (f", with {', '.join(n.split(' (')[0] for n in names)} sampled on the same clock" if names else "")
               + "; time in seconds from the run's start; shaded: the together window.")
        if len(rids) > MAX_RUNS:
            cap += f" Time-axis figures are drawn for the first {MAX_RUNS} of {len(rids)} runs."
        out.append(Figure(f"timeline-{rid}", cap, _png(fig), ["latency"] + names))
    return out


# --- (c) gap sweep, (g) sweep axes: p50 against a numeric x ------------------------------

def _curve_keys(ok: pd.DataFrame, x: str, axes: Sequence[str] = ()) -> List[str]:
    """The columns that tell the lines of a curve over ``x`` apart: the conditions and
    sweep axes that vary, other than ``x`` itself under any name."""
    keys = [c for c in ("clocks_mode", "mps", "phase", "mode", "power_mode") if varies(ok, c)]
    keys += [a for a in axes if varies(ok, a) and not any(same_partition(ok, a, k) for k in keys + [x])]
    per_model = ok.groupby("model")[x].nunique()
    if (per_model > 1).any():  # the same model at several x: one line per model
        return ["model"] + keys
    # a model per x value (gap study's gap-0, gap-0.1, ...): lines join the models
    return keys + [c for c in ("task", "backend", "precision") if varies(ok, c)]


def _curves(ax, ok: pd.DataFrame, x: str, y: str, keys: List[str], dashed: str = "") -> int:
    """One line of ``y`` against ``x`` per value of ``keys`` (at most MAX_LINES); returns
    how many lines there were."""
    groups = list(ok.groupby(keys, sort=False, dropna=False)) if keys else [((), ok)]
    for (_, g), color in zip(groups[:MAX_LINES], _colors(min(len(groups), MAX_LINES))):
        name = label(g.iloc[0], keys) if keys else y
        parts = [(xv, rows) for xv, rows in g.groupby(x, sort=True)]
        xs = np.array([xv for xv, _ in parts], dtype=float)
        if y.endswith("p50_ms"):  # the point its interval is about (the geometric mean of the runs' p50s)
            ys = np.array([condition_interval(rows, y)[0] for _, rows in parts], dtype=float)
        else:  # window means of telemetry: a mean of means
            ys = np.array([pd.to_numeric(rows[y], errors="coerce").mean() for _, rows in parts], dtype=float)
        ax.plot(xs, ys, "o-", color=color, label=name, ms=4)
        if y == "p50_ms":
            _error_bars(ax, xs, ys, [rows for _, rows in parts], color)
        if dashed:  # a tail percentile is never averaged: each run's own, joined where there is one a point
            one = [(xv, float(rows[dashed].iloc[0])) for xv, rows in parts if len(rows) == 1]
            if one:
                ax.plot([a for a, _ in one], [b for _, b in one], "--", color=color, lw=0.8, alpha=0.7)
            many = [(xv, v) for xv, rows in parts if len(rows) > 1 for v in pd.to_numeric(rows[dashed], errors="coerce")]
            if many:
                ax.plot([a for a, _ in many], [b for _, b in many], "_", color=color, ms=8, alpha=0.7)
    return len(groups)


def _intervals(groups: Sequence[pd.DataFrame], stat: str = "p50_ms") -> np.ndarray:
    """(lo, hi) of ``stat`` per group of rows, as the comparisons take them (across repeats
    where a condition has several rows, else the row's own interval)."""
    return np.array([condition_interval(rows, stat)[1:] for rows in groups], dtype=float).reshape(-1, 2)


def _error_bars(ax, x, y, groups: Sequence[pd.DataFrame], color, horizontal: bool = False) -> bool:
    """The p50 interval of each point as an error bar; False where no point has one."""
    iv = _intervals(groups)
    ok = np.isfinite(iv).all(axis=1) & np.isfinite(y)
    if not ok.any():
        return False
    err = np.clip(np.vstack([y[ok] - iv[ok, 0], iv[ok, 1] - y[ok]]), 0, None)
    ax.errorbar(np.asarray(x)[ok], y[ok], yerr=err, fmt="none", ecolor=color, elinewidth=1, capsize=3)
    return True


def _symlog_x(ax, xs) -> None:
    pos = np.asarray([v for v in xs if v > 0], dtype=float)
    if len(pos) and (np.asarray(xs) == 0).any():
        ax.set_xscale("symlog", linthresh=pos.min())
    elif len(pos) > 1 and pos.max() / pos.min() > 20:
        ax.set_xscale("log")


def gap_curve(d: ReportData) -> List[Figure]:
    """p50 (and p99, dashed) against the inter-inference gap, one line per clock mode
    (and other condition), with the mean GPU clock of each window below where measured."""
    ok = d.ok.dropna(subset=["gap_s", "p50_ms"])
    if not varies(ok, "gap_s"):
        return []
    keys = _curve_keys(ok, "gap_s", d.axes)
    clock = present(ok, "tel_gpu_freq_mhz")
    fig, axes = _new(2 if clock else 1, 1, 8, 6.5 if clock else 4, sharex=True)
    n = _curves(axes[0, 0], ok, "gap_s", "p50_ms", keys, dashed="p99_ms")
    axes[0, 0].set_ylabel("p50 ms (p99 dashed)")
    panels = ["p50 and p99 latency"]
    if clock:
        _curves(axes[1, 0], ok.dropna(subset=["tel_gpu_freq_mhz"]), "gap_s", "tel_gpu_freq_mhz", keys)
        axes[1, 0].set_ylabel("mean GPU clock (MHz)")
        panels.append("mean GPU clock in the window")
    for a in axes[:, 0]:
        a.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    _symlog_x(axes[-1, 0], ok["gap_s"].unique())
    axes[-1, 0].set_xlabel("gap between inferences, gap_s (s)")
    cap = ("Gap sweep: median (p50, solid: the geometric mean of the runs' p50s where there are several; bars: "
           "its interval at the runs' confidence) and p99 (dashed where one run per point; each run's own as a "
           "dash where several: never averaged) against the sleep between inferences"
           + (f", one line per {_series_note(keys)}" if keys else "")
           + ("; below, the mean GPU clock during each measurement window" if clock else "") + ".")
    if n > MAX_LINES:
        cap += f" The first {MAX_LINES} of {n} lines are drawn."
    return [Figure("gap-sweep", cap, _png(fig), panels)]


def sweep_axes(d: ReportData) -> List[Figure]:
    """For a sweep, p50 against each numeric axis (not the gap, drawn above)."""
    ok = d.ok.dropna(subset=["p50_ms"])
    numeric = []
    for a in d.axes:
        v = pd.to_numeric(ok[a], errors="coerce")
        if v.notna().all() and a != "axis:timing.gap_s":
            numeric.append(a)
    if not numeric:
        return []
    fig, axes = _new(len(numeric), 1, 8, 3.6 * len(numeric))
    notes = []
    for ax, a in zip(axes[:, 0], numeric):
        num = ok.assign(**{a: pd.to_numeric(ok[a])})
        n = _curves(ax, num, a, "p50_ms", _curve_keys(num, a, d.axes), dashed="p99_ms")
        if n > MAX_LINES:
            notes.append(f"{a[5:]}: the first {MAX_LINES} of {n} lines")
        if (num[a] == num[a].round()).all():  # threads, batch: whole numbers only
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(a[5:])
        ax.set_ylabel("p50 ms (p99 dashed)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        _symlog_x(ax, pd.to_numeric(ok[a]).unique())
    cap = (f"Sweep: median (solid; the geometric mean of the runs' p50s where there are several) and p99 "
           f"(dashed; each run's own where several, never averaged) latency against each numeric axis "
           f"({', '.join(a[5:] for a in numeric)}), one line per model and setting of the other axes.")
    if notes:
        cap += " Drawn: " + "; ".join(notes) + "."
    return [Figure("sweep-axes", cap, _png(fig), [a[5:] for a in numeric])]


# --- (d) a condition compared: clock mode, MPS, power mode -------------------------------

def _grouped_bars(ax, table: pd.DataFrame) -> None:
    """``table``: index = x groups, columns = bars within a group."""
    width = 0.8 / max(1, table.shape[1])
    x = np.arange(len(table))
    for i, (col, color) in enumerate(zip(table.columns, _colors(table.shape[1]))):
        ax.bar(x + (i - (table.shape[1] - 1) / 2) * width, table[col], width, color=color, label=str(col))
    ax.set_xticks(x, table.index, rotation=25, ha="right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def condition_bars(d: ReportData, col: str) -> List[Figure]:
    """p50 per model under each value of ``col`` (clocks_mode, mps, power_mode), with the
    mean GPU clock and utilization of each window where measured."""
    ok = d.ok.dropna(subset=["p50_ms"])
    if col not in varying_within_model(ok, (col,)):
        return []
    others = ["phase"] + [c for c in conditions(ok, d.axes) if c != col]
    groups = ok.assign(_x=labels(ok, others, prefix="model"), _bar=labels(ok, [col]))
    rows = [("p50_ms", "p50 ms")] + [(c, t) for c, t in (("tel_gpu_freq_mhz", "mean GPU clock (MHz)"),
                                                      ("tel_gpu_util_pct", "mean GPU util (%)"))
                                     if present(groups, c)]
    order = ordered(groups["_x"])
    fig, axes = _new(len(rows), 1, max(8, 0.55 * len(order)), 3.2 * len(rows), sharex=True)
    for ax, (c, title) in zip(axes[:, 0], rows):
        if c == "p50_ms":  # the point its interval is about, per bar
            pts = {k: condition_interval(rows, "p50_ms")[0] for k, rows in groups.groupby(["_x", "_bar"], sort=False)}
            table = pd.Series(pts, dtype=float).unstack().reindex(order)
        else:
            table = groups.pivot_table(index="_x", columns="_bar", values=c, aggfunc="mean").reindex(order)
        _grouped_bars(ax, table)
        if c == "p50_ms":  # each bar's interval, as the comparisons take it
            width = 0.8 / max(1, table.shape[1])
            for i, (bar, color) in enumerate(zip(table.columns, _colors(table.shape[1]))):
                at = np.arange(len(table)) + (i - (table.shape[1] - 1) / 2) * width
                parts = [groups[(groups["_x"] == xv) & (groups["_bar"] == bar)] for xv in table.index]
                _error_bars(ax, at, table[bar].to_numpy(float), parts, "black")
        ax.set_ylabel(title)
    axes[0, 0].legend(fontsize=8)
    what = {"clocks_mode": "clock mode", "mps": "MPS", "power_mode": "power mode"}[col]
    cap = (f"{what[0].upper() + what[1:]} compared: median latency of each model under each {what}"
           + ("; below, the mean GPU clock and utilization in each measurement window" if len(rows) > 1 else "")
           + ". A p50 bar over several runs is the geometric mean of their p50s (telemetry bars: the mean of the "
             "windows' means); black lines: the p50's interval at the runs' confidence (across the runs where "
             "there are several), where measured.")
    return [Figure(f"{col.replace('_', '-')}", cap, _png(fig), [t for _, t in rows])]


# --- (e) per-stage bars --------------------------------------------------------------

def stage_bars(d: ReportData, stages: Sequence[str], name: str, what: str) -> List[Figure]:
    """Stacked horizontal bars of the stages' medians for the rows that timed them."""
    ok = d.ok
    stages = [c for c in stages if present(ok, c)]
    if not stages:
        return []
    rows = ok[ok[stages].notna().any(axis=1)]
    conds = ["phase"] + conditions(rows, d.axes)
    rows = rows.assign(_y=labels(rows, conds, prefix="model"))
    table = pd.DataFrame({c: {y: pooled_stage(g, c) for y, g in rows.groupby("_y", sort=False)} for c in stages},
                         columns=stages).reindex(ordered(rows["_y"])).iloc[:MAX_BARS]
    fig, axes = _new(1, 1, 9, 1.2 + 0.32 * len(table))
    ax = axes[0, 0]
    left = np.zeros(len(table))
    for c, color in zip(stages, _colors(len(stages))):
        v = table[c].fillna(0).to_numpy()
        ax.barh(np.arange(len(table)), v, left=left, color=color, label=c.replace("_p50_ms", ""))
        left += v
    ax.set_yticks(np.arange(len(table)), table.index, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms (median of each stage)")
    ax.legend(fontsize=8, ncol=len(stages), loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    cap = (f"{what}: the median of each stage, stacked, per model and condition "
           f"({', '.join(c.replace('_p50_ms', '') for c in stages)}; over several runs, the mean of their "
           f"medians). Medians of stages need not add up to the median of the whole.")
    return [Figure(name, cap, _png(fig), [c.replace("_p50_ms", "") for c in stages])]


# --- (f) accuracy against latency ----------------------------------------------------

def accuracy_vs_latency(d: ReportData) -> List[Figure]:
    """Each validation row: its task's accuracy metric against its median latency."""
    ok = d.ok
    metrics = [c for c in ACCURACY if present(ok, c)]
    if not metrics:
        return []
    rows = ok[ok[metrics].notna().any(axis=1)].copy()
    rows["_metric"] = [next(m for m in metrics if pd.notna(r[m])) for _, r in rows.iterrows()]
    rows["_value"] = [r[r["_metric"]] for _, r in rows.iterrows()]
    fig, axes = _new(1, 1, 8, 5)
    ax = axes[0, 0]
    models = ordered(rows["model"])
    marks = {"alone": "o", "together": "^"}
    for model, color in zip(models, _colors(len(models))):
        m = rows[rows["model"] == model]
        for phase, g in m.groupby("phase"):
            ax.scatter(g["p50_ms"], g["_value"], color=color, marker=marks.get(phase, "s"), s=40,
                       label=f"{model} {phase} ({g['_metric'].iloc[0]})")
    ax.set_xlabel("p50 ms per batch")
    ax.set_ylabel("accuracy (top1 or mAP50-95 of the task)")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    cap = ("Accuracy against median latency for the validation rows: top1 for classification, "
           "mAP50-95 (mask for segmentation, pose for pose) for the others; circles alone, triangles together.")
    if "weights" in rows.columns and (rows["weights"] == "random").any():
        cap += " Models with random weights: their accuracy is meaningless, only the latency is real."
    return [Figure("accuracy-latency", cap, _png(fig), metrics)]


# --- (h) latency against energy per inference ------------------------------------------

def energy_vs_latency(d: ReportData) -> List[Figure]:
    """One point per model and condition (phase and the conditions that vary): its median
    latency against its energy per inference (``results.energy``), where rows have one."""
    ok = d.ok
    if not present(ok, "energy_mj_per_inf"):
        return []
    rows = ok[pd.to_numeric(ok["energy_mj_per_inf"], errors="coerce").notna() & ok["p50_ms"].notna()]
    if not len(rows):
        return []
    conds = ["phase"] + conditions(rows, d.axes)
    rows = rows.assign(_c=labels(rows, conds))
    fig, axes = _new(1, 1, 8, 5)
    ax = axes[0, 0]
    models = ordered(rows["model"])
    marks = ["o", "^", "s", "D", "v", "P", "X", "*"]
    cond_order = ordered(rows["_c"])
    for model, color in zip(models, _colors(len(models))):
        for (c, g) in rows[rows["model"] == model].groupby("_c", sort=False):
            x = pooled_energy(g)
            y = condition_interval(g, "p50_ms")[0]
            ax.scatter([x], [y], color=color, marker=marks[cond_order.index(c) % len(marks)], s=45,
                       label=f"{model} · {c}")
    ax.set_xlabel("energy per inference (mJ)")
    ax.set_ylabel("p50 ms per batch")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    sources = ", ".join(ordered(rows["energy_source"].dropna().astype(str))) if "energy_source" in rows else ""
    cap = ("Median latency against energy per inference, one point per model and condition (the geometric mean of "
           "the runs' p50s, the mean of their energies per inference); marker: the condition ("
           + ", ".join(cond_order[:len(marks)]) + ")"
           + (f"; energy from {sources}" if sources else "")
           + ". A together point's energy is the whole window's (every model's) over all their inferences.")
    return [Figure("energy-latency", cap, _png(fig), ["energy per inference"])]


#: every figure of a report, in reading order
FIGURES: Tuple[Callable[[ReportData], List[Figure]], ...] = (
    lambda d: latency_distribution(d, "host_ms"),
    lambda d: latency_distribution(d, "gpu_ms"),
    over_time,
    gap_curve,
    lambda d: condition_bars(d, "clocks_mode"),
    lambda d: condition_bars(d, "mps"),
    lambda d: condition_bars(d, "power_mode"),
    lambda d: stage_bars(d, PIPELINE_STAGES, "stages-pipeline", "Pipeline and validation stages"),
    lambda d: stage_bars(d, GPU_STAGES, "stages-gpu", "GPU stages (copy in, compute, copy out)"),
    accuracy_vs_latency,
    energy_vs_latency,
    sweep_axes,
)


def make_figures(d: ReportData) -> List[Figure]:
    return [f for make in FIGURES for f in make(d)]
