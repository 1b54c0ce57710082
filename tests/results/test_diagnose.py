"""Diagnostics: controlled latency series and telemetry, the real H100 trees, and one real
CPU run whose runs.parquet carries them."""

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench import results
from trt_ray_bench.results.diagnose import THRESHOLDS

H100 = Path(__file__).resolve().parents[1] / "data" / "h100"
MS = 1_000_000  # ns


def _case(host_ms, *, run_id="r", model="m", phase="alone", t0=0, **row):
    """One runs row and its measured samples (one every 2 ms from ``t0``), statistics
    computed the way build_tables does."""
    x = np.asarray(host_ms, dtype=float)
    ts = t0 + np.arange(len(x)) * 2 * MS
    samples = pd.DataFrame({"run_id": run_id, "model": model, "phase": phase, "repeat": 0, "mode": "inference",
                            "iteration": np.arange(len(x)), "warmup": False, "in_window": True,
                            "t_start_ns": ts, "t_end_ns": ts + (x * MS).astype(np.int64), "host_ms": x})
    runs = pd.DataFrame([{"run_id": run_id, "model": model, "phase": phase, "repeat": 0, "mode": "inference",
                          "status": "ok", "n": len(x), "cv": x.std(ddof=1) / x.mean() if len(x) > 1 else np.nan,
                          "window_start_ns": int(ts[0]) if len(x) else None,
                          "window_end_ns": int(ts[-1] + x[-1] * MS) if len(x) else None, "warmup_n": 10, **row}])
    return runs, samples


def _tel(run_id, metric, t_ns, values, source="nvml"):
    return pd.DataFrame({"run_id": run_id, "t_ns": np.asarray(t_ns, dtype=np.int64), "source": source,
                         "metric": metric, "value": np.asarray(values, dtype=float), "unit": ""})


def _codes(diag):
    return [d["code"] for d in diag]


def _steady(n=400, seed=0):
    return 1.0 + np.random.default_rng(seed).normal(0, 0.01, n)


def test_a_falling_start_is_a_short_warmup_a_flat_one_is_not():
    falling = _steady() + 0.4 * np.exp(-np.arange(400) / 15)
    runs, samples = _case(falling)
    (d,) = results.diagnose(runs, samples, None)
    assert "warmup_short" in _codes(d)
    msg = next(x["message"] for x in d if x["code"] == "warmup_short")
    assert "still falling" in msg and "first 10 %" in msg and "it was 10 inferences" in msg
    runs, samples = _case(_steady())
    assert results.diagnose(runs, samples, None).iloc[0] == []
    # one slow first inference is an outlier, not a warm-up
    spike = _steady()
    spike[0] = 5.0
    runs, samples = _case(spike)
    assert "warmup_short" not in _codes(results.diagnose(runs, samples, None).iloc[0])
    # a rising series is slower at the end, not at the start
    runs, samples = _case(np.linspace(1.0, 1.5, 400))
    assert "warmup_short" not in _codes(results.diagnose(runs, samples, None).iloc[0])
    # a head 10 % above the median but inside the rest's own jitter (0.8 / 1.2 alternating)
    jitter = np.r_[np.full(40, 1.1), np.tile([0.8, 1.2], 180)]
    runs, samples = _case(jitter)
    assert "warmup_short" not in _codes(results.diagnose(runs, samples, None).iloc[0])
    # slow at first but slower still in the next tenth: not falling yet when measuring began
    bump = _steady() + np.r_[np.full(40, 0.2), np.full(40, 0.5), np.zeros(320)]
    runs, samples = _case(bump)
    assert "warmup_short" not in _codes(results.diagnose(runs, samples, None).iloc[0])


def test_drift_between_halves_in_words():
    runs, samples = _case(np.r_[_steady(200), _steady(200, 1) * 1.3])
    (d,) = results.diagnose(runs, samples, None)
    assert "drift" in _codes(d)
    msg = next(x["message"] for x in d if x["code"] == "drift")
    assert "30 % above" in msg and "(1.00 → 1.30 ms)" in msg
    runs, samples = _case(np.r_[_steady(200), _steady(200, 1) * 1.05])  # within 10 %
    assert "drift" not in _codes(results.diagnose(runs, samples, None).iloc[0])


def test_cv_and_few_samples_name_the_unreliable_percentiles():
    noisy = 1.0 + np.abs(np.random.default_rng(2).normal(0, 0.4, 400))
    runs, samples = _case(noisy)
    (d,) = results.diagnose(runs, samples, None)
    assert _codes(d)[0] == "cv" and f"{runs.cv[0] * 100:.0f} % of the mean" in d[0]["message"]
    # below these counts no distribution-free 95 % interval of the percentile exists
    for n, weak in ((5, "p50, p90, p95 and p99 have no distribution-free 95 % interval below p50 6, p90 36"),
                    (50, "p95 and p99 have no distribution-free 95 % interval below p95 72, p99 368"),
                    (100, "p99 has no distribution-free 95 % interval below p99 368"), (400, None)):
        runs, samples = _case(_steady(n))
        d = results.diagnose(runs, samples, None).iloc[0]
        few = [x["message"] for x in d if x["code"] == "few_samples"]
        if weak is None:
            assert few == []
        else:
            assert len(few) == 1 and f"only {n} measured inferences" in few[0] and weak in few[0]
    assert THRESHOLDS["min_samples"] == {"p50": 6, "p90": 36, "p95": 72, "p99": 368}
    # at the row's own level: 90 % needs fewer
    runs, samples = _case(_steady(250), confidence=0.9)
    few = [x["message"] for x in results.diagnose(runs, samples, None).iloc[0] if x["code"] == "few_samples"]
    assert few and "below p99 299" in few[0] and "90 %" in few[0]


def test_clock_change_counts_only_inside_the_window():
    runs, samples = _case(_steady(100))  # window 0 .. ~199 ms
    t = np.arange(-300, 500, 10) * MS
    outside = np.where((t < 0) | (t > 250 * MS), 1410.0, 1980.0)
    d = results.diagnose(runs, samples, _tel("r", "gpu_freq_mhz", t, outside)).iloc[0]
    assert "clock_changed" not in _codes(d)
    inside = np.where(t > 100 * MS, 1410.0, 1980.0)
    d = results.diagnose(runs, samples, _tel("r", "gpu_freq_mhz", t, inside)).iloc[0]
    msg = next(x["message"] for x in d if x["code"] == "clock_changed")
    assert "1980 → 1410 MHz" in msg and "29 % apart" in msg
    # within 5 %: no warning
    small = np.where(t > 100 * MS, 1900.0, 1980.0)
    assert "clock_changed" not in _codes(results.diagnose(runs, samples, _tel("r", "gpu_freq_mhz", t, small)).iloc[0])


def test_throttle_reasons_decoded_idle_and_app_clocks_ignored():
    runs, samples = _case(_steady(100))
    t = np.arange(0, 200, 10) * MS
    quiet = _tel("r", "throttle_reasons", t, np.where(np.arange(len(t)) % 2, 0x1, 0x2))
    assert _codes(results.diagnose(runs, samples, quiet).iloc[0]) == ["few_samples"]  # p99 of 100: nothing else
    hot = _tel("r", "throttle_reasons", t, np.where(np.arange(len(t)) < 5, 0x4 | 0x20 | 0x1, 0))
    (d,) = results.diagnose(runs, samples, hot)
    assert _codes(d) == ["few_samples", "throttle"]
    assert "sw_power_cap, sw_thermal_slowdown (in 5 of 20 readings)" in d[1]["message"]
    assert "gpu_idle" not in d[1]["message"]
    # another run's throttling at the same instants is not this row's
    assert _codes(results.diagnose(runs, samples, hot.assign(run_id="other")).iloc[0]) == ["few_samples"]


def test_start_skew_and_short_together_window():
    runs, samples = _case(_steady(480), phase="together", start_skew_us=2500.0, iterations=500)
    (d,) = results.diagnose(runs, samples, None)
    assert _codes(d) == ["start_skew", "short_window"]
    assert "2500 µs apart" in d[0]["message"] and "holds 480 of the 500 requested" in d[1]["message"]
    runs, samples = _case(_steady(480), phase="together", start_skew_us=30.0, duration_s=1.0, window_s=0.8)
    assert [x["message"] for x in results.diagnose(runs, samples, None).iloc[0]] == [
        "the together window lasted 0.8 s of the 1 s requested"]
    runs, samples = _case(_steady(480), phase="together", start_skew_us=30.0, duration_s=1.0, window_s=0.97)
    assert results.diagnose(runs, samples, None).iloc[0] == []


def test_rows_keep_their_index_failed_rows_get_nothing_and_no_window_uses_the_samples():
    a_runs, a_s = _case(_steady(100), model="a")
    b_runs, b_s = _case(_steady(100), model="b", t0=1000 * MS)
    runs = pd.concat([a_runs, b_runs]).drop(columns=["window_start_ns", "window_end_ns"])
    runs.index = [7, 3]
    runs.loc[7, "status"] = "failed"
    t = np.arange(0, 1300, 10) * MS
    tel = _tel("r", "gpu_freq_mhz", t, np.where(t > 1100 * MS, 1000.0, 1980.0))  # inside b's samples only
    d = results.diagnose(runs, pd.concat([a_s, b_s]), tel)
    assert list(d.index) == [7, 3] and d[7] == [] and _codes(d[3]) == ["few_samples", "clock_changed"]


def test_fast_on_100k_samples():
    rows, frames = [], []
    for i in range(100):
        r, s = _case(_steady(1000, i), model=f"m{i}", t0=i * 3000 * MS)
        rows.append(r)
        frames.append(s)
    runs, samples = pd.concat(rows, ignore_index=True), pd.concat(frames, ignore_index=True)
    t = np.arange(0, 300_000, 10) * MS
    tel = pd.concat([_tel("r", "gpu_freq_mhz", t, np.full(len(t), 1980.0)),
                     _tel("r", "throttle_reasons", t, np.zeros(len(t)))])
    t0 = time.perf_counter()
    d = results.diagnose(runs, samples, tel)
    assert time.perf_counter() - t0 < 3.0
    assert len(d) == 100 and all(x == [] for x in d)


def test_h100_trees():
    r = results.load(H100 / "seed001_gap_study")
    d = results.diagnose(r.runs, r.samples, r.telemetry)
    # the cv warning follows the stored statistics
    assert [("cv" in _codes(x)) for x in d] == list(r.runs.cv > THRESHOLDS["cv"])
    # clocks max: after the last window the clock went back to 1980 MHz with power-cap and
    # thermal reasons set; none of it inside a measured window
    mx = r.runs.clocks_mode == "max"
    tel = r.telemetry[r.telemetry.run_id == r.runs.run_id[mx].iloc[0]]
    assert (tel[tel.metric == "throttle_reasons"].value == 36).any()
    assert tel[tel.metric == "gpu_freq_mhz"].value.max() == 1980 and (tel[tel.metric == "gpu_freq_mhz"].value == 1830).any()
    assert not any(c in _codes(x) for x in d for c in ("clock_changed", "throttle"))
    # moved into the gap-0.2 window, the same readings are found and named
    last = r.runs[mx].iloc[-1]
    moved = r.telemetry.copy()
    late = (moved.run_id == last.run_id) & (moved.t_ns > last.window_end_ns)
    moved.loc[late, "t_ns"] -= int(moved.loc[late, "t_ns"].max() - last.window_end_ns + 1000)
    d2 = results.diagnose(r.runs, r.samples, moved)
    i = r.runs.index[mx][-1]
    assert _codes(d2[i])[-2:] == ["clock_changed", "throttle"]
    assert "window: 1830 → 19" in d2[i][-2]["message"]  # the lock released: back up to 19xx MHz
    assert "sw_power_cap, sw_thermal_slowdown (in 6 of" in d2[i][-1]["message"]
    assert sum("clock_changed" in _codes(x) for x in d2) == 1

    r = results.load(H100 / "gpu_alone_together")
    d = results.diagnose(r.runs, r.samples, r.telemetry)
    by = {(row.model, row.phase, row.mps): _codes(x) for (_, row), x in zip(r.runs.iterrows(), d)}
    assert "drift" in by[("yolov8n-cls", "alone", True)]  # 0.39 ms, then 0.49 ms from 40 % on
    assert "warmup_short" in by[("yolov8n-obb", "alone", True)]  # 1.75 ms, then 1.62 flat
    assert not any("warmup_short" in c or "start_skew" in c for (m, ph, _), c in by.items() if ph == "together")
    assert not any("few_samples" in c for c in by.values())  # 500 each


def test_old_trees_load_and_are_diagnosed(tmp_path):
    shutil.copytree(H100 / "gpu_alone_together", tmp_path / "old")
    r = results.load(tmp_path)
    assert len(r.runs) == 20
    assert results.diagnose(r.runs, r.samples, r.telemetry).map(len).sum() > 0


@pytest.mark.ray
@pytest.mark.slow
def test_a_real_run_stores_diagnostics(tmp_path, cls_onnx, ray_local):
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.spec import spec_from_dict

    spec = spec_from_dict({
        "name": "diag", "output": str(tmp_path / "results"),
        "models": [{"path": str(cls_onnx), "name": "a", "options": {"threads": 1}},
                   {"path": str(cls_onnx), "name": "b", "options": {"threads": 1}}],
        "timing": {"iterations": 5, "warmup": 1}, "telemetry": {"interval_s": 0.02},
    })
    out = run_plan(make_plan(spec), log=lambda s: None)
    r = results.load(out["run_dir"])
    assert "diagnostics" in r.runs.columns and set(r.runs.status) == {"ok"} and len(r.runs) == 4
    for _, row in r.runs.iterrows():
        diag = [dict(x) for x in row.diagnostics]
        few = [x for x in diag if x["code"] == "few_samples"]
        assert len(few) == 1 and f"only {row.n} measured inferences" in few[0]["message"]
        assert all(x["message"] in list(row.warnings) for x in diag)  # printed by trb run
    # what is stored is what diagnose says of the stored tables
    again = results.diagnose(r.runs, r.samples, r.telemetry)
    assert [[dict(x) for x in d] for d in r.runs.diagnostics] == list(again)


def test_repeat_spread_names_the_repeats_that_disagree():
    """Seed 002's surprise ("slower without the metric work") is often this: one repeat of
    each mode, while the repeats of one mode already differ by more than the metric cost."""
    rows = []
    for rep, p50 in enumerate([6.9, 7.3, 6.0]):        # yolov8n validation on the H100: 20 % apart
        rows.append({"run_id": "r", "model": "det", "phase": "alone", "mode": "validation", "repeat": rep,
                     "status": "ok", "p50_ms": p50})
    for rep, p50 in enumerate([1.00, 1.04, 0.98]):     # 6 % apart: within the threshold
        rows.append({"run_id": "r", "model": "cls", "phase": "alone", "mode": "validation", "repeat": rep,
                     "status": "ok", "p50_ms": p50})
    rows.append({"run_id": "r", "model": "det", "phase": "alone", "mode": "without_val", "repeat": 0,
                 "status": "ok", "p50_ms": 6.0})       # one repeat: nothing to compare
    rows.append({"run_id": "r", "model": "cls", "phase": "alone", "mode": "validation", "repeat": 3,
                 "status": "failed", "p50_ms": 9.0})   # a failed repeat does not count
    d = results.diagnose(pd.DataFrame(rows), None, None)
    assert [_codes(x) for x in d] == [["repeat_spread"]] * 3 + [[]] * 5
    assert d.iloc[0][0]["message"] == d.iloc[2][0]["message"] == (
        "p50 spans 19 % of its median across the 3 repeats (6.00 to 7.30 ms): a difference between "
        "conditions smaller than that is not shown by one repeat of each")


def test_repeat_spread_on_the_h100_seed002_run():
    """Three repeats of seed 002 on the H100: the CPU-bound pipeline rows disagree across
    repeats by more than the metric work costs; the GPU-bound inference rows alone do not."""
    r = results.load(H100 / "seed002_inference_vs_validation").only("20261123-171820-bc490b")
    d = results.diagnose(r.runs, r.samples, r.telemetry)
    spread = {(row.model, row["mode"], row.phase) for (_, row), x in zip(r.runs.iterrows(), d)
              if "repeat_spread" in _codes(x)}
    assert ("yolov8n-pose", "validation", "alone") in spread and ("yolov8n-obb", "without_val", "alone") in spread
    assert not {k for k in spread if k[1] == "inference" and k[2] == "alone" and k[0] in ("yolov8n", "yolov8n-obb")}
    assert len(spread) >= 10


def _tegrastats_tel(run_id, t_ns, line_names):
    """Telemetry as the tegrastats sampler stores it, from real board lines
    (tests/telemetry/data/tegrastats_lines.txt): one line per instant."""
    from trt_ray_bench.telemetry.tegrastats import parse_line

    lines = dict(l.split(": ", 1) for l in (Path(__file__).resolve().parents[1] / "telemetry" / "data" /
                                            "tegrastats_lines.txt").read_text().splitlines()
                 if l and not l.startswith("#") and ": " in l)
    rows = []
    for t, name in zip(t_ns, line_names):
        for metric, value, unit in parse_line(lines[name])[1]:
            rows.append({"run_id": run_id, "t_ns": int(t), "source": "tegrastats", "metric": metric,
                         "value": value, "unit": unit})
    return pd.DataFrame(rows)


def test_dla_idle_when_the_models_core_was_off_through_the_window():
    """AGX Orin lines: NVDLA0 busy (``NVDLA0_FREQ @1600``, JetPack 6) or both cores off."""
    runs, samples = _case(_steady(100), dla_core=0)  # window 0 .. ~199 ms
    t = np.arange(0, 200, 20) * MS
    off = _tegrastats_tel("r", t, ["orin_agx_r36.4.4"] * len(t))
    (d,) = results.diagnose(runs, samples, off)
    msg = next(x["message"] for x in d if x["code"] == "dla_idle")
    assert msg.startswith("DLA core 0 was idle through the measured window (tegrastats printed NVDLA0 off in all "
                          "10 of its readings)")
    busy = _tegrastats_tel("r", t, ["orin_agx_r36.4.4"] * 5 + ["orin_agx_jp6_dla"] * 5)
    assert "dla_idle" not in _codes(results.diagnose(runs, samples, busy).iloc[0])
    # a model on the GPU, or no tegrastats readings in its window: nothing to say
    gpu_runs, _ = _case(_steady(100), dla_core=None)
    assert "dla_idle" not in _codes(results.diagnose(gpu_runs, samples, off).iloc[0])
    late = _tegrastats_tel("r", t + 1000 * MS, ["orin_agx_r36.4.4"] * len(t))
    assert "dla_idle" not in _codes(results.diagnose(runs, samples, late).iloc[0])
    # core 1 is read from its own readings (NVDLA1 off)
    runs1, _ = _case(_steady(100), dla_core=1)
    assert "dla_idle" in _codes(results.diagnose(runs1, samples, off).iloc[0])
