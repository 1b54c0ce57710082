"""Energy per inference and the cooldown on a real GPU: NVML's total-energy counter read
by the Monitor at every poll, interpolated to each window's edges, against the integral of
NVML's power readings over the same windows; the idle baseline; a cooldown on the GPU's
own temperature."""

import numpy as np
import pytest

from trt_ray_bench import results
from trt_ray_bench.cluster import make_plan, run_plan
from trt_ray_bench.results.energy import window_energy
from trt_ray_bench.spec import spec_from_dict

from gpu_fast import FAST

pytestmark = [pytest.mark.gpu, pytest.mark.ray]


def test_energy_from_nvmls_counter_agrees_with_its_power_over_the_same_windows(tmp_path, cls_onnx, det_onnx):
    fast = FAST
    spec = spec_from_dict({
        "name": "energy", "output": str(tmp_path / "results"), "schedule": "both",
        # 3 s a phase: well over NVML's 1-s power average, so both sources have a value
        "timing": {"duration_s": 3.0, "warmup": 50, "cooldown": {"temp_c": 95, "timeout_s": 30}},
        "telemetry": {"interval_s": 0.02, "idle_s": 2.0},
        "models": [
            {"path": str(cls_onnx), "name": "cls", "backend": "tensorrt", "precision": "fp16", "options": fast},
            {"path": str(det_onnx), "name": "det", "backend": "tensorrt", "precision": "fp16", "options": fast},
        ],
    })
    logs = []
    out = run_plan(make_plan(spec), log=logs.append)
    r = results.load(out["run_dir"], samples=False)
    runs = r.runs.reset_index(drop=True)
    assert set(runs.status) == {"ok"}
    assert "energy_mj:gpu" in set(r.telemetry.metric), "this GPU has no energy counter (older than Volta?)"
    assert set(runs.energy_source) == {"nvml_counter"} and runs.energy_why[runs.phase == "alone"].isna().all()
    assert (runs.energy_j > 0).all() and (runs.energy_gpu_j == runs.energy_j).all()
    # the same windows from the power readings alone: within 15 % of the counter's
    power = r.telemetry[r.telemetry.metric != "energy_mj:gpu"]
    integral = window_energy(runs, power)
    assert set(integral.energy_source) == {"nvml_power_integral"}
    ratio = (runs.energy_j / integral.energy_j).to_numpy()
    print("counter / power integral per row:", np.round(ratio, 3), "W:", np.round(runs.avg_power_w.to_numpy(), 1))
    assert ((ratio > 0.85) & (ratio < 1.15)).all()
    limit_w = None
    try:
        from trt_ray_bench.telemetry import gpu_info

        limit_w = (gpu_info(0)["power_limit_mw"] or 0) / 1e3 or None
    except Exception:  # noqa: BLE001
        pass
    assert (runs.avg_power_w > 10).all() and (limit_w is None or (runs.avg_power_w < 1.1 * limit_w).all())
    assert (runs.idle_power_w > 5).all() and (runs.idle_power_w < runs.avg_power_w).all()
    assert np.allclose(runs.energy_above_idle_j, runs.energy_j - runs.idle_power_w * runs.window_s)
    assert np.allclose(runs.energy_mj_per_inf[runs.phase == "alone"],
                       runs.energy_j[runs.phase == "alone"] * 1e3 / runs.n[runs.phase == "alone"])
    assert (runs.cooldown_temp_c > 0).all() and (runs.cooldown_temp_c <= 95).all() and runs.oc_events.isna().all()
    assert sum(line.startswith("cooldown GPU at") for line in logs) == 3
    print(results.render(results.alone_vs_together(r.runs)))


def test_a_cooldown_the_gpu_cannot_reach_waits_its_timeout_then_measures_and_says_so(tmp_path, cls_onnx):
    """A real wait on the GPU's own temperature (NVML): no GPU is at 1 °C, so the phase waits
    its 2-s timeout, measures anyway, and its row records the wait, the temperature it began
    at and the ``cooldown_timeout`` diagnostic."""
    spec = spec_from_dict({
        "name": "cooldown", "output": str(tmp_path / "results"), "schedule": "alone",
        "timing": {"iterations": 50, "warmup": 5, "cooldown": {"temp_c": 1, "timeout_s": 2}},
        "telemetry": {"interval_s": 0.05},
        # FP32: the quickest build on TensorRT 8.5 (about a minute on an H100); the wait is the point
        "models": [{"path": str(cls_onnx), "name": "cls", "backend": "tensorrt", "precision": "fp32",
                    "options": FAST}],
    })
    logs = []
    out = run_plan(make_plan(spec), log=logs.append)
    runs = results.load(out["run_dir"], samples=False).runs
    assert list(runs.status) == ["ok"] and runs.n.iloc[0] == 50
    waited, began = runs.cooldown_s.iloc[0], runs.cooldown_temp_c.iloc[0]
    print(f"cooldown: waited {waited:.2f} s, the GPU at {began:.0f} °C")
    assert 1.99 <= waited < 5 and 1 < began < 120
    assert sum(f"warning  cooldown: GPU at {began:.0f} °C" in line for line in logs) == 1, logs
    codes = {d["code"]: d["message"] for d in runs.diagnostics.iloc[0]}
    assert "above the 1 °C" in codes.get("cooldown_timeout", ""), codes
