"""The driver's tables, built phase by phase (``cluster.node_run.RunTables``) and written as
the run goes (``results.RunWriter``), on raw outcomes shaped exactly as the model actors
return them (``actors.raw_samples``), made here so that a test can know the truth: the
statistics do not depend on which samples ``timing.samples`` keeps, the kept ones are the
right ones, the per-second aggregates are real medians of those seconds, each phase is its
own row groups, and drift is still seen from the aggregates where no sample was kept.
No Ray: the real runs are in ``test_streaming_run.py``."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from trt_ray_bench import results
from trt_ray_bench.cluster.node_run import RunTables, build_tables
from trt_ray_bench.cluster.plan import Plan, phases_of
from trt_ray_bench.models import ResolvedModel
from trt_ray_bench.results import RunWriter
from trt_ray_bench.results.aggregates import BIN_S
from trt_ray_bench.results.schema import STAT_FIELDS
from trt_ray_bench.spec import spec_from_dict, spec_to_yaml
from trt_ray_bench.timing import summarize

KEYS = ["model", "phase", "repeat"]
STATS = [f for f in STAT_FIELDS] + [f"gpu_{f}" for f in STAT_FIELDS]


def _plan(root: Path, keep: str, run_id: str = "20260101-000000-aaaaaa") -> Plan:
    spec = spec_from_dict({"name": "tables", "output": str(root), "schedule": "both",
                           "models": [{"path": "/synthetic/a.onnx", "name": "a"},
                                      {"path": "/synthetic/b.onnx", "name": "b"}],
                           "timing": {"iterations": 100, "warmup": 5, "samples": keep}})
    models = [ResolvedModel(name=n, task="detect", onnx_path=f"/synthetic/{n}.onnx", sha256="0" * 64,
                            weights="random", source=f"{n}.yaml", hw=(64, 64), batch=1, backend="onnxruntime")
              for n in ("a", "b")]
    text = spec_to_yaml(spec)
    return Plan(spec=spec, run_id=run_id, run_dir=root / "tables" / run_id, models=models,
                phases=phases_of(spec, ["a", "b"]), spec_yaml=text,
                spec_sha256=hashlib.sha256(text.encode()).hexdigest())


def _loop(rng, n: int, t0: int, level_ms: float, warmup: int = 5, slow_head_s: float = 0.0,
          step_at: float = 1.0) -> dict:
    """One model's loop as ``actors.raw_samples`` returns it: ``warmup`` cold inferences,
    ``n`` measured ones about 10 ms apart; the latency 30 % higher from ``step_at`` of
    the way on, and 25 % higher in its first ``slow_head_s`` seconds."""
    total = warmup + n
    lat = rng.lognormal(np.log(level_ms), 0.05, total)
    lat[:warmup] *= 1.5
    lat[warmup + int(step_at * n):] *= 1.3
    ts = np.empty(total, np.int64)
    ts[0] = t0
    step = (lat * 1e6).astype(np.int64) + 10_000_000 + rng.integers(0, 2_000_000, total)
    ts[1:] = t0 + np.cumsum(step[:-1])
    if slow_head_s:
        head = (ts >= ts[warmup]) & (ts < ts[warmup] + int(slow_head_s * 1e9))
        lat[head] *= 1.25
    te = ts + (lat * 1e6).astype(np.int64)
    warm = np.zeros(total, bool)
    warm[:warmup] = True
    return {"t_start_ns": ts, "t_end_ns": te, "enqueue_ns": (te - ts) // 10, "warmup": warm,
            "instant_ns": int(ts[warmup]), "stages": {}, "released_ns": int(ts[warmup]), "n_target": n,
            "barrier_warmup_n": 0, "t_sync_end_ns": None, "sync_wait_ns": None, "gpu_capacity": None,
            "gpu_missing": 0, "pid": 4242, "gpu_ms": lat * 0.9}


def _outcomes(plan: Plan, seed: int = 0, **shape) -> List[List[dict]]:
    """Per phase, the outcomes ``execute`` hands ``on_phase``: alone a (300 inferences,
    ~3 s), alone b, then together (a with 40 more than b: its fill runs past b's end,
    and b starts 30 ms after a: a's first ones are before the window)."""
    rng = np.random.default_rng(seed)
    t = 1_000_000_000_000
    out = []
    for ph in plan.phases:
        group = []
        for k, name in enumerate(ph.models):
            n = 300 + (40 if ph.phase == "together" and name == "a" else 0)
            start = t + (30_000_000 if ph.phase == "together" and name == "b" else 0)
            group.append({"phase": ph, "model": name, "status": "ok",
                          "raw": _loop(rng, n, start, 0.8 + 0.4 * k, **shape.get(name, {}))})
        t = max(int(o["raw"]["t_end_ns"][-1]) for o in group) + 500_000_000
        out.append(group)
    return out


def _result(plan: Plan, outcomes: List[dict]) -> dict:
    return {"outcomes": outcomes, "info": {}, "provenance": {"host": "test"},
            "telemetry": {"rows": {}, "errors": []},
            "started_at": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
            "controls": {"clocks_mode": "default", "warnings": []}, "gpu": None, "interrupted": None}


def _stream(tmp_path: Path, keep: str, seed: int = 0, **shape) -> results.Results:
    """A run written as ``run_plan`` writes it: phase by phase, the raw arrays given up."""
    plan = _plan(tmp_path / keep, keep)
    writer = RunWriter(plan.run_dir)
    tables = RunTables(plan, sink=writer.write_samples)
    kept = []
    for group in _outcomes(plan, seed, **shape):
        tables.add(group)
        assert all("raw" not in o for o in group)  # taken out once written
        kept.extend(group)
    writer.finish(tables.finish(_result(plan, kept)), plan.spec_yaml)
    return results.load(plan.run_dir)


def _by_row(frame: pd.DataFrame) -> Dict[tuple, pd.DataFrame]:
    return {k: g for k, g in frame.groupby(KEYS)}


def test_the_statistics_do_not_depend_on_which_samples_are_kept(tmp_path):
    runs = {keep: _stream(tmp_path, keep) for keep in ("all", "window", "none")}
    base = runs["all"].runs.sort_values(KEYS).reset_index(drop=True)
    assert len(base) == 4 and (base.status == "ok").all() and base.n.min() >= 250
    for keep, r in runs.items():
        got = r.runs.sort_values(KEYS).reset_index(drop=True)
        assert (got.samples_kept == keep).all()
        pd.testing.assert_frame_equal(got[KEYS + STATS], base[KEYS + STATS])
        assert got.n_eff.notna().all() and got.p50_ci_lo_ms.notna().all()
        pd.testing.assert_frame_equal(r.aggregates.drop(columns="run_id").sort_values(KEYS + ["t_ns", "in_window"])
                                      .reset_index(drop=True),
                                      runs["all"].aggregates.drop(columns="run_id")
                                      .sort_values(KEYS + ["t_ns", "in_window"]).reset_index(drop=True))
    s_all, s_win, s_none = (runs[k].samples for k in ("all", "window", "none"))
    assert len(s_none) == 0
    assert s_all.warmup.any() and (~s_all.in_window & ~s_all.warmup).any()  # the fill, the skew: out of the window
    assert s_win.in_window.all() and not s_win.warmup.any()
    want = s_all[s_all.in_window].sort_values(KEYS + ["iteration"]).reset_index(drop=True)
    got = s_win.sort_values(KEYS + ["iteration"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.drop(columns="run_id"), want.drop(columns="run_id"))
    # the settings do not tell them apart: the same condition, whichever samples were kept
    assert runs["all"].runs.settings.iloc[0] == runs["none"].runs.settings.iloc[0]


def test_a_window_run_s_statistics_are_those_of_its_kept_samples(tmp_path):
    r = _stream(tmp_path, "window")
    rows = r.runs.set_index(KEYS)
    for key, g in _by_row(r.samples).items():
        g = g.sort_values("iteration")
        assert len(g) == rows.loc[key, "n"]
        want = summarize(g.host_ms.to_numpy(), 1, rows.loc[key, "confidence"]).as_dict()
        got = rows.loc[key, list(want)].to_dict()
        assert got == pytest.approx(want, nan_ok=True, rel=1e-12), key
        gpu = summarize(g.gpu_ms.to_numpy(), 1, rows.loc[key, "confidence"]).as_dict("gpu_")
        assert rows.loc[key, list(gpu)].to_dict() == pytest.approx(gpu, nan_ok=True, rel=1e-12)


def test_the_aggregates_are_real_medians_of_each_second(tmp_path):
    r = _stream(tmp_path, "all")
    s = r.samples[~r.samples.warmup].copy()
    win = r.runs.set_index(KEYS)["window_start_ns"]
    anchor = s.set_index(KEYS).index.map(win).to_numpy(np.int64)
    s["bin"] = (s.t_start_ns.to_numpy() - anchor) // int(BIN_S * 1e9)
    s["t_ns"] = anchor + s["bin"].to_numpy() * int(BIN_S * 1e9)
    want = s.groupby(KEYS + ["t_ns", "in_window"]).agg(
        n=("host_ms", "size"), host_p50_ms=("host_ms", "median"), host_max_ms=("host_ms", "max"),
        gpu_p50_ms=("gpu_ms", "median"), gpu_max_ms=("gpu_ms", "max")).reset_index()
    got = r.aggregates.drop(columns=["run_id", "mode", "variant"]).sort_values(KEYS + ["t_ns", "in_window"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want[list(got.columns)].reset_index(drop=True),
                                  check_dtype=False)
    assert (got.groupby(KEYS).size() >= 3).all()  # every row of ~3 s has its seconds
    # the in-window bins hold exactly the row's inferences
    n_in = r.aggregates[r.aggregates.in_window].groupby(KEYS).n.sum()
    assert n_in.sort_index().tolist() == r.runs.set_index(KEYS).n.sort_index().tolist()
    # together: the skew before the window and the fill after it are bins of their own
    tog = r.aggregates[r.aggregates.phase == "together"]
    assert (~tog.in_window).any() and tog[tog.in_window].t_ns.min() == win.xs("together", level="phase").iloc[0]


def test_each_phase_is_row_groups_of_its_own(tmp_path):
    r = _stream(tmp_path, "all")
    f = pq.ParquetFile(Path(r.path) / "samples.parquet")
    assert f.metadata.num_row_groups == 3  # alone a, alone b, together
    got = [tuple(sorted(set(zip(t.column("phase").to_pylist(), t.column("model").to_pylist()))))
           for t in (f.read_row_group(i, columns=["phase", "model"]) for i in range(3))]
    assert got == [(("alone", "a"),), (("alone", "b"),), (("together", "a"), ("together", "b"))]
    assert pq.read_schema(Path(r.path) / "samples.parquet").metadata[b"trt_ray_bench.format"] == b"2"


def test_build_tables_is_the_same_tables(tmp_path):
    """A sweep point's (and ``build_tables``') tables: the same path, the samples kept as a frame."""
    plan = _plan(tmp_path, "all")
    groups = _outcomes(plan)
    batch = build_tables(plan, _result(plan, [o for g in groups for o in g]))
    assert all("raw" in o for g in groups for o in g)  # the caller's outcomes are left alone
    streamed = _stream(tmp_path, "all")
    a = batch["runs"].sort_values(KEYS).reset_index(drop=True)
    b = streamed.runs.sort_values(KEYS).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[KEYS + STATS], b[KEYS + STATS], check_dtype=False)
    assert len(batch["samples"]) == len(streamed.samples) and len(batch["aggregates"]) == len(streamed.aggregates)
    assert [d["code"] for d in a.diagnostics[0]] == [d["code"] for d in b.diagnostics[0]]


def test_drift_is_seen_from_the_aggregates_where_no_sample_was_kept(tmp_path):
    def codes(diag):
        return {d["code"]: d["message"] for d in diag}

    for keep in ("none", "window"):
        r = _stream(tmp_path / "long", keep, seed=1, a={"step_at": 0.5})  # a: 30 % slower from half way on
        rows = r.runs.set_index(KEYS)
        stored = codes(rows.loc[("a", "alone", 0), "diagnostics"])
        assert "drift" in stored and "per-second" not in stored["drift"]  # the driver had every inference
        # the same diagnostics again from the loaded tables: from the samples, or the seconds' medians
        again = results.diagnose(r.runs.drop(columns="diagnostics"), r.samples, r.telemetry, r.aggregates)
        found = codes(again[rows.index.get_loc(("a", "alone", 0))])
        assert "drift" in found
        assert ("from per-second medians" in found["drift"]) == (keep == "none"), found["drift"]
        if keep == "none":
            assert "% above that of the first" in found["drift"]


def test_a_short_warmup_from_per_second_medians():
    from trt_ray_bench.results.diagnose import bins_diagnostics

    n = np.full(40, 300)
    p50 = np.full(40, 1.0)
    p50[:4] = 1.3  # the first 10 % of the inferences (4 s) 30 % slower
    found = bins_diagnostics(n, p50, 10)
    assert [d["code"] for d in found] == ["warmup_short"]
    assert "from per-second medians" in found[0]["message"] and "it was 10 inferences" in found[0]["message"]
    assert bins_diagnostics(n, np.full(40, 1.0)) == []
    assert "warmup_short" not in [d["code"] for d in bins_diagnostics(n[:8], p50[:8])]  # too few seconds to tell
