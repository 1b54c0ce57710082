"""DLA on a desktop GPU: there is none, so ``options.dla_core`` is refused in one line on
the node, before any conversion, build or measurement (a Jetson's DLA runs are covered
by the stand-in TensorRT of tests/engines/test_trt_api.py)."""

import pytest

from trt_ray_bench.engines import prepare_model, resolve_model
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import ModelSpec

from gpu_fast import FAST

pytestmark = pytest.mark.gpu


def test_the_builder_of_a_desktop_gpu_counts_no_dla():
    import tensorrt as trt

    from trt_ray_bench.engines._trt_api import dla_cores
    from trt_ray_bench.engines._trt_build import CapturingLogger

    assert dla_cores(trt, CapturingLogger(trt)) == 0


def test_dla_core_is_refused_in_one_line_before_anything_is_built(cls_onnx, tmp_path, monkeypatch):
    from trt_ray_bench.engines import _cuda

    monkeypatch.setenv("TRB_CACHE_DIR", str(tmp_path / "cache"))  # nothing converted nor built there
    m = resolve_model(ModelSpec(path=str(cls_onnx), backend="tensorrt", precision="fp16",
                                options={"dla_core": 0, "gpu_fallback": True}), "models[0]")
    with pytest.raises(UserError) as e:
        prepare_model(m, "models[0]")
    gpu = _cuda.load().device_name()
    assert str(e.value) == (f"models[0].options.dla_core: 0: {gpu} has no DLA (TensorRT's builder counts 0 DLA "
                            "cores; Jetson AGX Xavier, Xavier NX and AGX Orin have 2)")
    assert not (tmp_path / "cache" / "engines").exists()


@pytest.mark.ray
def test_a_run_with_a_dla_model_is_refused_before_it_measures(cls_onnx, tmp_path, trb):
    """Every model is checked on the node before the first is built: the GPU model listed
    first is not built either."""
    import json

    spec = tmp_path / "dla.yaml"
    spec.write_text(
        f"name: dla\noutput: {tmp_path / 'results'}\nschedule: both\n"
        "timing: {iterations: 20, warmup: 2}\nmodels:\n"
        f"  - {{path: {cls_onnx}, name: gpu, backend: tensorrt, precision: fp16, options: {json.dumps(FAST)}}}\n"
        f"  - {{path: {cls_onnx}, name: dla0, backend: tensorrt, precision: fp16, "
        "options: {dla_core: 0, gpu_fallback: true}}\n")
    code, out, err = trb("run", spec)
    assert code == 2, (out, err)
    lines = [l for l in err.splitlines() if "dla_core" in l]
    assert len(lines) == 1 and "models[1].options.dla_core: 0: " in lines[0] and "has no DLA" in lines[0], err
    assert not list((tmp_path / "results").rglob("runs.parquet"))  # nothing was measured
    assert "builds it" not in err  # nor built
