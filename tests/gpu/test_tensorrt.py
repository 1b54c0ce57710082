"""TensorRT on a real GPU: engines built from real Ultralytics exports, timed with CUDA
events. Builds use tactics none + optimization level 0 (fast builds; the lent H100 has
no cuBLAS/cuDNN for tactics)."""

import dataclasses
import json

import numpy as np
import pytest

from trt_ray_bench.engines import load_runner, make_inputs, prepare_model
from trt_ray_bench.errors import UserError
from trt_ray_bench.models import resolve_model
from trt_ray_bench.spec import ModelSpec
from trt_ray_bench.timing import LoopPlan, run_loop, summarize

pytestmark = pytest.mark.gpu
FAST = {"tactics": "none", "opt_level": 0}


def _model(onnx, precision="fp16", **opts):
    m = resolve_model(ModelSpec(path=str(onnx), backend="tensorrt", precision=precision,
                                options={**FAST, **opts}), "models[0]")
    return prepare_model(m, "models[0]")


def _timed(m, n=50, sync="device", inputs=None):
    r = load_runner(m)
    r.prepare(inputs or make_inputs("dummy", m.hw, m.batch))
    s = run_loop(r, LoopPlan(iterations=n, warmup=10, sync=sync))
    r.close()
    return s, s.stages  # the loop collects the runner's stage times


def test_build_is_cached_and_recorded(cls_onnx):
    m = _model(cls_onnx)
    assert m.engine["trt_version"] and m.engine["gpu"] and m.engine_path.endswith(".engine")
    again = _model(cls_onnx)
    assert again.engine["cached"] and again.engine_path == m.engine_path
    fp32 = _model(cls_onnx, "fp32")
    assert fp32.engine_path != m.engine_path


def test_gpu_time_host_time_and_stages(cls_onnx):
    m = _model(cls_onnx)
    s, stages = _timed(m)
    w = np.asarray(s.warmup)
    gpu = np.asarray(s.gpu_ms)[~w]
    host = np.asarray(s.host_ns)[~w] / 1e6
    assert (gpu > 0).all() and np.median(host) >= np.median(gpu)
    assert set(stages) == {"h2d_ms", "compute_ms", "d2h_ms"}
    total = np.asarray(stages["h2d_ms"]) + np.asarray(stages["compute_ms"]) + np.asarray(stages["d2h_ms"])
    assert np.allclose(total, s.gpu_ms, rtol=1e-3, atol=1e-3)


def test_device_buffers_only_and_cuda_graph(cls_onnx):
    plain = dataclasses.replace(_model(cls_onnx), options={**FAST, "transfers": False})
    s, stages = _timed(plain)
    assert set(stages) == {"compute_ms"}
    graph = dataclasses.replace(plain, options={**FAST, "transfers": False, "cuda_graph": True})
    g, _ = _timed(graph)
    assert summarize(g.gpu_ms).p50_ms == pytest.approx(summarize(s.gpu_ms).p50_ms, rel=0.5)


def test_unsynchronised_host_timer_misses_the_gpu_work(det_onnx):
    """Seed 004's pitfall: without sync the host timer reports the enqueue only."""
    m = _model(det_onnx, "fp32", transfers=False)
    synced, _ = _timed(m, 100, "device")
    unsynced, _ = _timed(m, 100, "none")
    gpu = summarize(synced.gpu_ms).p50_ms
    assert summarize(np.asarray(synced.host_ns) / 1e6).p50_ms >= gpu
    assert summarize(np.asarray(unsynced.host_ns) / 1e6).p50_ms < gpu


def test_foreign_and_corrupt_engines_are_clear_errors(tmp_path, cls_onnx):
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"\x00" * 4096)
    m = resolve_model(ModelSpec(path=str(bad), backend="tensorrt", task="classify", imgsz=64), "models[0]")
    with pytest.raises(UserError, match="not an engine this TensorRT"):
        prepare_model(m, "models[0]")
    good = _model(cls_onnx)
    other = tmp_path / "other.engine"
    other.write_bytes(open(good.engine_path, "rb").read())
    other.with_suffix(".json").write_text(json.dumps({"trt_version": "7.0.0"}))
    m = resolve_model(ModelSpec(path=str(other), backend="tensorrt", task="classify", imgsz=64), "models[0]")
    with pytest.raises(UserError, match="built by TensorRT 7.0.0"):
        prepare_model(m, "models[0]")


def test_engine_file_input_is_checked(cls_onnx):
    good = _model(cls_onnx)
    m = resolve_model(ModelSpec(path=good.engine_path, backend="tensorrt", task="classify", imgsz=128), "models[0]")
    with pytest.raises(UserError, match="takes input 1x3x64x64"):
        prepare_model(m, "models[0]")


def test_parser_errors_are_reported(tmp_path, cls_onnx):
    from trt_ray_bench.engines._trt_build import BuildOptions, build_engine

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(open(cls_onnx, "rb").read()[:5000])
    with pytest.raises(UserError, match="parser rejects it"):
        build_engine(broken, BuildOptions(tactics="none", opt_level=0), "gpu")


def test_dynamic_batch_profile(tmp_path):
    m = resolve_model(ModelSpec(arch="yolov8n", task="classify", imgsz=64, batch=4, backend="tensorrt",
                                precision="fp16", options={**FAST, "max_batch": 8}), "models[0]")
    assert m.input_shape[0] == -1
    m = prepare_model(m, "models[0]")
    s, _ = _timed(m, 10)
    assert len(s.gpu_ms) == 20


def test_pipeline_on_tensorrt_matches_onnxruntime(tmp_path, det_onnx):
    """The predict pipeline over TensorRT (FP32) gives ONNX Runtime's predictions."""
    pytest.importorskip("ultralytics", reason="the pipeline's pre/post-processing is Ultralytics'")
    from trt_ray_bench.engines.pipeline import PipelineRunner
    from trt_ray_bench.validation import load_dataset, make_synthetic

    ds = load_dataset(make_synthetic("detect", tmp_path / "d", n=4, imgsz=(120, 160)), "detect")
    trt_model = _model(det_onnx, "fp32")
    ort_model = resolve_model(ModelSpec(path=str(det_onnx)), "models[0]")
    preds = []
    for m in (trt_model, ort_model):
        p = PipelineRunner(load_runner(m), m, conf=1e-5)
        p.prepare(ds.images)
        s = run_loop(p, LoopPlan(iterations=4, warmup=0))
        assert {"load_ms", "pre_ms", "infer_ms", "post_ms"} <= set(s.stages)
        preds.append(p.last_predictions())
    a, b = preds
    assert a.shape == b.shape and np.allclose(a[:, :4], b[:, :4], atol=0.5)
