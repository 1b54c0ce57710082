"""The torch backend on the CPU (CI has no GPU; the GPU path runs in tests/gpu)."""

import pytest

from trt_ray_bench.engines import check_model, load_runner, make_inputs, resolve_model
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import ModelSpec
from trt_ray_bench.timing import LoopPlan, run_loop

pytestmark = pytest.mark.slow


def test_torch_runs_the_ultralytics_module_on_cpu():
    pytest.importorskip("torch")
    m = resolve_model(ModelSpec(arch="yolov8n", task="classify", imgsz=64, backend="torch",
                                options={"device": "cpu"}), "m")
    assert m.onnx_path == "" and m.source == "yolov8n-cls.yaml" and m.weights == "random"
    r = load_runner(m)
    r.prepare(make_inputs("dummy", m.hw, m.batch))
    s = run_loop(r, LoopPlan(iterations=5, warmup=1))
    assert len(s) == 6 and s.gpu_ms is None and min(s.host_ns) > 0
    assert r.describe()["device"] == "cpu"


@pytest.mark.parametrize("spec, msg", [
    ({"path": "x.onnx", "backend": "torch", "imgsz": 64}, "not"),
    ({"arch": "yolov8n", "task": "detect", "backend": "torch", "precision": "int8"}, "fp32 or fp16"),
    ({"arch": "yolov8n", "task": "detect", "backend": "torch", "options": {"device": "tpu"}}, "expected auto"),
    ({"arch": "yolov8n", "task": "detect", "backend": "onnxruntime", "precision": "int8"}, "options.calib_images"),
    ({"arch": "yolov8n", "task": "detect", "backend": "tensorrt", "precision": "int8"}, "calibration data"),
    ({"arch": "yolov8n", "task": "detect", "backend": "tensorrt", "options": {"cuda_graph": "yes"}}, "true or false"),
    ({"arch": "yolov8n", "task": "detect", "backend": "tensorrt", "options": {"sync_wait": "sleep"}}, "spin"),
    ({"arch": "yolov8n", "task": "detect", "backend": "tensorrt", "options": {"workspace": 2}}, "unknown tensorrt"),
])
def test_backend_options_are_refused_without_a_gpu(tmp_path, spec, msg):
    if "path" in spec:
        (tmp_path / "x.onnx").write_text("x")
        spec = {**spec, "path": str(tmp_path / "x.onnx")}
    m = resolve_model(ModelSpec(**spec), "models[0]", export=False)
    with pytest.raises(UserError, match=msg) as e:
        check_model(m, "models[0]")
    assert str(e.value).startswith("models[0]")


def test_engine_path_needs_the_tensorrt_backend(tmp_path):
    from trt_ray_bench.spec import spec_from_dict

    with pytest.raises(UserError, match="backend must be tensorrt"):
        spec_from_dict({"name": "e", "models": [{"path": "a.engine"}]})
