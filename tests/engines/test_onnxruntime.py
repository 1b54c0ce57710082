"""The ONNX Runtime engine on real exported models, through the real timing loop."""

import numpy as np
import pytest
from PIL import Image

from trt_ray_bench.engines import load_runner, make_inputs, resolve_model
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import ModelSpec
from trt_ray_bench.timing import LoopPlan, run_loop, summarize

pytestmark = pytest.mark.slow


def test_runner_times_real_inference(cls_onnx):
    m = resolve_model(ModelSpec(path=str(cls_onnx), options={"threads": 1}), "m")
    r = load_runner(m)
    r.prepare(make_inputs("dummy", m.hw, m.batch, m.task))
    s = run_loop(r, LoopPlan(iterations=20, warmup=3))
    stats = summarize([h / 1e6 for h, w in zip(s.host_ns, s.warmup) if not w])
    assert stats.n == 20 and 0.05 < stats.p50_ms < 500
    assert s.gpu_ms is None
    assert r.describe()["device"] == "cpu"
    # enqueue == the whole inference: run() is synchronous
    assert np.mean(s.enqueue_ns) > 0.9 * np.mean(s.host_ns)


def test_bad_options_refused(cls_onnx):
    m = resolve_model(ModelSpec(path=str(cls_onnx), options={"thread": 2}), "m")
    with pytest.raises(UserError, match="unknown onnxruntime option"):
        load_runner(m)
    m = resolve_model(ModelSpec(path=str(cls_onnx), options={"providers": ["TensorrtExecutionProvider"]}), "m")
    with pytest.raises(UserError, match="not available here"):
        load_runner(m)


def test_dummy_inputs_are_seeded():
    a = make_inputs("dummy", (32, 48), 2, seed=7)
    b = make_inputs("dummy", (32, 48), 2, seed=7)
    c = make_inputs("dummy", (32, 48), 2, seed=8)
    assert a[0].shape == (2, 3, 32, 48) and a[0].dtype == np.float32
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


def test_images_are_preprocessed_like_ultralytics(tmp_path):
    # A wide red image: letterboxed for detection (grey bars top and bottom), centre
    # cropped for classification (all red).
    Image.new("RGB", (200, 100), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (100, 100), (0, 0, 255)).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    det = make_inputs("images", (64, 64), 1, "detect", path=str(tmp_path))
    assert len(det) == 2 and det[0].shape == (1, 3, 64, 64)
    x = det[0][0]
    assert x[0, 32, 32] == pytest.approx(1.0) and x[0, 0, 32] == pytest.approx(114 / 255)
    cls = make_inputs("images", (64, 64), 1, "classify", path=str(tmp_path))
    assert np.allclose(cls[0][0][0], 1.0) and np.allclose(cls[0][0][1:], 0.0)
    batched = make_inputs("images", (64, 64), 2, "detect", path=str(tmp_path))
    assert len(batched) == 1 and batched[0].shape == (2, 3, 64, 64)
    u8 = make_inputs("images", (64, 64), 1, "detect", path=str(tmp_path), dtype="uint8")
    assert u8[0].dtype == np.uint8 and u8[0].max() == 255
