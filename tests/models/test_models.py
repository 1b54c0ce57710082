"""Model resolution on real Ultralytics exports (random weights, small input sizes)."""

import json

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


# ---------------------------------------------------------------- engine files' own labels


def _ultralytics_engine(path, meta):
    """An engine file laid out as Ultralytics' exporter writes one (``utils/export/engine.py``:
    the length of ``json.dumps(metadata)`` as 4 little-endian bytes, that JSON, then the
    serialized engine). The engine bytes are not one: nothing here deserializes them."""
    text = json.dumps(meta)
    path.write_bytes(len(text).to_bytes(4, "little", signed=True) + text.encode() + b"ftrt-not-a-real-engine")
    return str(path)


# the arguments Ultralytics records: 8.2 to 8.3 (half / int8), later exporters (quantize)
@pytest.mark.parametrize("args,precision", [
    ({"half": True, "int8": False, "dynamic": False}, "fp16"), ({"half": False, "int8": True}, "int8"),
    ({"half": False, "int8": False}, "fp32"), ({"quantize": 16, "batch": 1}, "fp16"), ({"quantize": 8}, "int8"),
    ({"quantize": None}, "fp32"),
])
def test_an_ultralytics_engine_labels_its_task_and_precision(tmp_path, args, precision):
    path = _ultralytics_engine(tmp_path / "m.engine", {"task": "pose", "imgsz": [640, 640], "args": args})
    r = resolve_model(ModelSpec(path=path, backend="tensorrt"), "models[0]")
    assert (r.task, r.precision) == ("pose", precision)
    # the same precision said in the spec is no contradiction
    assert resolve_model(ModelSpec(path=path, backend="tensorrt", precision=precision), "m").precision == precision


def test_an_engine_without_export_arguments_keeps_the_specs_labels(tmp_path):
    """A bare engine (trtexec's) and an Ultralytics engine whose metadata records no export
    arguments (before 8.2) say nothing of their precision: the spec's word labels the rows."""
    bare = tmp_path / "bare.engine"
    bare.write_bytes(b"ftrt-bare-engine-bytes")
    old = _ultralytics_engine(tmp_path / "old.engine", {"task": "detect", "imgsz": [640, 640]})
    assert (resolve_model(ModelSpec(path=str(bare), backend="tensorrt"), "m").precision) == "fp32"
    r = resolve_model(ModelSpec(path=old, backend="tensorrt", precision="fp16"), "m")
    assert (r.task, r.precision) == ("detect", "fp16")


@pytest.mark.parametrize("field,value,expect", [
    ("precision", "fp32", r"models\[0\]\.precision: fp32, but m\.engine was exported as int8 "
                          r"\(its Ultralytics metadata: quantize=8\): give precision: int8, or leave it out"),
    ("precision", "int8", r"exported as fp16 \(its Ultralytics metadata: half=true\)"),
    ("task", "detect", r"models\[0\]\.task: .*m\.engine is a segment model \(its metadata says so\), not detect"),
])
def test_a_spec_that_contradicts_an_ultralytics_engine_is_refused(tmp_path, field, value, expect):
    args = {"quantize": 8} if value == "fp32" else {"half": True, "int8": False}
    path = _ultralytics_engine(tmp_path / "m.engine", {"task": "segment", "args": args})
    with pytest.raises(UserError, match=expect):
        resolve_model(ModelSpec(path=path, backend="tensorrt", **{field: value}), "models[0]")
