"""Shared fixtures: real things, built small. Models are exported by Ultralytics from
its yaml (random weights) at small input sizes; Ray is a real local instance."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Keep exports of the test session out of the user's cache, shared by all tests."""
    d = os.environ.get("TRB_TEST_CACHE") or str(tmp_path_factory.mktemp("trb-cache"))
    os.environ["TRB_CACHE_DIR"] = d
    yield d


def _export(arch, task, imgsz, batch=1):
    """Exported here, or found in the cache where Ultralytics is not installed (a GPU
    machine that was given the exports: benchmarks/gpu_models.py)."""
    from trt_ray_bench.errors import MissingExtra
    from trt_ray_bench.models import export_onnx, yaml_name

    try:
        path, _ = export_onnx(yaml_name(arch, task), task, (imgsz, imgsz), batch)
    except MissingExtra as exc:
        pytest.skip(str(exc))
    return path


@pytest.fixture(scope="session")
def cls_onnx(_cache_dir) -> Path:
    """yolov8n-cls exported at 64x64: a real Ultralytics classification graph, fast on CPU."""
    return _export("yolov8n", "classify", 64)


@pytest.fixture(scope="session")
def det_onnx(_cache_dir) -> Path:
    """yolov8n detect exported at 96x96."""
    return _export("yolov8n", "detect", 96)


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for the tests that drive actors directly (not through the CLI)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, namespace="trb",
                 logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def trb(monkeypatch, capsys):
    """Run the ``trb`` CLI in-process; returns (exit code, stdout, stderr)."""
    from trt_ray_bench.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
