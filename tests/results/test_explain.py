"""Explanations: the telemetry of each row's window, and sentences that compare rows,
on the real H100 trees and on small controlled tables."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench import results
from trt_ray_bench.errors import UserError

H100 = Path(__file__).resolve().parents[1] / "data" / "h100"
MS = 1_000_000


def _tel(run_id, source, metric, t_ms, values):
    t = np.asarray(t_ms, dtype=np.int64) * MS
    return pd.DataFrame({"run_id": run_id, "t_ns": t, "source": source, "metric": metric,
                         "value": np.broadcast_to(np.asarray(values, dtype=float), t.shape), "unit": ""})


def _pair(p50_alone, p50_together, **extra):
    """Two ok rows of one model: alone in 0..100 ms, together in 200..300 ms."""
    return pd.DataFrame([
        {"run_id": "r", "model": "m", "phase": ph, "repeat": 0, "mode": "inference", "status": "ok", "p50_ms": p50,
         "n_models": n, "window_start_ns": a * MS, "window_end_ns": b * MS, **extra}
        for ph, p50, n, a, b in (("alone", p50_alone, 1, 0, 100), ("together", p50_together, 2, 200, 300))])


def test_window_telemetry_h100_gap_study():
    r = results.load(H100 / "seed001_gap_study")
    w = results.window_telemetry(r.runs, r.telemetry)
    assert list(w.index) == list(r.runs.index)
    default, mx = r.runs.clocks_mode == "default", r.runs.clocks_mode == "max"
    assert w.tel_gpu_freq_mhz[default].tolist() == pytest.approx([1980.0] * 5)
    assert w.tel_gpu_freq_mhz[mx].tolist() == pytest.approx([1830.0] * 5)  # locked: NVML reads 1830
    assert (w.tel_pstate == 0).all() and (w.tel_throttle_frac == 0).all()  # the run's throttling came after
    assert w.tel_power_w.between(100, 200).all() and w.tel_temp_c.between(25, 45).all()
    # the GPU idles between inferences: the longer the gap, the lower its utilization
    util = w.tel_gpu_util_pct[default].to_numpy()
    assert util[0] > 5 and util[-1] < 1 and (np.diff(util) <= 0).all()
    assert w.tel_cpu_util_pct.between(0, 100).all()


def test_window_telemetry_jetson_names_short_windows_and_missing():
    runs = _pair(1.0, 2.0)
    runs.loc[2] = {**runs.loc[0], "model": "unmeasured", "window_start_ns": None, "window_end_ns": None}
    t = np.arange(0, 400, 20)
    tel = pd.concat([
        _tel("r", "tegrastats", "gpu_freq_mhz", t, np.where(t < 150, 612.0, 1300.0)),
        _tel("r", "tegrastats", "gpu_util_pct", t, np.where(t < 150, 40.0, 99.0)),
        _tel("r", "tegrastats", "power_mw:VDD_GPU_SOC", t, np.where(t < 150, 4000.0, 9000.0)),
        _tel("r", "tegrastats", "power_mw:VDD_IN", t, 20000.0),  # the board, not the GPU
        _tel("r", "tegrastats", "cpu0_util_pct", t, 10.0),
        _tel("r", "tegrastats", "cpu1_util_pct", t, np.where(t < 150, 30.0, 50.0)),
        _tel("r", "tegrastats", "temp_c:gpu", t, 50.0),
    ])
    w = results.window_telemetry(runs, tel)
    assert w.loc[0, ["tel_gpu_freq_mhz", "tel_gpu_util_pct", "tel_power_w", "tel_cpu_util_pct"]].tolist() == [
        612.0, 40.0, 4.0, 20.0]
    assert w.loc[1, ["tel_gpu_freq_mhz", "tel_power_w", "tel_cpu_util_pct", "tel_temp_c"]].tolist() == [
        1300.0, 9.0, 30.0, 50.0]
    assert w.loc[[0, 1], ["tel_pstate", "tel_throttle_frac"]].isna().all().all()  # no NVML on a Jetson
    assert w.loc[2].isna().all()  # no window, nothing claimed
    # NVML and host win over tegrastats where a run has both
    both = pd.concat([tel, _tel("r", "nvml", "gpu_freq_mhz", t, 999.0), _tel("r", "host", "cpu_util_pct", t, 7.0)])
    w2 = results.window_telemetry(runs, both)
    assert w2.loc[0, "tel_gpu_freq_mhz"] == 999.0 and w2.loc[0, "tel_cpu_util_pct"] == 7.0
    # a window shorter than the polling interval: the reading in force (the latest before its end)
    short = runs.iloc[[0]].assign(window_start_ns=203 * MS, window_end_ns=207 * MS)
    assert results.window_telemetry(short, tel).tel_gpu_freq_mhz.iloc[0] == 1300.0


def test_explain_h100_alone_vs_together_mps_off():
    r = results.load(H100 / "gpu_alone_together")
    off = r.runs[~r.runs.mps]
    lines = results.explain(off, r.telemetry, "phase")
    assert len(lines) == 5
    for line in lines:
        model = line.split(" ")[0]
        assert line.startswith(f"{model} together vs alone: p50 +")
        a, b = map(float, re.search(r"GPU utilization (\d+) → (\d+) %", line).groups())
        assert b > a  # the GPU got busier together
        assert "SM clock 1980 → 1980 MHz (unchanged)" in line and "P-state P0 → P0 (unchanged)" in line
        c, d = map(float, re.search(r"CPU load (\d+) → (\d+) %", line).groups())
        assert d > c
    det = next(x for x in lines if x.startswith("yolov8n together"))
    assert "p50 +396 % (0.92 → 4.55 ms)" in det
    # both runs: each run's pairs, told apart by MPS, not by run id
    both = results.explain(r.runs, r.telemetry, "phase")
    assert len(both) == 10 and sum(", MPS on:" in x for x in both) == 5 and not any("run 2026" in x for x in both)


def test_explain_h100_mps_gap_and_clocks():
    r = results.load(H100 / "gpu_alone_together")
    mps = results.explain(r.runs, r.telemetry, "mps")
    assert len(mps) == 10 and all(" MPS on vs MPS off, " in x for x in mps)
    cls_t = next(x for x in mps if x.startswith("yolov8n-cls MPS on vs MPS off, together"))
    assert "p50 -81 % (4.56 → 0.88 ms)" in cls_t

    g = results.load(H100 / "seed001_gap_study")
    gaps = results.explain(g.runs, g.telemetry, "gap_s")
    assert len(gaps) == 8  # 4 gaps against gap 0, in each of the two runs
    assert gaps[0].startswith("gap-0.01 (gap 0.01 s) vs gap-0 (gap 0 s), clocks default: p50 +69 %")
    assert all("SM clock 1980 → 1980 MHz (unchanged)" in x for x in gaps if "clocks default" in x)
    clocks = results.explain(g.runs, g.telemetry, "clocks_mode")
    assert len(clocks) == 5 and all(" clocks max vs clocks default, gap " in x for x in clocks)
    assert all("SM clock 1980 → 1830 MHz," in x for x in clocks)  # a change: no "(unchanged)"
    assert sum("p50 barely differs" in x for x in clocks) == 2  # gaps 0.01 and 0.05
    base = results.explain(g.runs, g.telemetry, "clocks_mode", baseline="max")
    assert base[0].startswith("gap-0 clocks default vs clocks max")


def test_explain_says_only_what_was_measured():
    runs = _pair(1.00, 1.01)
    assert results.explain(runs, pd.DataFrame(columns=["run_id", "t_ns", "source", "metric", "value", "unit"]),
                           "phase") == ["m together vs alone: p50 barely differs (1.00 → 1.01 ms, +1.0 %) "
                                        "(untested: one run each: run-to-run noise unknown); "
                                        "no telemetry was measured in these windows."]
    t = np.arange(0, 400, 10)
    tel = _tel("r", "host", "cpu_util_pct", t, np.where(t < 150, 10.0, 60.0))
    (line,) = results.explain(_pair(1.0, 3.0), tel, "phase")
    assert line == ("m together vs alone: p50 +200 % (1.00 → 3.00 ms) (untested: one run each: run-to-run noise "
                    "unknown); in the same windows CPU load 10 → 60 %.")
    thr = pd.concat([tel, _tel("r", "nvml", "throttle_reasons", t, np.where(t >= 250, 0x4, 0x1))])
    (line,) = results.explain(_pair(1.0, 3.0), thr, "phase")
    assert "throttled in 0 → 55 % of readings" in line  # 6 of the 11 readings in 200..300 ms


def test_explain_pairs_and_errors():
    runs = pd.concat([_pair(1.0, 2.0), _pair(1.0, 2.0).assign(repeat=1, p50_ms=[1.0, 4.0]),
                      _pair(5.0, 5.0).assign(model="other"),
                      pd.DataFrame([{"run_id": "r", "model": "x", "phase": "together", "status": "failed"}])],
                     ignore_index=True)
    lines = results.explain(runs, None, "phase")
    assert [x.split(":")[0] for x in lines] == ["m together vs alone, repeat 0", "m together vs alone, repeat 1",
                                                "other together vs alone, repeat 0"]
    assert "p50 +300 %" in lines[1] and "barely differs" in lines[2]
    with pytest.raises(UserError, match="'nope' is not a runs column"):
        results.explain(runs, None, "nope")
    with pytest.raises(UserError, match="'sometimes' is not a value of phase"):
        results.explain(runs, None, "phase", baseline="sometimes")


def test_explain_names_a_sweep_axis_by_its_spec_field():
    runs = pd.concat([_pair(1.0, 2.0).assign(**{"axis:models.*.options.threads": t}, p50_ms=p)
                      for t, p in ((1, [1.0, 2.0]), (2, [0.5, 1.0]))], ignore_index=True)
    runs = runs[runs.phase == "alone"]
    lines = results.explain(runs, None, "axis:models.*.options.threads")
    assert lines and lines[0].startswith("m models.*.options.threads=2 vs models.*.options.threads=1: p50 -50 %"), lines


def test_explain_names_the_pipeline_stage_that_moved_h100_seed002():
    """Seed 002's surprise on the real H100 run (TensorRT, repeat 0): yolov8n-cls got
    slower without the metric work. The sentence shows why: its preprocess and inference
    stages were slower in that window, by more than the 0.14 ms of metric work removed."""
    r = results.load(H100 / "seed002_inference_vs_validation").only("20261123-171820-bc490b")
    rows = r.runs[(r.runs.phase == "alone") & r.runs["mode"].isin(["validation", "without_val"]) & (r.runs.repeat == 0)]
    lines = {x.split(" ")[0]: x for x in results.explain(rows, r.telemetry, "mode", baseline="validation")}
    assert len(lines) == 5
    cls = lines["yolov8n-cls"]
    assert cls.startswith("yolov8n-cls without_val vs validation: p50 +21 % (1.37 → 1.65 ms) (untested: one run "
                          "each: run-to-run noise unknown); stages (p50, ms): "
                          "preprocess +0.16, inference +0.15, metric work -0.14 (one side only), load +0.08, "
                          "postprocess +0.02; in the same windows")
    for line in lines.values():  # the metric work is always named, removed
        assert re.search(r"metric work -\d+\.\d\d \(one side only\)", line)
    # rows without stage times (inference mode) get no stage clause
    inf = r.runs[(r.runs["mode"] == "inference") & (r.runs.repeat == 0)]
    assert not any("stages (p50" in x for x in results.explain(inf, r.telemetry, "phase"))


# --- averaged readings counted by the share of their period in the window -----------

TEGRASTATS_LINES = Path(__file__).resolve().parents[1] / "telemetry" / "data" / "tegrastats_lines.txt"


def _recorded_line(key):
    text = TEGRASTATS_LINES.read_text()
    return re.search(rf"^{re.escape(key)}: (.*)$", text, re.M).group(1)


def _tegrastats_run(run_id, t_ms, gr3d, interval_ms=100):
    """tegrastats telemetry as the sampler stores it: the AGX Orin line recorded with
    ``tegrastats --interval 100`` (JetPack 6), one per stamp ``t_ms``, its GR3D_FREQ token
    set to ``gr3d`` (``"<load>%@[<MHz>,<MHz>]"``) and stored through the sampler's
    ``with_periods``."""
    from trt_ray_bench.telemetry.tegrastats import parse_line, with_periods

    line = _recorded_line("orin_agx_jp6_dla")
    assert "GR3D_FREQ 14%@[407,407]" in line
    rows = []
    for t, g in zip(t_ms, gr3d):
        _, readings, unknown = parse_line(line.replace("GR3D_FREQ 14%@[407,407]", f"GR3D_FREQ {g}"))
        assert unknown == []
        rows += [(t * MS, m, v, u, a) for m, v, u, a in with_periods(readings, interval_ms / 1000)]
    t, metric, value, unit, avg = zip(*rows)
    return pd.DataFrame({"run_id": run_id, "t_ns": np.asarray(t, dtype=np.int64), "source": "tegrastats",
                         "metric": metric, "value": value, "unit": unit, "avg_s": avg})


def test_a_quarter_second_of_busy_gpu_read_by_tegrastats_every_100_ms():
    """The GPU busy from 10.00 to 10.25 s, tegrastats printing a line every 100 ms, each
    load the busy share of the 100 ms before it: 0 % at 10.0 s, 100 % at 10.1 and 10.2 s,
    50 % at 10.3 s (10.20-10.25 busy). The lines stamped inside the window average 66.7 %;
    counted by the share of each line's interval inside the window: (100 + 100 + 0.5 x 50)
    / 2.5 = 90 %. The GPU clock, instantaneous, is the mean of the lines inside the window."""
    t_ms = np.arange(9700, 10600, 100)
    busy = [max(0, min(t, 10250) - max(t - 100, 10000)) / 100 * 100 for t in t_ms]
    assert busy[3:7] == [0, 100, 100, 50]
    clock = np.where(t_ms < 10050, 306, 1300)  # 10.0 s: 306 MHz; 10.1 and 10.2 s: 1300 MHz
    tel = _tegrastats_run("r", t_ms, [f"{b:.0f}%@[{c},{c}]" for b, c in zip(busy, clock)])
    assert set(tel.loc[tel.metric == "gpu_util_pct", "avg_s"]) == {0.1}
    assert set(tel.loc[tel.metric == "gpu_freq_mhz", "avg_s"]) == {0.0}
    runs = pd.DataFrame([{"run_id": "r", "model": "m", "phase": "alone", "repeat": 0, "mode": "inference",
                          "status": "ok", "window_start_ns": 10000 * MS, "window_end_ns": 10250 * MS}])
    w = results.window_telemetry(runs, tel).iloc[0]
    assert w.tel_gpu_util_pct == pytest.approx(90.0)
    assert w.tel_gpu_freq_mhz == pytest.approx((306 + 1300 + 1300) / 3)  # 10.0, 10.1, 10.2 s: inside
    assert w.tel_cpu_util_pct == pytest.approx((90 + 11 * 100) / 12)  # the line's cores, averaged
    assert w.tel_power_w == pytest.approx(3.15) and w.tel_temp_c == pytest.approx(69.125)  # rails: instantaneous
    # the same lines read as instantaneous loads: the 66.7 % of the lines stamped inside
    flat = results.window_telemetry(runs, tel.drop(columns="avg_s")).iloc[0]
    assert flat.tel_gpu_util_pct == pytest.approx(200 / 3)
    # no telemetry_coarse: the window is longer than the 100 ms the loads average
    assert "telemetry_coarse" not in [d["code"] for d in results.diagnose(runs, None, tel).iloc[0]]


def test_an_nvml_power_reading_counts_by_the_share_of_its_second_in_the_window():
    """NVML power averaged over 1 s, read once a second: 100 W over 0-1 s, 200 W over
    1-2 s, 300 W over 2-3 s. The window 0.5-2.0 s holds half of the first second and all
    of the second: (0.5 x 100 + 200) / 1.5 W. The SM clock, read at instants, is the mean
    of the readings inside the window; a window between two clock readings gets the one in
    force."""
    t = np.array([1000, 2000, 3000])
    tel = pd.concat([
        _tel("r", "nvml", "power_mw:gpu", t, [100e3, 200e3, 300e3]).assign(avg_s=1.0),
        _tel("r", "nvml", "gpu_freq_mhz", [400, 900, 1500, 2500], [1000.0, 1400.0, 1800.0, 600.0]).assign(avg_s=0.0),
    ])
    runs = pd.DataFrame([
        {"run_id": "r", "model": "m", "phase": "alone", "status": "ok", "window_start_ns": 500 * MS,
         "window_end_ns": 2000 * MS},
        {"run_id": "r", "model": "m", "phase": "together", "status": "ok", "window_start_ns": 1550 * MS,
         "window_end_ns": 2550 * MS},
        {"run_id": "r", "model": "short", "phase": "alone", "status": "ok", "window_start_ns": 1600 * MS,
         "window_end_ns": 1700 * MS}])
    w = results.window_telemetry(runs, tel)
    assert w.loc[0, "tel_power_w"] == pytest.approx((0.5 * 100 + 200) / 1.5)
    # 1.55-2.55 s: 0.45 of 1-2 s and 0.55 of 2-3 s
    assert w.loc[1, "tel_power_w"] == pytest.approx((0.45 * 200 + 0.55 * 300) / 1.0)
    assert w.loc[0, "tel_gpu_freq_mhz"] == pytest.approx((1400 + 1800) / 2)  # 0.9 and 1.5 s
    assert w.loc[1, "tel_gpu_freq_mhz"] == 600.0  # 2.5 s
    assert w.loc[2, "tel_gpu_freq_mhz"] == 1800.0  # none inside 1.6-1.7 s: the one read at 1.5 s
    assert np.isnan(w.loc[2, "tel_power_w"])  # 0.1 s of a 1 s average: not known


def test_a_window_shorter_than_the_power_period_has_no_power_and_says_so():
    """NVML every 100 ms, power averaged over 1 s, utilization over 1/6 s; a 0.23 s
    window: its utilization is known (counted by overlap), its power is not (NaN, and the
    row's diagnostics say why); a 1.5 s window has both."""
    t = np.arange(0, 4000, 100)
    tel = pd.concat([
        _tel("r", "nvml", "power_mw:gpu", t, 150e3).assign(avg_s=1.0),
        _tel("r", "nvml", "gpu_util_pct", t, np.where(t < 2000, 40.0, 90.0)).assign(avg_s=1 / 6),
        _tel("r", "nvml", "gpu_freq_mhz", t, 1980.0).assign(avg_s=0.0),
    ])
    runs = pd.DataFrame([
        {"run_id": "r", "model": "m", "phase": "alone", "repeat": 0, "mode": "inference", "status": "ok",
         "window_start_ns": 2500 * MS, "window_end_ns": 2730 * MS},
        {"run_id": "r", "model": "m", "phase": "together", "repeat": 0, "mode": "inference", "status": "ok",
         "window_start_ns": 300 * MS, "window_end_ns": 1800 * MS}])
    w = results.window_telemetry(runs, tel)
    assert np.isnan(w.loc[0, "tel_power_w"])
    assert w.loc[0, "tel_gpu_util_pct"] == pytest.approx(90.0) and w.loc[0, "tel_gpu_freq_mhz"] == 1980.0
    assert w.loc[1, "tel_power_w"] == pytest.approx(150.0) and w.loc[1, "tel_gpu_util_pct"] == pytest.approx(40.0)
    d = results.diagnose(runs, None, tel)
    (coarse,) = [x for x in d.iloc[0] if x["code"] == "telemetry_coarse"]
    assert coarse["message"] == ("GPU power is averaged by NVML over 1 s but this window lasted 0.23 s: its power "
                                 "is not known (no value given); lengthen the phase (timing.duration_s or "
                                 "iterations) to at least 1 s")
    assert "telemetry_coarse" not in [x["code"] for x in d.iloc[1]]
    # 0.1 s: utilization too, in one message
    runs.loc[0, "window_end_ns"] = 2600 * MS
    assert results.window_telemetry(runs, tel).loc[0, ["tel_power_w", "tel_gpu_util_pct"]].isna().all()
    (coarse,) = [x for x in results.diagnose(runs, None, tel).iloc[0] if x["code"] == "telemetry_coarse"]
    assert coarse["message"].startswith("GPU utilization is averaged by NVML over 0.167 s and GPU power by NVML "
                                        "over 1 s but this window lasted 0.1 s: their values are not known")
    assert "at least 1 s" in coarse["message"]
