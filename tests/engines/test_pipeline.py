"""The predict pipeline (load -> pre -> infer -> post) on real Ultralytics exports of the
five tasks, through the real timing loop, checked against Ultralytics' own predictor."""

import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

from trt_ray_bench.engines import load_runner, resolve_model
from trt_ray_bench.engines.pipeline import STAGES, PipelineRunner, load_pipeline
from trt_ray_bench.errors import UserError
from trt_ray_bench.models import export_onnx, yaml_name
from trt_ray_bench.spec import ModelSpec
from trt_ray_bench.timing import LoopPlan, run_loop

pytestmark = pytest.mark.slow

SIZES = {"classify": 64, "detect": 96, "pose": 96, "segment": 96, "obb": 96}
#: random weights score ~1e-5..1e-4 (the head's bias init): a threshold inside that range
#: keeps some anchors and drops others, so NMS and the filter both have work to do
LOW_CONF = 1e-5


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Noise with shapes, sizes unlike the model's (wide and tall) so letterbox and the
    scaling back are exercised both ways; PNG so every decoder sees the same pixels."""
    d = tmp_path_factory.mktemp("pipeline-images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(160, 120), (90, 200), (333, 77)]):
        im = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        draw.rectangle([w // 10, h // 10, w // 2, h // 2], fill=(255, 0, 0))
        draw.ellipse([w // 3, h // 3, w - 5, h - 5], fill=(0, 200, 0))
        paths.append(d / f"img{i}.png")
        im.save(paths[-1])
    return paths


_MODELS = {}


@pytest.fixture
def resolved(_cache_dir):
    """Export (once per session) and resolve one task's model, ONNX Runtime on one thread."""
    os.environ.setdefault("YOLO_OFFLINE", "1")

    def get(task):
        if task not in _MODELS:
            s = SIZES[task]
            path, _ = export_onnx(yaml_name("yolov8n", task), task, (s, s), 1)
            _MODELS[task] = resolve_model(ModelSpec(path=str(path), task=task, options={"threads": 1}), "m")
        return _MODELS[task]

    return get


def _ultralytics_predict(model, image, task, **kw):
    """Ultralytics' predictor on the same ONNX: its prediction, and the network input
    it made of the image (random weights barely depend on the input, so the input is
    compared directly)."""
    from ultralytics import YOLO
    from ultralytics.utils.patches import imread

    yolo = YOLO(model.onnx_path, task=task)
    res = yolo.predict(str(image), imgsz=list(model.hw), device="cpu", verbose=False, **kw)[0]
    return res, yolo.predictor.preprocess([imread(str(image))]).numpy()


@pytest.mark.parametrize("task", list(SIZES))
def test_pipeline_stages_through_the_loop(task, resolved, images):
    m = resolved(task)
    r = load_pipeline(m, images, conf=LOW_CONF)
    s = run_loop(r, LoopPlan(iterations=4, warmup=1))
    # The loop takes a runner's stages as sample columns; where it reads them only with
    # GPU times (ONNX Runtime has none), they are still there to read after the loop.
    stages = s.stages
    assert set(STAGES) <= set(stages)
    host_ms = np.array(s.host_ns) / 1e6
    per_call = np.sum([stages[k] for k in STAGES], axis=0)
    assert len(per_call) == len(host_ms) == 5
    assert all(np.asarray(stages[k]).min() > 0 for k in STAGES)
    assert np.all(per_call <= host_ms)
    assert np.all(per_call >= 0.5 * host_ms)  # the stages are nearly all of the iteration

    pred = r.last_predictions()  # image 4 % 3 == 1: the tall one, 90x200
    h, w = 200, 90
    if task == "classify":
        assert pred.shape == (1000,) and pred.dtype == np.float32
        assert pred.sum() == pytest.approx(1.0, abs=1e-4)
    elif task == "detect":
        assert pred.ndim == 2 and pred.shape[1] == 6 and len(pred) > 0
        assert (pred[:, [0, 2]] <= w).all() and (pred[:, [1, 3]] <= h).all() and (pred[:, :4] >= 0).all()
    elif task == "pose":
        boxes, kpts = pred
        assert boxes.shape[1] == 6 and kpts.shape == (len(boxes), 17, 3) and len(boxes) > 0
        assert (kpts[..., 0] <= w).all() and (kpts[..., 1] <= h).all()
    elif task == "segment":
        boxes, masks = pred
        assert boxes.shape[1] == 6 and masks.dtype == bool and masks.shape == (len(boxes), h, w)
    else:
        assert pred.ndim == 2 and pred.shape[1] == 7 and len(pred) > 0
    r.close()


@pytest.mark.parametrize("task", list(SIZES))
def test_pipeline_predicts_what_ultralytics_predicts(task, resolved, images):
    """Same ONNX, same image, same thresholds: our pipeline and Ultralytics' predictor
    feed the network the same tensor and give the same prediction, in the original
    image's pixels."""
    from ultralytics.utils import ops

    from trt_ray_bench.engines.pipeline import load_image

    m = resolved(task)
    kw = dict(conf=LOW_CONF, iou=0.7, max_det=300)
    r = load_pipeline(m, images, **kw)
    for i, image in enumerate(images[:2]):
        r.infer(i)
        ours = r.last_predictions()
        ref, ref_input = _ultralytics_predict(m, image, task, **kw)
        np.testing.assert_allclose(r.preprocess(load_image(image)), ref_input, rtol=0, atol=1e-6)
        if task == "classify":
            np.testing.assert_allclose(ours, ref.probs.data.numpy(), atol=1e-5)
            continue
        if task == "obb":
            np.testing.assert_allclose(ours, ref.obb.data.numpy(), atol=1e-4)
            continue
        boxes = ours[0] if isinstance(ours, tuple) else ours
        assert len(boxes) > 0 or task == "segment"
        np.testing.assert_allclose(boxes, ref.boxes.data.numpy(), atol=1e-4)
        if task == "pose":
            np.testing.assert_allclose(ours[1], ref.keypoints.data.numpy(), atol=1e-4)
        if task == "segment" and ref.masks is not None:
            full = ops.scale_masks(ref.masks.data[None].float(), ref.orig_shape)[0] > 0.5
            assert np.array_equal(ours[1], full.numpy())
    r.close()


def test_pipeline_thresholds_and_max_det(resolved, images):
    m = resolved("pose")
    many = load_pipeline(m, images[:1], conf=LOW_CONF, max_det=300)
    few = load_pipeline(m, images[:1], conf=LOW_CONF, max_det=3)
    none = load_pipeline(m, images[:1], conf=0.99)
    for r in (many, few, none):
        r.infer(0)
    assert len(many.last_predictions()[0]) > 3 and len(few.last_predictions()[0]) == 3
    assert len(none.last_predictions()[0]) == 0 and none.last_predictions()[1].shape == (0, 17, 3)


def test_pipeline_takes_decoded_arrays_and_refuses_what_cannot_work(resolved, images, tmp_path):
    import cv2

    m = resolved("detect")
    r = PipelineRunner(load_runner(m), m, conf=LOW_CONF)
    r.prepare([cv2.imread(str(images[0]))])
    r.infer(0)
    by_file = load_pipeline(m, images[:1], conf=LOW_CONF)
    by_file.infer(0)
    np.testing.assert_array_equal(r.last_predictions(), by_file.last_predictions())

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot decode"):
        load_pipeline(m, [bad])
    with pytest.raises(UserError, match="sync"):
        PipelineRunner(load_runner(m), m, sync="none")
    with pytest.raises(UserError, match="batch must be 1"):
        import dataclasses

        PipelineRunner(load_runner(m), dataclasses.replace(m, batch=2))

    class NoArray:
        backend = "other"

        def prepare(self, inputs):
            pass

        def synchronize(self, how):
            pass

    r = PipelineRunner(NoArray(), m)
    r.prepare(images[:1])
    with pytest.raises(UserError, match="run_array"):
        r.infer(0)


def test_torch_runner_in_the_pipeline(images, _cache_dir):
    """A real TorchRunner (CPU) under the pipeline: the module's outputs arrive as the export's."""
    pytest.importorskip("torch")
    from trt_ray_bench.engines.torch import TorchRunner

    m = resolve_model(ModelSpec(arch="yolov8n", task="segment", imgsz=64, backend="torch",
                                options={"device": "cpu"}), "m")
    inner = TorchRunner(m)
    r = PipelineRunner(inner, m, conf=LOW_CONF)
    assert r.names and len(r.names) == 80  # from the module, there being no ONNX
    r.prepare(images[:1])
    s = run_loop(r, LoopPlan(iterations=2, warmup=0))
    assert s.gpu_ms is None and len(s.stages["post_ms"]) == 2
    boxes, masks = r.last_predictions()
    assert boxes.shape[1] == 6 and masks.shape == (len(boxes), 120, 160)


def test_preload_imports_what_the_pipeline_and_its_metrics_use():
    """``preload`` (a model's load, in pipeline and validation runs) swallows what does not
    import, so a module renamed by Ultralytics would be skipped in silence: every name it
    lists must import here, where Ultralytics is installed, in a fresh process."""
    import subprocess
    import sys

    pytest.importorskip("ultralytics")
    from trt_ray_bench.engines import pipeline

    code = ("import sys; from trt_ray_bench.engines.pipeline import preload, PRELOADED; preload(); "
            "print(' '.join(m for m in PRELOADED if m not in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [] and "ultralytics.utils.metrics" in pipeline.PRELOADED
