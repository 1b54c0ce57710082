"""The review's findings on diagnose (issue 14), each on a controlled row that today's
code got wrong: short_window in validation modes, sync_boost / display clock counted as
throttling, start_skew's absolute threshold; and explain saying "within noise"."""

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench import results

MS = 1_000_000


def _case(host_ms, *, phase="together", mode="inference", **row):
    x = np.asarray(host_ms, dtype=float)
    ts = np.arange(len(x)) * 2 * MS
    samples = pd.DataFrame({"run_id": "r", "model": "m", "phase": phase, "repeat": 0, "mode": mode,
                            "iteration": np.arange(len(x)), "warmup": False, "in_window": True,
                            "t_start_ns": ts, "t_end_ns": ts + (x * MS).astype(np.int64), "host_ms": x})
    runs = pd.DataFrame([{"run_id": "r", "model": "m", "phase": phase, "repeat": 0, "mode": mode, "status": "ok",
                          "n": len(x), "cv": x.std(ddof=1) / x.mean(), "p50_ms": float(np.median(x)),
                          "window_start_ns": 0, "window_end_ns": int(ts[-1] + x[-1] * MS), "warmup_n": 10, **row}])
    return runs, samples


def _codes(runs, samples, tel=None):
    return [d["code"] for d in results.diagnose(runs, samples, tel).iloc[0]]


def _steady(n, ms=1.0):
    return ms * (1.0 + np.random.default_rng(0).normal(0, 0.01, n))


def test_short_window_counts_the_images_of_a_validation_pass():
    # validation: one pass over 100 images; the spec's iterations (500) were never asked for
    runs, samples = _case(_steady(100), mode="validation", iterations=500, n_images=100, start_skew_us=0.0)
    assert "short_window" not in _codes(runs, samples)
    runs, samples = _case(_steady(90), mode="without_val", iterations=500, n_images=100, start_skew_us=0.0)
    assert "short_window" in _codes(runs, samples)  # 90 of the 100 images: short
    runs, samples = _case(_steady(480), iterations=500, start_skew_us=0.0)  # inference: as before
    assert "short_window" in _codes(runs, samples)


def test_sync_boost_and_display_clock_are_not_throttling():
    runs, samples = _case(_steady(400), phase="alone")
    t = np.arange(0, 200, 10) * MS
    tel = pd.DataFrame({"run_id": "r", "t_ns": t, "source": "nvml", "metric": "throttle_reasons",
                        "value": np.where(np.arange(len(t)) % 2, 0x10 | 0x1, 0x100 | 0x2).astype(float), "unit": ""})
    assert _codes(runs, samples, tel) == []
    assert (results.window_telemetry(runs, tel)["tel_throttle_frac"] == 0).all()
    hot = tel.assign(value=float(0x10 | 0x20))
    d = results.diagnose(runs, samples, hot).iloc[0]
    assert [x["code"] for x in d] == ["throttle"] and "sw_thermal_slowdown" in d[0]["message"]
    assert "sync_boost" not in d[0]["message"]


def test_start_skew_is_relative_to_the_latency():
    # 500 µs apart: 2.5 inferences of a 0.2 ms model ran before the others started
    runs, samples = _case(_steady(400, 0.2), start_skew_us=500.0, iterations=400)
    d = results.diagnose(runs, samples, None).iloc[0]
    assert [x["code"] for x in d] == ["start_skew"] and "2.5 of this model's median" in d[0]["message"]
    # 2 ms apart is 2 % of one 100 ms inference: nothing ran alone
    runs, samples = _case(_steady(400, 100.0), start_skew_us=2000.0, iterations=400)
    assert "start_skew" not in _codes(runs, samples)


def _pair(alone, together, iso="process"):
    """One model alone and together in each repeat (its p50s), a process per repeat."""
    return pd.DataFrame([{"run_id": "r", "model": "m", "phase": p, "repeat": i, "status": "ok", "p50_ms": v,
                          "confidence": 0.95, "repeat_isolation": iso}
                         for p, vals in (("alone", alone), ("together", together)) for i, v in enumerate(vals)])


def test_explain_says_what_the_runs_show():
    tel = pd.DataFrame(columns=["run_id", "t_ns", "source", "metric", "value", "unit"])
    (said,) = results.explain(_pair([1.0], [1.05]), tel, "phase")
    assert "(untested: one run each: run-to-run noise unknown)" in said
    said = results.explain(_pair([1.0, 1.2, 0.9], [1.05, 1.1, 1.0]), tel, "phase")
    assert len(said) == 3 and all("not shown at 95 % over 3 pairs of runs" in s for s in said)
    assert "would have been" in said[0]
    said = results.explain(_pair([1.0, 1.2, 0.9], [1.2, 1.45, 1.07]), tel, "phase")
    assert all("slower at 95 % over 3 pairs of runs (×1.199 [1.175, 1.224])" in s for s in said)
    (said,) = results.explain(_pair([1.0, 1.2, 0.9], [1.2, 1.45, 1.07], iso="actor").query("repeat == 0"), tel,
                              "phase")
    assert "untested" in said


def test_an_averaged_reading_describes_the_window_it_averages():
    """NVML power is an average over the past second: a reading stamped 0.3 s after a 0.5 s
    window ends describes that window (placed at its period's middle), and a reading stamped
    inside the window but averaging mostly the second before it does not."""
    runs = pd.DataFrame([{"run_id": "r", "model": "m", "phase": "alone", "status": "ok",
                          "window_start_ns": 1000 * MS, "window_end_ns": 1500 * MS}])
    tel = pd.DataFrame({"run_id": "r", "t_ns": [1100 * MS, 1800 * MS], "source": "nvml", "metric": "power_mw:gpu",
                        "value": [100_000.0, 300_000.0], "unit": "mW", "avg_s": [1.0, 1.0]})
    # the window (0.5 s) is shorter than the period each reading averages (1 s): no value
    assert np.isnan(results.window_telemetry(runs, tel)["tel_power_w"].iloc[0])
    # a 2 s window 1.0-3.0 s: the reading stamped 1.1 s has 0.1 of its second inside, the one
    # stamped 1.8 s 0.8: weighted by those shares
    runs = runs.assign(window_end_ns=3000 * MS)
    w = results.window_telemetry(runs, tel)["tel_power_w"].iloc[0]
    assert w == pytest.approx((0.1 * 100 + 0.8 * 300) / 0.9)
