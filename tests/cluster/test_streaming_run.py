"""A run written as it goes, for real (a local Ray, ONNX Runtime models): each phase's
samples are appended to the hidden run folder as the phase ends (row groups of their
own); ``timing.samples`` keeps all, the in-window ones or none, the statistics and the
per-second aggregates the same; an exception part-way leaves no run folder, visible or
hidden; an interruption part-way writes the phases done. (The same with the signals
themselves, in a ``trb run`` process: ``tests/control/test_signals.py``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from trt_ray_bench import results
from trt_ray_bench.report.data import ReportData
from trt_ray_bench.report.figures import over_time
from trt_ray_bench.cluster import make_plan, node_run, run_plan
from trt_ray_bench.spec import spec_from_dict
from trt_ray_bench.timing import summarize

pytestmark = [pytest.mark.ray, pytest.mark.slow]

KEYS = ["model", "phase", "repeat"]


def _spec(tmp_path, cls_onnx, **timing):
    return spec_from_dict({
        "name": "stream", "output": str(tmp_path / "results"), "schedule": "both",
        "models": [{"path": str(cls_onnx), "name": "a", "options": {"threads": 1}},
                   {"path": str(cls_onnx), "name": "b", "options": {"threads": 1}}],
        "timing": {"warmup": 2, "iterations": 25, **timing}, "telemetry": {"interval_s": 0.05},
    })


def _folders(tmp_path) -> list:
    root = tmp_path / "results" / "stream"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_run_writes_each_phase_s_samples_as_it_ends(tmp_path, cls_onnx, ray_local):
    # rows of ~1.3 s: two per-second bins at least
    out = run_plan(make_plan(_spec(tmp_path, cls_onnx, iterations=None, duration_s=1.3)), log=lambda s: None)
    assert "samples" not in out["tables"]  # in the folder, not held
    f = pq.ParquetFile(out["run_dir"] / "samples.parquet")
    assert f.metadata.num_row_groups == 3  # alone a, alone b, together (a, b)
    groups = [sorted(set(zip(*(f.read_row_group(i, columns=["phase", "model"]).column(c).to_pylist()
                                for c in ("phase", "model"))))) for i in range(3)]
    assert groups == [[("alone", "a")], [("alone", "b")], [("together", "a"), ("together", "b")]]
    r = results.load(out["run_dir"])
    runs = r.runs.set_index(KEYS)
    assert (runs.status == "ok").all() and (runs.samples_kept == "all").all()
    s = r.samples[r.samples.in_window]
    for key, g in s.groupby(KEYS):  # the statistics: of the in-window samples, as before
        want = summarize(g.sort_values("iteration").host_ms.to_numpy(), 1, runs.loc[key, "confidence"])
        assert runs.loc[key, "n"] == want.n and runs.loc[key, "p50_ms"] == pytest.approx(want.p50_ms)
        assert runs.loc[key, "n_eff"] == pytest.approx(want.n_eff, nan_ok=True)
    # per second of each row: the bins' medians are the medians of those seconds' samples
    a = r.aggregates
    assert (a.groupby(KEYS).size() >= 2).all()
    meas = r.samples[~r.samples.warmup]
    for key, g in meas.groupby(KEYS):
        start = runs.loc[key, "window_start_ns"]
        g = g.assign(t_ns=start + (g.t_start_ns - start) // 1_000_000_000 * 1_000_000_000)
        want = g.groupby(["t_ns", "in_window"]).host_ms.agg(["size", "median", "max"])
        got = a[(a.model == key[0]) & (a.phase == key[1])].set_index(["t_ns", "in_window"]).sort_index()
        assert got.n.tolist() == want["size"].tolist()
        assert np.allclose(got.host_p50_ms, want["median"], rtol=0, atol=1e-12)
        assert np.allclose(got.host_max_ms, want["max"], rtol=0, atol=1e-12)
        assert got.gpu_p50_ms.isna().all()  # ONNX Runtime on the CPU: no GPU timer
    assert _folders(tmp_path) == [out["run_dir"].name]  # nothing hidden left beside it


@pytest.mark.parametrize("keep", ["window", "none"])
def test_what_timing_samples_keeps(tmp_path, cls_onnx, ray_local, keep):
    out = run_plan(make_plan(_spec(tmp_path, cls_onnx, samples=keep)), log=lambda s: None)
    r = results.load(out["run_dir"])
    runs = r.runs.set_index(KEYS)
    assert (runs.status == "ok").all() and (runs.samples_kept == keep).all()
    assert runs[["n", "p50_ms", "mean_ms", "n_eff", "acf1"]].notna().all().all()
    assert (runs.n >= 25).all()
    a = r.aggregates
    assert a[a.in_window].groupby(KEYS).n.sum().sort_index().tolist() == runs.n.sort_index().tolist()
    if keep == "none":
        assert len(r.samples) == 0
        assert pq.ParquetFile(out["run_dir"] / "samples.parquet").metadata.num_rows == 0
        # the report's timeline comes from the per-second aggregates: per row, its seconds'
        # medians up to their slowest, in the window and outside it
        d = ReportData.from_results(r)
        (line,) = d.digest.lines
        (fig,) = over_time(d)
        assert "kept no samples" in fig.caption and fig.png
        assert line.per_second and line.n == a.n.sum() and len(line.rows) == len(runs)
        for (label, warm), col in line.columns.items():
            row = r.runs.loc[label]
            want = a[(a.model == row.model) & (a.phase == row.phase) & (a.in_window != warm)].sort_values("t_ns")
            assert col.med.tolist() == want.host_p50_ms.tolist() and col.hi.tolist() == want.host_max_ms.tolist()
    else:
        s = r.samples
        assert s.in_window.all() and not s.warmup.any()
        assert s.groupby(KEYS).size().sort_index().tolist() == runs.n.sort_index().tolist()
        for key, g in s.groupby(KEYS):  # the statistics of what is kept are the row's
            want = summarize(g.sort_values("iteration").host_ms.to_numpy(), 1, runs.loc[key, "confidence"])
            assert runs.loc[key, ["p50_ms", "mean_ms", "p50_ci_lo_ms", "n_eff"]].tolist() == pytest.approx(
                [want.p50_ms, want.mean_ms, want.p50_ci_lo_ms, want.n_eff], nan_ok=True)


def _failing_phase(monkeypatch, exc: BaseException, at: int) -> None:
    """The ``at``-th phase (from 1) raises ``exc`` instead of running: a crash (or a Ctrl-C)
    part-way through a run, after some phases were written."""
    real, calls = node_run._run_phase, []

    def phase(*a, **k):
        calls.append(1)
        if len(calls) == at:
            raise exc
        return real(*a, **k)

    monkeypatch.setattr(node_run, "_run_phase", phase)


def test_an_exception_part_way_leaves_no_run_folder(tmp_path, cls_onnx, ray_local, monkeypatch):
    _failing_phase(monkeypatch, RuntimeError("boom"), at=2)
    with pytest.raises(RuntimeError, match="boom"):
        run_plan(make_plan(_spec(tmp_path, cls_onnx)), log=lambda s: None)
    assert _folders(tmp_path) == []  # neither a visible partial run nor its hidden folder


def test_an_interruption_part_way_writes_the_phases_done(tmp_path, cls_onnx, ray_local, monkeypatch):
    _failing_phase(monkeypatch, KeyboardInterrupt(), at=3)  # Ctrl-C in the together phase
    plan = make_plan(_spec(tmp_path, cls_onnx))
    with pytest.raises(KeyboardInterrupt):
        run_plan(plan, log=lambda s: None)
    assert _folders(tmp_path) == [plan.run_id]
    r = results.load(plan.run_dir)
    status = r.runs.set_index(KEYS).status.sort_index()
    assert status.loc[(slice(None), "alone", 0)].eq("ok").all()
    assert status.loc[(slice(None), "together", 0)].eq("interrupted").all()
    assert pq.ParquetFile(plan.run_dir / "samples.parquet").metadata.num_row_groups == 2  # the alone phases
    assert set(r.samples.phase) == {"alone"} and set(r.aggregates.phase) == {"alone"}


def test_a_bad_timing_samples_is_one_line(trb, tmp_path, cls_onnx):
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\nmodels: [{{path: {cls_onnx}}}]\ntiming: {{samples: some}}\n")
    code, out, err = trb("run", spec)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "timing.samples" in err, err
    assert "all" in err and "window" in err and "none" in err
