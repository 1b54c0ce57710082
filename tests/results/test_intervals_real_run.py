"""A real ONNX Runtime run through local Ray: every row carries its intervals at the
spec's ``confidence`` and ``throughput_ips`` (achieved, gaps included) beside the
latency-bound ``fps``; a bad ``confidence`` is one line naming the field."""

import math

import numpy as np
import pytest

from trt_ray_bench import results
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import spec_from_dict
from trt_ray_bench.timing._stats import MIN_NEFF


def _spec(**kw):
    return spec_from_dict({"name": "x", "models": [{"arch": "yolov8n", "task": "cls"}], **kw})


@pytest.mark.parametrize("value, says", [(0.5, "greater than 0.5"), (1.0, "less than 1"), (1.5, "less than 1"),
                                         ("high", "valid number")])
def test_bad_confidence_is_one_line_naming_the_field(value, says):
    with pytest.raises(UserError, match=rf"^spec: confidence: Input should be .*{says}") as e:
        _spec(confidence=value)
    assert "\n" not in str(e.value)


def test_confidence_defaults_to_95_percent():
    assert _spec().confidence == 0.95 and _spec(confidence=0.9).confidence == 0.9


@pytest.mark.ray
def test_a_real_run_stores_intervals_and_achieved_throughput(tmp_path, cls_onnx, ray_local):
    from trt_ray_bench.cluster import make_plan, run_plan

    spec = spec_from_dict({
        "name": "ci", "output": str(tmp_path / "results"), "schedule": "alone", "confidence": 0.9,
        "models": [{"path": str(cls_onnx), "name": "a", "options": {"threads": 1}}],
        "timing": {"iterations": 150, "warmup": 2, "gap_s": 0.005}, "telemetry": {"interval_s": 0.05},
    })
    out = run_plan(make_plan(spec), log=lambda s: None)
    row = results.load(out["run_dir"]).runs.iloc[0]
    assert row["confidence"] == 0.9
    codes = [d["code"] for d in row["diagnostics"]]
    if np.isfinite(row["p50_ci_lo_ms"]):
        assert row["p50_ci_lo_ms"] <= row["p50_ms"] <= row["p50_ci_hi_ms"]
    else:  # a loaded machine can make 150 inferences too dependent for an interval: then it says so
        assert row["n_eff"] < MIN_NEFF * 2 and "autocorrelated" in codes
    if np.isfinite(row["mean_ci_lo_ms"]):
        assert row["mean_ci_lo_ms"] <= row["mean_ms"] <= row["mean_ci_hi_ms"]
    assert 0 < row["n_eff"] and row["n"] == 150
    assert math.isnan(row["gpu_p50_ci_lo_ms"])  # no CUDA events on ONNX Runtime
    # a 5 ms sleep between inferences: achieved throughput is bounded by it, fps is not
    assert row["throughput_ips"] < 1000.0 / (5.0 + row["mean_ms"]) * 1.05
    assert row["fps"] == pytest.approx(1000.0 / row["mean_ms"]) and row["throughput_ips"] < row["fps"]
