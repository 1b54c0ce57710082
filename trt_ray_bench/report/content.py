"""The sections of a report, each derived from the runs: what was measured, the
machine and software, the comparison tables, diagnostics, explanations, figures."""

from __future__ import annotations

from typing import List, Optional, Sequence

import pandas as pd

from .. import results
from ..errors import UserError
from ._format import cell
from .data import ReportData, conditions, label, ordered, present, same_partition, varies
from .document import Figure, Heading, Items, Paragraph, Report, Section, Table
from .figures import make_figures

#: provenance shown, in this order, where the runs have a value for it
ENVIRONMENT = (
    "host", "platform", "board", "gpu_name", "gpu_driver", "cuda_version", "l4t", "jetpack", "power_mode", "gpu_freq_range_mhz",
    "os", "machine", "cpu_model", "cpu_count", "clocks_mode", "clocks_in_force", "mps", "mps_state",
    "python_version", "trb_version", "ray_version", "onnxruntime_version", "numpy_version", "ultralytics_version",
    "tensorrt_version", "torch_version", "node_name", "node_board",
)

#: what an explanation compares, in the users' words; sweep axes follow these
EXPLAINED = (("phase", "Alone vs together"), ("gap_s", "Gap between inferences (gap_s)"),
             ("clocks_mode", "Clock mode"), ("mps", "MPS"), ("mode", "Mode (inference, pipeline, validation)"))

#: the telemetry of each window, as ``results.window_telemetry`` names it: header, meaning
WINDOW = {"tel_gpu_freq_mhz": ("GPU MHz", "GPU (SM) clock"), "tel_gpu_util_pct": ("GPU util %", "GPU utilization"),
          "tel_power_w": ("power W", "GPU power"), "tel_pstate": ("P-state", "P-state (the most frequent)"),
          "tel_temp_c": ("temp C", "temperature (the GPU's, else the hottest sensor's)"),
          "tel_cpu_util_pct": ("CPU util %", "CPU utilization"),
          "tel_throttle_frac": ("throttled", "share of readings with a throttle reason"),
          "energy_mj_per_inf": ("mJ/inf", "energy per inference (together: the window's over every model's inferences)")}

#: how every comparison table's intervals and verdicts read (``results.compare``, ``results.verdict``)
_NOISE = ("; Δ [lo, hi]: the ratio of two conditions' p50s (geometric means over their runs) and its interval at "
          "the runs' confidence, tested on the runs (a process each: paired where the same processes measured "
          "both, else Welch's t on log p50); verdict: slower / faster where the interval excludes 0, not shown "
          "where it does not (detectable: the change the runs could have shown), —: the runs cannot tell. A "
          "condition's p50 CI: across its runs where it has several, else the run's own (under the dependence "
          "between its inferences).")


def _table(frame: pd.DataFrame, title: str, note: str) -> Table:
    """A comparison table whose note ends with the reasons of its ``—`` verdicts."""
    why = results.compare.notes(frame)
    return Table(frame, title, note + (" " + " ".join(w[0].upper() + w[1:] + "." for w in why) if why else ""))

MAX_GROUPS = 8  # comparison tables split by condition before the split is left to the sweep table


def _filled(v) -> bool:
    return not (v is None or (isinstance(v, float) and pd.isna(v)) or str(v) in ("", "nan", "None", "NaT"))


# --- what was measured ----------------------------------------------------------------

def _run_row(rid: str, g: pd.DataFrame) -> dict:
    row = {"run_id": rid, "experiment": g["experiment"].iloc[0], "started_at": str(g["started_at"].min())[:19]}
    for c in ("model", "phase", "mode", "backend", "precision", "sync", "gap_s", "clocks_mode", "mps", "point"):
        if present(g, c):
            row[c] = ", ".join(cell(v, c) for v in ordered(g[c].dropna()))
    row["ok"] = f"{int((g['status'] == 'ok').sum())}/{len(g)}"
    return row


def summary(d: ReportData, source: str) -> Section:
    runs = d.runs
    models = ordered(runs["model"])
    phases = ordered(runs["phase"])
    text = (f"{runs['run_id'].nunique()} run(s) under {source}, experiment(s) {', '.join(ordered(runs['experiment']))}: "
            f"{len(models)} model(s) ({', '.join(models)}) measured {' and '.join(phases)}")
    if present(runs, "mode"):
        text += f", mode(s) {', '.join(ordered(runs['mode'].dropna()))}"
    n_inf = int(runs.loc[runs["status"] == "ok", "n"].sum()) if present(runs, "n") else 0
    text += (f"; {n_inf} timed inferences in the statistics, {d.n_samples} recorded in all (warm-up included), "
             f"{len(d.telemetry)} telemetry readings.")
    if d.is_sweep:
        text += f" A sweep of {runs['point_id'].nunique()} point(s) over {', '.join(a[5:] for a in d.axes) or 'no axis'}."
    bad = runs[runs["status"] != "ok"]
    blocks = [Paragraph(text)]
    if len(bad):
        blocks.append(Items([f"{r['model']} {r['phase']} ({r['run_id']}): {r['status']}: {r['error']}"
                             for _, r in bad.iterrows()]))
    table = pd.DataFrame([_run_row(rid, g) for rid, g in runs.groupby("run_id", sort=True)])
    blocks.append(Table(table, "Runs", "ok: successful rows of the run (one per model, phase and repeat)."))
    return Section("What was measured", blocks)


# --- environment and provenance ----------------------------------------------------------

def environment(d: ReportData) -> Section:
    rows = []
    for c in ENVIRONMENT:
        if c not in d.runs.columns:
            continue
        per_run = d.runs.groupby("run_id", sort=True)[c].agg(lambda v: ", ".join(ordered(cell(x, c) for x in v if _filled(x))))
        per_run = per_run[per_run != ""]
        if per_run.empty:
            continue
        if per_run.nunique() == 1:
            value = per_run.iloc[0]
        else:
            value = "; ".join(f"{v} ({', '.join(per_run.index[per_run == v])})" for v in ordered(per_run))
        rows.append({"field": c, "value": value})
    if not rows:
        return Section("Environment and provenance", [Paragraph("The runs carry no provenance.")])
    return Section("Environment and provenance", [Table(pd.DataFrame(rows), "", "Values that differ between runs "
                                                       "are listed with the runs that had them.")])


# --- comparison tables ------------------------------------------------------------------

def _groups(d: ReportData) -> List[tuple]:
    """(title, rows) per run condition that varies for one model (clocks, MPS, ...),
    so that no table averages two conditions together."""
    ok = d.runs[d.runs["status"] == "ok"]
    keys = conditions(ok, d.axes, ("clocks_mode", "mps", "power_mode", "gap_s"))
    if not keys:
        return [("", d.runs)]
    return [(label(g.iloc[0], keys), g) for _, g in d.runs.groupby(keys, sort=False, dropna=False)
            if (g["status"] == "ok").any()]


def comparisons(d: ReportData, baseline: Optional[str] = None) -> Section:
    ok = d.runs[d.runs["status"] == "ok"]
    blocks: List = []
    if ok.empty:
        return Section("Comparisons", [Paragraph("No run finished ok: nothing to compare.")])
    groups = _groups(d)
    if len(groups) <= MAX_GROUPS:
        if set(ok["phase"]) >= {"alone", "together"}:
            for title, rows in groups:
                blocks.append(_table(results.alone_vs_together(rows),
                                    "Alone vs together" + (f": {title}" if title else ""),
                                    "Host ms per batch, pooled over repeats; Δ = together vs alone" + _NOISE))
        if varies(ok, "mode"):
            for title, rows in groups:
                blocks.append(_table(results.by_mode(rows), "By mode" + (f": {title}" if title else ""),
                                    "ms per image (host) of each mode and phase; % vs inference alone" + _NOISE))
    if d.is_sweep:
        cols = [c for c in ["point_id", *d.axes, "model", "phase", "status", "n", "p50_ms", "p50_ci_lo_ms",
                            "p50_ci_hi_ms", "p99_ms", "fps", "throughput_ips",
                            "gpu_p50_ms"] if present(d.runs, c)]
        blocks.append(Table(d.runs[cols], "Sweep points", "One row per point, model and phase; host ms per batch."))
    else:
        if varies(ok, "variant"):
            blocks.append(_table(results.by_condition(ok, "variant"), "By variant",
                                 "Host ms per batch; each timing variant against the first, per model" + _NOISE))
        blocks.append(per_model(d, ok, baseline))
    return Section("Comparisons", blocks)


#: ``results.versus`` columns that compare a row with the baseline model's
_AGAINST_BASELINE = ("speedup", "vs_baseline_p50_pct", "vs_baseline_p50_lo_pct", "vs_baseline_p50_hi_pct", "p_value",
                     "verdict", "detectable_pct", "why")


def variants_of_one_model(ok: pd.DataFrame) -> bool:
    """Whether the models are variants of one model: two or more, with one task, input size
    and batch, made from one network (one source, or one ONNX), differing in what they are
    run with (backend, precision, options, timing: seed 003's backends, seed 001's gaps).
    Only between such models is a speedup a property of the variant, not of the models."""
    if ok["model"].nunique() < 2:
        return False
    if any(c in ok.columns and ok[c].astype(str).nunique() > 1 for c in ("task", "imgsz_h", "imgsz_w", "batch")):
        return False
    return any(c in ok.columns and ok[c].notna().all() and ok[c].nunique() == 1 for c in ("source", "onnx_sha256"))


def per_model(d: ReportData, ok: pd.DataFrame, baseline: Optional[str] = None) -> Table:
    """Each model's statistics; a speedup and a verdict against a baseline only where one
    is given (``trb report --baseline MODEL``) or the models are variants of one model (the
    first listed, then). The note names only what the table holds: GPU times where a row
    has them."""
    base = baseline or (ordered(ok["model"])[0] if variants_of_one_model(ok) else None)
    frame = results.versus(ok, base or ordered(ok["model"])[0])
    gpu = "gpu_p50_ms" in frame.columns  # versus leaves out a statistic no row has
    note = ("Host ms per batch" + ("; gpu_p50: GPU time from CUDA events" if gpu else "")
            + "; fps: latency-bound (batch x 1000 / mean)")
    if base is None:
        frame = frame.drop(columns=[c for c in _AGAINST_BASELINE if c in frame.columns])
        return Table(frame, "Per model", note + "; p50 CI: across the model's runs where it has several, else the "
                     "run's own. No speedup: these models are not variants of one model (their task, input size or "
                     "network differ), so none is the others' baseline; trb report --baseline MODEL names one.")
    why = "given" if baseline else "the first of these variants of one model"
    return _table(frame, "Per model", note + f"; speedup = p50 of {base} ({why}) / p50 of the row; vs_baseline: "
                  f"the p50 against {base}'s" + _NOISE)


# --- diagnostics -----------------------------------------------------------------------

def _stored(d: ReportData) -> bool:
    """The runs carry their diagnostics (trees written since ``results.diagnose``)."""
    col = d.runs.get("diagnostics")
    return col is not None and bool(col.notna().all())


def _diagnostics(d: ReportData) -> pd.Series:
    """The rows' diagnostics: as stored, else computed from the runs, the telemetry and
    each row's samples, read a row at a time (``Results.filled``)."""
    if _stored(d):
        return d.runs["diagnostics"]
    res = d.res.with_runs(d.runs.drop(columns="diagnostics", errors="ignore"))
    return res.filled(stats=False).runs["diagnostics"]


def _row_items(d: ReportData, per_row: pd.Series, make) -> List[dict]:
    """One dict per item of each runs row's list (``make(item)``), with the row's identity."""
    out = []
    for i, r in d.runs.iterrows():
        items = per_row.get(i)
        for item in (items if items is not None else []):
            out.append({"run_id": r["run_id"], "model": r["model"], "phase": r["phase"], "repeat": r["repeat"],
                        **make(item)})
    return out


def diagnostics(d: ReportData) -> Section:
    found = _diagnostics(d)
    rows = _row_items(d, found, lambda x: {"code": x["code"], "message": x["message"]})
    blocks: List = []
    if rows:
        n_rows = len({(r["run_id"], r["model"], r["phase"], r["repeat"]) for r in rows})
        blocks += [Paragraph(f"{len(rows)} diagnostic(s) on {n_rows} row(s): what in the measurement may not be "
                             f"trusted, and why."), Table(pd.DataFrame(rows))]
    else:
        blocks.append(Paragraph("No diagnostic: nothing in these runs was found suspect."))
    if "warnings" in d.runs.columns:  # the controls' and the metrics' warnings, never hidden
        said = {i: {x["message"] for x in (found.get(i) if found.get(i) is not None else [])} for i in d.runs.index}
        other = pd.Series({i: [w for w in (ws if ws is not None else []) if w not in said[i]]
                           for i, ws in d.runs["warnings"].items()})
        rest = _row_items(d, other, lambda w: {"warning": w})
        note = ("Stored with the runs besides the diagnostics (machine controls, metrics)." if _stored(d) else
                "Stored with the runs, which were written before diagnostics were: they may repeat the "
                "diagnostics above in older words.")
        if rest:
            blocks.append(Table(pd.DataFrame(rest), "Other warnings", note))
    return Section("Diagnostics", blocks)


# --- explanations ----------------------------------------------------------------------

def _explained(d: ReportData) -> List[tuple]:
    """(column, title) for every condition that varies, sweep axes that repeat one of
    the named conditions (``timing.gap_s`` is ``gap_s``) left out."""
    ok = d.ok
    out = [(c, t) for c, t in EXPLAINED if varies(ok, c)]
    named = [c for c, _ in out]
    for a in d.axes:
        if not any(same_partition(ok, a, c) for c in named):
            out.append((a, f"Sweep axis {a[5:]}"))
    return out


def _window_table(d: ReportData) -> Table:
    ok = d.ok
    conds = ["phase"] + conditions(ok, d.axes, ("gap_s", "clocks_mode", "mps", "mode"), within_model=False)
    tel = [c for c in WINDOW if present(ok, c)]
    ci = [c for c in ("p50_ci_lo_ms", "p50_ci_hi_ms") if present(ok, c)]
    frame = ok[["run_id", "model", *conds, "p50_ms", *ci, "p99_ms", *tel]].rename(columns={c: WINDOW[c][0] for c in tel})
    return Table(frame.reset_index(drop=True), "Telemetry in each window",
                 "Over each row's measurement window, the mean " + ", ".join(WINDOW[c][1] for c in tel) + ".")


def explanations(d: ReportData) -> Section:
    blocks: List = []
    for by, title in _explained(d):
        said = results.explain(d.runs, d.telemetry, by)
        if said:
            blocks += [Heading(title), Items(list(said))]
    if not blocks:
        gpu = present(d.runs, "gpu_p50_ms") or ("platform" in d.runs.columns and
                                                 d.runs["platform"].isin(["dgpu", "jetson"]).any())
        blocks.append(Paragraph("No two runs of one model differ by phase, gap, " + ("clock mode, MPS " if gpu else "")
                                + "or mode: there is nothing to explain."))
    if any(present(d.ok, c) for c in WINDOW):
        blocks.append(_window_table(d))
    return Section("Explanations: what else differed", blocks)


# --- the report ------------------------------------------------------------------------

def check_baseline(d: ReportData, baseline: Optional[str]) -> None:
    """``--baseline``: a model with a successful run, in a report that has a per-model table."""
    if baseline is None:
        return
    if d.is_sweep:
        raise UserError("--baseline", f"{baseline}: a sweep's report compares its points, not models against one "
                                      "(trb compare DIR --baseline MODEL compares models)")
    have = ordered(d.runs.loc[d.runs["status"] == "ok", "model"])
    if baseline not in have:
        raise UserError("--baseline", f"{baseline!r} has no successful run here (models: {', '.join(have) or 'none'})")


def make_report(res: results.Results, source: str = "", baseline: Optional[str] = None) -> Report:
    """The report of everything in ``res`` (a run, an experiment or a sweep); the per-model
    table against ``baseline`` where given (``per_model``)."""
    d = ReportData.from_results(res)
    check_baseline(d, baseline)
    figures: Sequence[Figure] = make_figures(d)
    title = "trb report: " + ", ".join(ordered(d.runs["experiment"].astype(str)))
    return Report(title, [
        summary(d, source or "this folder"),
        environment(d),
        comparisons(d, baseline),
        diagnostics(d),
        explanations(d),
        Section("Figures", list(figures) or [Paragraph("These runs hold nothing to draw.")]),
    ])
