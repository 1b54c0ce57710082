"""GPU tests: run where an NVIDIA GPU, TensorRT and a CUDA binding (cuda-python or pycuda,
``TRB_CUDA`` chooses) are present (the lent H200 with TensorRT 8.6); skipped cleanly
elsewhere."""

import pytest


def _gpu_ok():
    try:
        import tensorrt  # noqa: F401

        from trt_ray_bench.engines import _cuda

        _cuda.load().device_name()
        return True
    except Exception:  # noqa: BLE001
        return False


GPU = _gpu_ok()



def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT and a CUDA binding (cuda-python or pycuda)")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/") and not GPU:
            item.add_marker(skip)
