"""The generator writes real data sets: Ultralytics' own checks accept its files, and a
seed gives the same set twice."""

from __future__ import annotations

import pytest

from trt_ray_bench.validation import make_synthetic
from trt_ray_bench.validation._labels import label_path
from trt_ray_bench.validation.synthetic import KPT_SHAPE


@pytest.mark.parametrize("task", ["detect", "pose", "segment", "obb"])
def test_ultralytics_accepts_the_files(task, synthetic_sets):
    du = pytest.importorskip("ultralytics.data.utils")
    data = du.check_det_dataset(str(synthetic_sets[task]), autodownload=False)
    assert data["nc"] == 3 and (task != "pose" or data["kpt_shape"] == list(KPT_SHAPE))
    images = sorted(synthetic_sets[task].parent.joinpath("images", "val").glob("*.jpg"))
    kpt = KPT_SHAPE if task == "pose" else (0, 0)
    for im in images:
        *_, corrupt, msg = du.verify_image_label((str(im), str(label_path(im)), "", task == "pose", 3, *kpt, False))
        assert corrupt == 0, msg


def test_same_seed_same_set(tmp_path):
    a = make_synthetic("obb", tmp_path / "a", n=4, seed=3)
    b = make_synthetic("obb", tmp_path / "b", n=4, seed=3)
    c = make_synthetic("obb", tmp_path / "c", n=4, seed=4)
    text = lambda p: [f.read_text() for f in sorted((p.parent / "labels" / "val").glob("*.txt"))]  # noqa: E731
    assert text(a) == text(b) != text(c)


def test_classify_layout(synthetic_sets):
    folder = synthetic_sets["classify"]
    assert sorted(d.name for d in (folder / "val").iterdir()) == ["bar", "circle", "cross"]
    assert sum(1 for _ in (folder / "val").rglob("*.jpg")) == 16
