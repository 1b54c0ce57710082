"""Whole experiments on a real local Ray, with real ONNX Runtime inference."""

import time

import pytest

from trt_ray_bench import results
from trt_ray_bench.cluster import make_plan, run_plan
from trt_ray_bench.spec import spec_from_dict

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _spec(tmp_path, cls_onnx, det_onnx, **over):
    d = {
        "name": "t",
        "output": str(tmp_path / "results"),
        "models": [
            {"path": str(cls_onnx), "name": "cls", "options": {"threads": 1}},
            {"path": str(det_onnx), "name": "det", "options": {"threads": 1}},
            {"path": str(cls_onnx), "name": "cls2", "options": {"threads": 1}},
        ],
        "timing": {"iterations": 15, "warmup": 2},
        "telemetry": {"interval_s": 0.02},
    }
    for k, v in over.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return spec_from_dict(d)


def test_alone_and_together(tmp_path, cls_onnx, det_onnx, ray_local):
    plan = make_plan(_spec(tmp_path, cls_onnx, det_onnx))
    out = run_plan(plan, log=lambda s: None)
    r = results.load(out["run_dir"])
    runs = r.runs.set_index(["model", "phase"])
    assert len(runs) == 6 and set(runs["status"]) == {"ok"}
    # alone: exactly the count; together: every model measured for at least its count,
    # inside the window in which all three were running
    assert all(runs.loc[(m, "alone"), "n"] == 15 for m in ("cls", "det", "cls2"))
    assert all(runs.loc[(m, "together"), "n"] >= 15 for m in ("cls", "det", "cls2"))
    tog = runs.xs("together", level="phase")
    assert tog["window_start_ns"].nunique() == 1 and tog["window_end_ns"].nunique() == 1
    assert tog["start_instant_ns"].nunique() == 1  # one instant, picked by the coordinator
    assert (tog["start_late_us"] >= 0).all()  # nobody started before it
    skew = tog["start_skew_us"].iloc[0]
    assert skew == pytest.approx(tog["start_late_us"].max() - tog["start_late_us"].min(), abs=1e-3)
    assert 0 <= skew < 20_000  # one start instant; loose bound for a loaded 2-core CI box
    s = r.samples
    t = s[(s.phase == "together") & s.in_window]
    lo, hi = tog["window_start_ns"].iloc[0], tog["window_end_ns"].iloc[0]
    assert t.t_start_ns.min() >= lo and t.t_end_ns.max() <= hi
    # the cheap models kept running (fill) while the detector did its 15
    assert (s[(s.phase == "together") & (s.model == "cls") & ~s.warmup].shape[0]) > 15
    assert s[s.warmup].groupby(["model", "phase"]).size().eq(2).all()
    # contention is visible: together is slower than alone for the detector
    assert runs.loc[("det", "together"), "p50_ms"] > runs.loc[("det", "alone"), "p50_ms"]
    # statistics are those of the in-window samples
    det_t = t[t.model == "det"].host_ms
    assert runs.loc[("det", "together"), "mean_ms"] == pytest.approx(det_t.mean())
    # provenance and identity travel with every row
    row = r.runs.iloc[0]
    assert row.host and row.ray_version and row.onnxruntime_version and row.weights == "random"
    assert row.onnx_sha256 and row.cpu_count >= 1 and row.device == "cpu"
    # telemetry on the same clock: samples fall inside the telemetry's time span
    tel = r.telemetry
    assert {"cpu_util_pct", "ram_used_mb"} <= set(tel.metric)
    assert tel.t_ns.min() <= s.t_start_ns.min() and tel.t_ns.max() >= s.t_end_ns.max() - 50_000_000
    j = results.samples_with_telemetry(t, tel, ["cpu_util_pct"])
    assert j["cpu_util_pct"].notna().mean() > 0.9
    assert (out["run_dir"] / "spec.yaml").read_text().startswith("name: t")


def test_duration_mode_together_only(tmp_path, cls_onnx, det_onnx, ray_local):
    spec = _spec(tmp_path, cls_onnx, det_onnx, schedule="together",
                 timing={"iterations": None, "duration_s": 0.5, "warmup": 1})
    out = run_plan(make_plan(spec), log=lambda s: None)
    runs = out["tables"]["runs"]
    assert list(runs.phase.unique()) == ["together"] and set(runs.status) == {"ok"}
    assert ((runs.window_s > 0.3) & (runs.window_s < 0.8)).all()



def test_a_killed_model_does_not_hang_the_run(tmp_path, cls_onnx, det_onnx, released_run):
    spec = _spec(tmp_path, cls_onnx, det_onnx, schedule="together", timing={"iterations": 400})
    plan = make_plan(spec)
    run = released_run(plan)
    time.sleep(0.3)
    run.kill("det")
    out = run.join()
    runs = results.load(out["run_dir"]).runs.set_index("model")
    assert runs.loc["det", "status"] == "failed" and "died" in runs.loc["det", "error"]
    assert runs.loc["cls", "status"] == "ok" and runs.loc["cls", "n"] >= 400
    assert runs.loc["cls2", "status"] == "ok"


def test_barrier_timeout_fails_the_phase_cleanly(tmp_path, cls_onnx, det_onnx, ray_local):
    # cls warms up in ~30 ms, det in ~100+ ms: with a 5 ms barrier the first to arrive
    # gives up, and the later arrivals are refused instead of running "together" alone.
    spec = _spec(tmp_path, cls_onnx, det_onnx, schedule="together",
                 timing={"warmup": 30, "barrier_timeout_s": 0.005})
    out = run_plan(make_plan(spec), log=lambda s: None)
    runs = out["tables"]["runs"]
    assert set(runs.status) == {"failed"}
    assert runs.error.str.contains("did not arrive within 0.005 s").all()
    assert (out["run_dir"] / "runs.parquet").is_file()


def test_per_model_timing_overrides(tmp_path, cls_onnx, det_onnx, ray_local):
    """The seed 004 / seed 001 shape: one model, several ways, in one alone experiment."""
    spec = spec_from_dict({
        "name": "variants", "output": str(tmp_path / "results"), "schedule": "alone",
        "timing": {"iterations": 6, "warmup": 2},
        "models": [
            {"path": str(cls_onnx), "name": "cold", "timing": {"warmup": 0}},
            {"path": str(cls_onnx), "name": "gap", "timing": {"gap_s": 0.02, "sync": "none"}},
            {"path": str(cls_onnx), "name": "timed", "timing": {"iterations": None, "duration_s": 0.2}},
        ],
    })
    out = run_plan(make_plan(spec), log=lambda s: None)
    runs = out["tables"]["runs"].set_index("model")
    assert runs.loc["cold", "warmup_n"] == 0 and runs.loc["gap", "warmup_n"] == 2
    assert runs.loc["gap", "gap_s"] == 0.02 and runs.loc["gap", "sync"] == "none"
    assert runs.loc["timed", "duration_s"] == 0.2 and runs.loc["timed", "n"] > 6
    s = out["tables"]["samples"]
    starts = s[(s.model == "gap") & ~s.warmup].t_start_ns.diff().dropna()
    assert starts.min() >= 20_000_000


def test_gpu_backend_on_a_node_without_gpu_is_refused_before_anything(tmp_path, cls_onnx, ray_local):
    """A backend that is installed here but asked to run on a GPU the node lacks (torch on
    cuda; ONNX Runtime's CUDA provider and TensorRT are refused earlier, where absent)."""
    from trt_ray_bench.errors import UserError

    pytest.importorskip("torch")
    spec = spec_from_dict({"name": "nogpu", "output": str(tmp_path / "results"),
                           "models": [{"arch": "yolov8n", "task": "classify", "imgsz": 64, "backend": "torch",
                                       "options": {"device": "cuda"}}]})
    with pytest.raises(UserError, match=r"models\[0\]\.backend: torch needs a GPU"):
        run_plan(make_plan(spec), log=lambda s: None)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.parquet"))
