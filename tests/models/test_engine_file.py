"""An engine file's own labels: the task and precision an Ultralytics ``.engine`` records in
the metadata before the engine, read on the driver when the spec is resolved (no TensorRT)."""

import json

import pytest

from trt_ray_bench.engines import resolve_model
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import ModelSpec


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


def test_an_ultralytics_dla_engine_runs_on_its_core_unless_the_spec_names_one(tmp_path):
    """Ultralytics records the DLA core an engine was built for (``"dla": "1"``) and its
    loader runs it there; so does a run where the spec names no core. A core the spec
    names is kept (either core runs a DLA engine: GPU + DLA0 + DLA1 from one file)."""
    path = _ultralytics_engine(tmp_path / "d.engine", {"task": "detect", "dla": "1", "args": {"quantize": 16}})
    r = resolve_model(ModelSpec(path=path, backend="tensorrt"), "m")
    assert (r.options, r.precision) == ({"dla_core": 1}, "fp16")
    named = resolve_model(ModelSpec(path=path, backend="tensorrt", options={"dla_core": 0, "gpu_fallback": True}), "m")
    assert named.options == {"dla_core": 0, "gpu_fallback": True}
    gpu = _ultralytics_engine(tmp_path / "g.engine", {"task": "detect", "args": {"quantize": 16}})
    assert resolve_model(ModelSpec(path=gpu, backend="tensorrt"), "m").options == {}
