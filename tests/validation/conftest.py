"""Synthetic data sets, one per task, written by the package's own generator: real
images and label files on disk, read back by the loader under test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")

from trt_ray_bench.spec import TASKS  # noqa: E402
#: Not square, so a swapped x/y anywhere shows.
IMGSZ = (96, 128)


@pytest.fixture(scope="session")
def imgsz():
    """(height, width) of every synthetic image."""
    return IMGSZ


@pytest.fixture(scope="session")
def synthetic_sets(tmp_path_factory):
    """task -> what load_dataset takes (a data yaml, or the classify folder)."""
    from trt_ray_bench.validation import make_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    return {t: make_synthetic(t, root / t, n=16, imgsz=IMGSZ, seed=1) for t in TASKS}


@pytest.fixture
def fresh_set(tmp_path):
    """A new synthetic set in this test's folder, free to be spoiled."""
    from trt_ray_bench.validation import make_synthetic

    def make(task, **kw):
        kw.setdefault("n", 16)
        kw.setdefault("imgsz", IMGSZ)
        return make_synthetic(task, tmp_path / task, **kw)

    return make
