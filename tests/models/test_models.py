"""Model resolution on real Ultralytics exports (random weights, small input sizes)."""

import pytest

from trt_ray_bench.engines import resolve_model
from trt_ray_bench.errors import UserError
from trt_ray_bench.models import export_onnx, inspect_onnx, yaml_name
from trt_ray_bench.spec import ModelSpec

pytestmark = pytest.mark.slow


def test_export_is_cached_and_stamped_random(cls_onnx):
    info = inspect_onnx(cls_onnx, "x")
    assert info["input_shape"] == [1, 3, 64, 64]
    assert info["meta"]["trb_weights"] == "random"
    assert info["meta"]["task"] == "classify"
    again, cached = export_onnx(yaml_name("yolov8n", "classify"), "classify", (64, 64), 1)
    assert cached and again == cls_onnx


def test_random_weights_are_the_same_on_every_export(cls_onnx, tmp_path):
    """A yaml's weights come from a fixed torch seed: a second export into an empty cache
    carries the same initializers (so tolerances measured here hold on CI's fresh export),
    and the caller's torch random state is left as it was."""
    import onnx
    import torch
    from onnx import numpy_helper

    torch.manual_seed(1234)
    before = torch.rand(3)
    torch.manual_seed(1234)
    again, cached = export_onnx(yaml_name("yolov8n", "classify"), "classify", (64, 64), 1, out=tmp_path)
    assert not cached and again != cls_onnx
    assert torch.equal(torch.rand(3), before)
    a, b = onnx.load(str(cls_onnx)), onnx.load(str(again))
    assert {p.key: p.value for p in b.metadata_props}["trb_weights_seed"] == "0"
    wa = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
    wb = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    assert wa.keys() == wb.keys() and len(wa) > 20
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_resolve_onnx_reads_task_and_size_from_metadata(det_onnx):
    r = resolve_model(ModelSpec(path=str(det_onnx)), "models[0]")
    assert (r.task, r.hw, r.batch, r.weights) == ("detect", (96, 96), 1, "random")
    assert len(r.sha256) == 64 and r.input_name == "images"


def test_resolve_arch_exports_at_the_requested_size(cls_onnx):
    r = resolve_model(ModelSpec(arch="yolov8n", task="classify", imgsz=64), "models[0]")
    assert r.onnx_path == str(cls_onnx.resolve()) and r.source == "yolov8n-cls.yaml"


def test_dry_resolution_exports_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TRB_CACHE_DIR", str(tmp_path))
    r = resolve_model(ModelSpec(arch="yolov8n", task="pose"), "models[0]", export=False)
    assert r.onnx_path == "" and r.hw == (640, 640) and r.weights == "random"
    assert not any(tmp_path.rglob("*.onnx"))


def test_task_mismatch_with_metadata(cls_onnx):
    with pytest.raises(UserError, match=r"models\[0\]\.task: .* is a classify model"):
        resolve_model(ModelSpec(path=str(cls_onnx), task="detect"), "models[0]")


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(UserError, match="yolov99z"):
        resolve_model(ModelSpec(arch="yolov99z", task="detect", imgsz=64), "models[0]")
