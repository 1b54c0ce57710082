"""Whole experiments on a real GPU through a real local Ray: TensorRT engines alone and
together, NVML telemetry joined to every inference."""

import pytest

from trt_ray_bench import results
from trt_ray_bench.cluster import make_plan, run_plan
from trt_ray_bench.spec import spec_from_dict

from gpu_fast import FAST

pytestmark = [pytest.mark.gpu, pytest.mark.ray]


def test_tensorrt_alone_and_together_with_nvml(tmp_path, cls_onnx, det_onnx):
    fast = FAST
    spec = spec_from_dict({
        "name": "gpu", "output": str(tmp_path / "results"),
        "timing": {"iterations": 200, "warmup": 20}, "telemetry": {"interval_s": 0.01},
        "models": [
            {"path": str(cls_onnx), "name": "cls", "backend": "tensorrt", "precision": "fp16", "options": fast},
            {"path": str(det_onnx), "name": "det", "backend": "tensorrt", "precision": "fp16",
             "options": {**fast, "transfers": False}},
        ],
    })
    out = run_plan(make_plan(spec), log=print)
    r = results.load(out["run_dir"])
    runs = r.runs.set_index(["model", "phase"])
    assert set(runs.status) == {"ok"}
    assert (runs.gpu_p50_ms > 0).all() and (runs.p50_ms >= runs.gpu_p50_ms).all()
    assert runs.loc[("cls", "alone"), "h2d_p50_ms"] > 0 and runs.loc[("det", "alone"), "compute_p50_ms"] > 0
    assert runs.loc[("cls", "alone"), "gpu"] and runs.loc[("cls", "alone"), "engine_path"].endswith(".engine")
    assert r.runs.gpu_name.iloc[0]
    tel = r.telemetry
    assert {"gpu_freq_mhz", "power_mw:gpu", "pstate"} <= set(tel.metric)
    j = results.samples_with_telemetry(r.samples[~r.samples.warmup], tel, ["gpu_freq_mhz", "pstate"])
    assert j.gpu_freq_mhz.notna().mean() > 0.95
    print(results.render(results.alone_vs_together(r.runs)))
    print("start skew us:", runs.xs("together", level="phase").start_skew_us.iloc[0])
