"""Energy per window (``results.energy``): the arithmetic through the real join code
(``explain.window_mean``), on telemetry frames laid out as the Monitor writes them, on real
recorded tegrastats lines of each board generation, and on the recorded H100 tree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench import results
from trt_ray_bench.results.energy import COLUMNS, window_energy
from trt_ray_bench.telemetry.tegrastats import parse_line, with_periods

DATA = Path(__file__).parents[1] / "data"
LINES = {m.group(1): m.group(2) for m in (re.match(r"^([a-z0-9_.]+): (.*)$", raw) for raw in
                                          (Path(__file__).parents[1] / "telemetry" / "data" /
                                           "tegrastats_lines.txt").read_text().splitlines()) if m}
S = 1_000_000_000  # ns


def _tel(rows):
    """A telemetry frame: ``rows`` of (t_s, source, metric, value, unit, avg_s)."""
    return pd.DataFrame([{"run_id": "r", "t_ns": int(round(t * S)), "source": src, "metric": m, "value": float(v),
                          "unit": u, "avg_s": a} for t, src, m, v, u, a in rows])


def _runs(*windows, phase="alone", n=(300,), device="cuda"):
    return pd.DataFrame([{"run_id": "r", "model": f"m{i}", "phase": phase, "repeat": 0, "mode": "inference",
                          "status": "ok", "n": n[i % len(n)], "device": device,
                          "window_start_ns": int(a * S), "window_end_ns": int(b * S)}
                         for i, (a, b) in enumerate(windows)])


def _nvml_power(watts, t0=0.0, t1=10.0, step=0.1, avg_s=1.0):
    """NVML power readings every ``step`` s, each the average of ``watts(t)`` over the
    ``avg_s`` before it (as NVML's 1-s average on Ampere and newer)."""
    out = []
    for t in np.arange(t0 + step, t1 + 1e-9, step):
        if avg_s > 0:
            grid = np.linspace(t - avg_s, t, 2001)
            w = float(np.mean([watts(x) for x in grid]))
        else:
            w = watts(t)
        out.append((t, "nvml", "power_mw:gpu", w * 1e3, "mW", avg_s))
    return out


def test_constant_power_for_a_window_is_power_times_its_length():
    e = window_energy(_runs((2.0, 5.0)), _tel(_nvml_power(lambda t: 70.0))).iloc[0]
    assert e.energy_source == "nvml_power_integral" and e.energy_why is None
    assert e.energy_j == pytest.approx(210.0, rel=1e-9)
    assert e.avg_power_w == pytest.approx(70.0) and e.energy_gpu_j == pytest.approx(210.0)  # NVML: the GPU's
    assert e.energy_mj_per_inf == pytest.approx(700.0) and e.inf_per_j == pytest.approx(300 / 210.0)


def test_averaged_readings_weigh_by_their_overlap_with_the_window():
    # four 1-s averages, 10, 20, 30, 40 W; the window [1.5, 3.5] s holds half of the second,
    # all of the third and half of the fourth: 0.5 x 20 + 30 + 0.5 x 40 = 60 J
    tel = _tel([(t, "nvml", "power_mw:gpu", w * 1e3, "mW", 1.0) for t, w in ((1, 10), (2, 20), (3, 30), (4, 40),
                                                                             (5, 50))])
    e = window_energy(_runs((1.5, 3.5)), tel).iloc[0]
    assert e.energy_j == pytest.approx(60.0) and e.avg_power_w == pytest.approx(30.0)


@pytest.mark.parametrize("step_at, expect", [(3.5, 100.0), (3.3, 120.0)])
def test_a_step_in_instantaneous_power_gives_the_energy_of_each_side(step_at, expect):
    # 50 W before the step, 150 W after, read every 0.1 s (NVML before Ampere, tegrastats' rails)
    tel = _tel(_nvml_power(lambda t: 50.0 if t < step_at else 150.0, t0=-0.05, step=0.1, avg_s=0.0))
    e = window_energy(_runs((3.0, 4.0)), tel).iloc[0]
    assert e.energy_j == pytest.approx(expect)  # 50 x (step - 3) + 150 x (4 - step)


def test_the_energy_counter_is_interpolated_to_the_window_edges_and_preferred():
    counter = [(t, "nvml", "energy_mj:gpu", 9e9 + 70.0 * t * 1e3, "mJ", 0.0) for t in np.arange(0.1, 10.0, 0.1)]
    power = _nvml_power(lambda t: 100.0)  # a power reading that disagrees: the counter wins
    e = window_energy(_runs((2.05, 5.05), (0.3, 0.6)), _tel(counter + power))
    assert list(e.energy_source) == ["nvml_counter", "nvml_counter"]
    assert e.energy_j.tolist() == pytest.approx([210.0, 21.0])  # 70 W x 3 s; x 0.3 s, shorter than NVML's 1 s
    e = window_energy(_runs((9.5, 10.5)), _tel(counter)).iloc[0]
    assert np.isnan(e.energy_j) and "not read on both sides" in e.energy_why


def test_a_window_shorter_than_nvmls_power_average_has_no_energy_and_says_why():
    e = window_energy(_runs((2.0, 2.3)), _tel(_nvml_power(lambda t: 70.0))).iloc[0]
    assert np.isnan(e.energy_j) and np.isnan(e.energy_mj_per_inf) and e.energy_source is None
    assert e.energy_why.startswith("NVML averages power over 1 s but this window lasted 0.3 s")


def test_together_rows_share_the_windows_energy_over_every_models_inferences():
    runs = _runs((2.0, 5.0), (2.0, 5.0), (2.0, 5.0), phase="together", n=(100, 200, 300))
    e = window_energy(runs, _tel(_nvml_power(lambda t: 60.0)))
    assert e.energy_j.tolist() == pytest.approx([180.0] * 3)  # the whole window's, on every row
    assert e.energy_mj_per_inf.tolist() == pytest.approx([180e3 / 600] * 3)
    assert e.inf_per_j.tolist() == pytest.approx([600 / 180.0] * 3)
    assert all("the 3 models' together; per inference over all their 600 inferences" in w for w in e.energy_why)


def test_no_power_source_and_a_cpu_model_under_nvml_are_empty_with_a_reason():
    host = _tel([(t, "host", "cpu_util_pct", 50, "%", 0.1) for t in np.arange(0.1, 10, 0.1)])
    e = window_energy(_runs((2.0, 5.0)), host).iloc[0]
    assert np.isnan(e.energy_j) and "no power reading on this node" in e.energy_why
    e = window_energy(_runs((2.0, 5.0), device="cpu"), _tel(_nvml_power(lambda t: 70.0))).iloc[0]
    assert np.isnan(e.energy_j) and "ran on the CPU" in e.energy_why
    assert list(window_energy(_runs((2.0, 5.0)), None).columns) == list(COLUMNS)
    failed = _runs((2.0, 5.0)).assign(status="failed")
    e = window_energy(failed, _tel(_nvml_power(lambda t: 70.0))).iloc[0]
    assert np.isnan(e.energy_j) and e.energy_why is None


def test_idle_power_and_the_energy_above_it():
    tel = _tel(_nvml_power(lambda t: 40.0 if t < 4 else 70.0, t1=12))
    e = window_energy(_runs((6.0, 9.0)), tel, idle=(int(1 * S), int(3 * S))).iloc[0]
    assert e.idle_power_w == pytest.approx(40.0) and e.energy_j == pytest.approx(210.0)
    assert e.energy_above_idle_j == pytest.approx(210.0 - 40.0 * 3)
    # an idle measurement shorter than NVML's 1 s power average gives no idle power, and says why
    e = window_energy(_runs((6.0, 9.0)), tel, idle=(int(1 * S), int(1.5 * S))).iloc[0]
    assert e.energy_j == pytest.approx(210.0) and np.isnan(e.idle_power_w) and np.isnan(e.energy_above_idle_j)
    assert e.energy_why.startswith("no idle power: NVML averages power over 1 s but this window lasted 0.5 s")


def _tegrastats(keys, t0=0.0, t1=6.0, step=0.1):
    """Real recorded lines replayed in turn every ``step`` s, as the Monitor stores them."""
    rows, k = [], 0
    for t in np.arange(t0 + step, t1 + 1e-9, step):
        _, readings, _ = parse_line(LINES[keys[k % len(keys)]])
        rows += [(t, "tegrastats", m, v, u, a) for m, v, u, a in with_periods(readings, step)]
        k += 1
    return _tel(rows)


def _rail(key, rail):
    return {m: v for m, v, _ in parse_line(LINES[key])[1]}[f"power_mw:{rail}"] / 1e3


@pytest.mark.parametrize("key, source, gpu", [
    ("orin_nx_jp5", "tegrastats:VDD_IN", "tegrastats:VDD_CPU_GPU_CV"),
    ("orin_nano_jp6", "tegrastats:VDD_IN", "tegrastats:VDD_CPU_GPU_CV"),
    ("xavier_nx_jp5.1.2", "tegrastats:VDD_IN", "tegrastats:VDD_CPU_GPU_CV"),
    ("nano_jp4.6.1", "tegrastats:POM_5V_IN", "tegrastats:POM_5V_GPU"),
    ("tx2", "tegrastats:VDD_IN", "tegrastats:VDD_GPU"),
    ("thor_r39_loaded", "tegrastats:VIN", "tegrastats:VDD_GPU"),
    ("orin_agx_r36.4.4", "tegrastats:sum(VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0)", "tegrastats:VDD_GPU_SOC"),
    ("orin_agx_jp5.1", "tegrastats:sum(VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO)",
     "tegrastats:VDD_GPU_SOC"),
    ("agx_xavier_jp4", "tegrastats:sum(GPU+CPU+SOC+CV+VDDRQ+SYS5V)", "tegrastats:GPU"),
])
def test_each_jetsons_module_input_and_gpu_rail(key, source, gpu):
    e = window_energy(_runs((2.0, 5.0)), _tegrastats([key])).iloc[0]
    assert (e.energy_source, e.energy_gpu_source) == (source, gpu)
    _, readings, _ = parse_line(LINES[key])
    rails = {m[len("power_mw:"):]: v / 1e3 for m, v, _ in readings if m.startswith("power_mw:")}
    inner = source.split(":", 1)[1]
    watts = sum(rails[r] for r in inner[4:-1].split("+")) if inner.startswith("sum(") else rails[inner]
    assert e.avg_power_w == pytest.approx(watts) and e.energy_j == pytest.approx(3 * watts)
    assert e.energy_gpu_j == pytest.approx(3 * rails[gpu.split(":")[1]])


def test_two_alternating_real_lines_average_over_the_window():
    # AGX Orin R36.4.4, two consecutive seconds: VIN_SYS_5V0 4707 then 4607 mW
    e = window_energy(_runs((2.0, 4.0)), _tegrastats(["orin_agx_r36.4.4", "orin_agx_r36.4.4_b"])).iloc[0]
    a = _rail("orin_agx_r36.4.4", "VDD_GPU_SOC") + _rail("orin_agx_r36.4.4", "VDD_CPU_CV")
    watts = a + (_rail("orin_agx_r36.4.4", "VIN_SYS_5V0") + _rail("orin_agx_r36.4.4_b", "VIN_SYS_5V0")) / 2
    assert e.energy_j == pytest.approx(2 * watts, rel=1e-3)


def test_the_recorded_h100_runs_get_the_power_integral():
    r = results.load(DATA / "h100", samples=False)
    runs = r.runs.reset_index(drop=True)
    e = window_energy(runs, r.telemetry)
    assert set(e.energy_source) == {"nvml_power_integral"}  # recorded before the energy counter was read
    p = r.telemetry[r.telemetry.metric == "power_mw:gpu"].groupby("run_id")["value"]
    lo, hi = runs.run_id.map(p.min() / 1e3), runs.run_id.map(p.max() / 1e3)
    assert ((e.avg_power_w >= lo) & (e.avg_power_w <= hi)).all()
    assert e.energy_j.to_numpy() == pytest.approx((e.avg_power_w * runs.window_s).to_numpy(), rel=1e-6)
    together = runs.phase == "together"
    shared = runs[together].groupby(["run_id", "window_start_ns"])["n"].transform("sum")  # one window each
    assert e.energy_mj_per_inf[together].to_numpy() == pytest.approx((e.energy_j[together] * 1e3 / shared).to_numpy())
    alone = ~together
    assert e.energy_mj_per_inf[alone].to_numpy() == pytest.approx((e.energy_j[alone] * 1e3 / runs.n[alone]).to_numpy())
