"""The metric plumbing is real: predictions equal to the labels (ground truth fed
through the metric path) score Ultralytics' ceiling, moved ones score lower, for every
task, on synthetic sets written to disk and read back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trt_ray_bench.errors import UserError
from trt_ray_bench.validation import MetricAccumulator, from_labels, load_dataset, result_names

from trt_ray_bench.spec import TASKS

# The metrics are Ultralytics' own code (Python 3.8 CI runs without Ultralytics)
pytest.importorskip("ultralytics", reason="the metrics are computed by Ultralytics")

# Ultralytics' 101-point interpolated AP tops out at 0.995 (the last recall step is
# dropped), so a perfect mAP reads 0.995, as in `model.val()`.
PERFECT_MAP = 0.995


def _run(ds, predict):
    acc = MetricAccumulator.for_dataset(ds)
    for it in ds.items:
        acc.update(predict(it.labels), it.labels)
    return acc.result()


def _shift(task, labels, nc):
    """The ground truth moved by 30% of each object's size (classify: the next class).
    Only the part each task adds moves for pose and segment; their boxes stay exact."""
    p = from_labels(task, labels, nc)
    if task == "classify":
        return np.roll(p, 1)
    if task in ("detect", "obb"):
        p = p.copy()
        w = (p[:, 2] - p[:, 0]) if task == "detect" else p[:, 2]
        p[:, 0] += 0.3 * w
        if task == "detect":
            p[:, 2] += 0.3 * w
        return p
    w = labels.boxes[:, 2] - labels.boxes[:, 0]
    if task == "pose":
        k = p["keypoints"].copy()
        k[..., 0] += 0.3 * w[:, None]
        return {**p, "keypoints": k}
    return {**p, "polygons": [poly + [0.3 * wi, 0] for poly, wi in zip(p["polygons"], w)]}


@pytest.mark.parametrize("task", TASKS)
def test_ground_truth_as_prediction_is_perfect_and_a_shifted_one_is_not(task, synthetic_sets):
    ds = load_dataset(synthetic_sets[task], task)
    nc = len(ds.names)
    perfect = _run(ds, lambda lb: from_labels(task, lb, nc))
    shifted = _run(ds, lambda lb: _shift(task, lb, nc))

    assert tuple(perfect) == result_names(task)
    assert perfect["n_images"] == ds.n_images == 16
    assert perfect["n_labels"] == ds.n_labels > 16 or task == "classify"
    if task == "classify":
        assert perfect["top1"] == perfect["top5"] == 1.0
        assert shifted["top1"] == 0.0  # nc=3: the right class is still in the top 5
        return
    for name, value in perfect.items():
        if "map" in name:
            assert value == pytest.approx(PERFECT_MAP), name
    moved = {"detect": "map50_95", "obb": "map50_95", "pose": "pose_map50_95", "segment": "mask_map50_95"}[task]
    assert shifted[moved] < 0.8 * PERFECT_MAP
    if task in ("pose", "segment"):  # the boxes were not moved: their mAP is untouched
        assert shifted["box_map50_95"] == pytest.approx(PERFECT_MAP)


def test_detect_from_the_label_file_by_hand(synthetic_sets):
    """Without from_labels: the label file's numbers scaled to pixels by hand."""
    ds = load_dataset(synthetic_sets["detect"], "detect")
    acc = MetricAccumulator("detect", ds.names)
    h, w = ds.items[0].labels.shape
    for it in ds.items:
        lines = [ln.split() for ln in it.image.parent.parent.parent.joinpath(
            "labels", "val", it.image.stem + ".txt").read_text().splitlines()]
        pred = [[(float(cx) - float(bw) / 2) * w, (float(cy) - float(bh) / 2) * h,
                 (float(cx) + float(bw) / 2) * w, (float(cy) + float(bh) / 2) * h, 0.9, int(c)]
                for c, cx, cy, bw, bh in lines]
        acc.update(np.array(pred).reshape(-1, 6), it.labels)
    assert acc.result()["map50_95"] == pytest.approx(PERFECT_MAP)


def test_missed_and_extra_objects_lower_detect(synthetic_sets):
    ds = load_dataset(synthetic_sets["detect"], "detect")
    none = _run(ds, lambda lb: np.zeros((0, 6)))
    assert none["map50"] == 0.0
    # every object found once, plus a confident wrong box first: precision drops
    def noisy(lb):
        p = from_labels("detect", lb, 3)
        return np.concatenate([[[0, 0, 10, 10, 1.0, 0]], p * [1, 1, 1, 1, 0.5, 1]])
    assert 0 < _run(ds, noisy)["map50"] < PERFECT_MAP


def test_segment_masks_and_polygons_agree(synthetic_sets):
    """A prediction may give masks at the image size instead of polygons."""
    from trt_ray_bench.validation.predictions import rasterize

    ds = load_dataset(synthetic_sets["segment"], "segment")

    def as_masks(lb):
        p = from_labels("segment", lb, 3)
        return {"boxes": p["boxes"], "masks": rasterize(p["polygons"], lb.shape) > 0}

    assert _run(ds, as_masks)["mask_map50_95"] == pytest.approx(PERFECT_MAP)


def test_no_images_gives_nan_not_a_crash():
    r = MetricAccumulator("det", ["a", "b"]).result()
    assert math.isnan(r["map50"]) and r["n_images"] == 0


@pytest.mark.parametrize("task, prediction, expected", [
    ("classify", np.ones(2), "2 class scores but the data set has 3 classes"),
    ("detect", np.array([[0, 0, 5, 5, 0.9, -1]]), "class -1: class ids are 0 or more"),
    ("detect", np.zeros((2, 5)), "expected (N, 6) x1 y1 x2 y2 conf cls"),
    ("segment", {"boxes": np.zeros((1, 6)), "masks": np.zeros((1, 10, 10))}, "masks at the image size"),
    ("pose", np.zeros((1, 6)), "'keypoints': (N, K, 3)"),
])
def test_bad_predictions_are_one_line_errors(task, prediction, expected, synthetic_sets):
    ds = load_dataset(synthetic_sets[task], task)
    acc = MetricAccumulator.for_dataset(ds)
    with pytest.raises(UserError) as e:
        acc.update(prediction, ds.items[0].labels)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_pose_keypoint_count_must_match(synthetic_sets):
    ds = load_dataset(synthetic_sets["pose"], "pose")
    lb = next(it.labels for it in ds.items if len(it.labels))
    p = from_labels("pose", lb, 3)
    with pytest.raises(UserError, match="4 keypoints per object, the data set has 5"):
        MetricAccumulator.for_dataset(ds).update({**p, "keypoints": p["keypoints"][:, :4]}, lb)


def test_masks_on_a_coarser_grid(synthetic_sets):
    """mask_side 32 on 128-pixel images: a stride of 4, still exact for exact polygons."""
    ds = load_dataset(synthetic_sets["segment"], "segment")
    exact, moved = (MetricAccumulator(ds.task, ds.names, mask_side=32) for _ in range(2))
    for it in ds.items:
        exact.update(from_labels("segment", it.labels), it.labels)
        moved.update(_shift("segment", it.labels, 3), it.labels)
    assert exact.result()["mask_map50_95"] == pytest.approx(PERFECT_MAP)
    assert moved.result()["mask_map50_95"] < 0.8 * PERFECT_MAP


@pytest.mark.parametrize("task", TASKS)
def test_ultralytics_results_feed_the_metric(task, synthetic_sets):
    """model.predict() output, built here from the labels as a model that is always right
    would give it (segment: masks at the image size, read back as Ultralytics' outlines)."""
    torch = pytest.importorskip("torch")
    from ultralytics.engine.results import Results

    from trt_ray_bench.validation import from_results
    from trt_ray_bench.validation.predictions import rasterize

    ds = load_dataset(synthetic_sets[task], task)
    acc = MetricAccumulator.for_dataset(ds)
    for it in ds.items:
        lb, p = it.labels, from_labels(task, it.labels, 3)
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        parts = {"classify": lambda: {"probs": t(p)}, "detect": lambda: {"boxes": t(p)},
                 "obb": lambda: {"obb": t(p)},
                 "pose": lambda: {"boxes": t(p["boxes"]), "keypoints": t(p["keypoints"])},
                 "segment": lambda: {"boxes": t(p["boxes"]),
                                     "masks": t(rasterize(p["polygons"], lb.shape, max(lb.shape)))}}[task]()
        result = Results(np.zeros(lb.shape + (3,), np.uint8), str(it.image), ds.names, **parts)
        acc.update(from_results(task, result), lb)
    r = acc.result()
    first = {"classify": "top1", "detect": "map50", "obb": "map50", "pose": "pose_map50", "segment": "mask_map50"}
    assert r[first[task]] == pytest.approx(1.0 if task == "classify" else PERFECT_MAP)


def test_classes_the_set_lacks_are_false_positives():
    """A COCO model (80 classes) on a 3-class set: its other classes only cost precision."""
    from trt_ray_bench.validation import Labels, MetricAccumulator

    labels = Labels(shape=(100, 100), cls=np.array([0]), boxes=np.array([[10.0, 10, 50, 50]]))
    names = {0: "a", 1: "b", 2: "c"}
    exact = MetricAccumulator("detect", names)
    exact.update(np.array([[10, 10, 50, 50, 0.9, 0]]), labels)
    extra = MetricAccumulator("detect", names)
    extra.update(np.array([[10, 10, 50, 50, 0.9, 0], [60, 60, 90, 90, 0.95, 57]]), labels)
    assert exact.result()["map50"] > 0.9 and 0 < extra.result()["map50"] <= exact.result()["map50"]
    cls = MetricAccumulator("classify", names)
    scores = np.zeros(1000)
    scores[0] = 1.0
    cls.update(scores, Labels(shape=(10, 10), cls=np.array([0])))
    assert cls.result()["top1"] == 1.0
