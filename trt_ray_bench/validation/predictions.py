"""What each task's metric takes per image: the prediction in the original image's
pixels, as Ultralytics' ``Results`` give it (``probs.data``, ``boxes.data``,
``keypoints.data``, ``masks.xy``, ``obb.data``), checked and put in one form; the
ground truth in that same form; and the ground truth written as a prediction
(``from_labels``), the metric's ceiling, which proves the plumbing."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError, lazy_import
from ._labels import Labels
from .datasets import task_name

#: The prediction of one image, per task (N objects; pixels of the original image).
FORMATS = {
    "classify": "a vector of one score per class",
    "detect": "(N, 6) x1 y1 x2 y2 conf cls",
    "obb": "(N, 7) cx cy w h rotation(radians) conf cls",
    "pose": "{'boxes': (N, 6) x1 y1 x2 y2 conf cls, 'keypoints': (N, K, 3) x y conf}",
    "segment": "{'boxes': (N, 6) x1 y1 x2 y2 conf cls, and 'masks': (N, H, W) at the image size "
               "or 'polygons': N arrays (P, 2) of x y}",
}
#: Masks are compared on a grid of at most this many pixels a side (a whole-pixel stride of
#: the image). 160 is what ``model.val()`` compares at for a 640 model (masks at a quarter
#: of the input): the same resolution as Ultralytics' numbers, and the same cost.
MASK_SIDE = 160

Parts = Dict[str, np.ndarray]


def _ops():
    return lazy_import("ultralytics.utils.ops", "ultralytics", "validation metrics")


def _field(pred: Any, key: str, task: str) -> Any:
    if isinstance(pred, Mapping):
        if key not in pred:
            raise UserError("prediction", f"{task}: no {key!r}; expected {FORMATS[task]}")
        return pred[key]
    if key == "boxes":  # detect and obb: the array itself
        return pred
    raise UserError("prediction", f"{task}: expected {FORMATS[task]}, got {type(pred).__name__}")


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, on any device
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _rows(pred: Any, task: str, width: int, nc: int) -> Parts:
    """The box table: geometry, then conf and cls in the last two columns."""
    a = _array(_field(pred, "boxes", task))
    if a.size == 0:
        a = a.reshape(0, width)
    if a.ndim != 2 or a.shape[1] != width:
        raise UserError("prediction", f"{task}: boxes of shape {a.shape}, expected {FORMATS[task]}")
    cls = a[:, -1].round().astype(np.int64)
    # A class the set does not have is a false positive (an 80-class model on a 3-class
    # set), as in Ultralytics' own matching; only a negative id is malformed.
    bad = cls[cls < 0]
    if bad.size:
        raise UserError("prediction", f"class {bad[0]}: class ids are 0 or more")
    return {"cls": cls, "conf": a[:, -2], "boxes": a[:, :-2]}


def _keypoint_part(pred: Any, task: str, n: int, shape, mask_side: int) -> Parts:
    k = _array(_field(pred, "keypoints", task))
    if k.size == 0:
        k = k.reshape(0, 0, 3)
    if k.ndim != 3 or k.shape[0] != n or k.shape[2] not in (2, 3):
        raise UserError("prediction", f"pose: keypoints of shape {k.shape}, expected ({n}, K, 3) for {n} boxes")
    return {"keypoints": k[..., :2]}  # OKS uses positions; visibility is the label's


def _mask_part(pred: Any, task: str, n: int, shape, mask_side: int) -> Parts:
    if isinstance(pred, Mapping) and "polygons" in pred:
        polys = list(pred["polygons"])
        if len(polys) != n:
            raise UserError("prediction", f"segment: {len(polys)} polygons for {n} boxes")
        return {"masks": rasterize([_array(p).reshape(-1, 2) for p in polys], shape, mask_side)}
    m = _array(_field(pred, "masks", task))
    if m.size == 0:
        m = m.reshape((0,) + tuple(shape))
    if m.ndim != 3 or m.shape[0] != n or tuple(m.shape[1:]) != tuple(shape):
        raise UserError("prediction", f"segment: masks of shape {m.shape}, expected ({n}, {shape[0]}, {shape[1]}): "
                                      "masks at the image size, or give 'polygons' (Results.masks.xy)")
    s, (gh, gw) = mask_grid(shape, mask_side)
    return {"masks": (m[:, ::s, ::s][:, :gh, :gw] > 0.5).astype(np.uint8)}


#: The parts of each task's prediction beyond the box table, and the width of that table.
_EXTRA: Dict[str, Tuple[int, Sequence[Callable]]] = {
    "detect": (6, ()),
    "obb": (7, ()),
    "pose": (6, (_keypoint_part,)),
    "segment": (6, (_mask_part,)),
}


def parse(task: str, prediction: Any, shape: Tuple[int, int], nc: int, mask_side: int = MASK_SIDE) -> Parts:
    """One image's prediction, checked, as arrays sorted by falling confidence (the order
    Ultralytics' matcher expects); classify: ``scores``."""
    if task == "classify":
        scores = _array(prediction).reshape(-1)
        if scores.size < nc:  # more is fine: a model of 1000 classes on a set that uses 100 of them
            raise UserError("prediction", f"classify: {scores.size} class scores but the data set has {nc} classes")
        return {"scores": scores}
    width, extras = _EXTRA[task]
    parts = _rows(prediction, task, width, nc)
    for extra in extras:
        parts.update(extra(prediction, task, len(parts["cls"]), shape, mask_side))
    order = np.argsort(-parts["conf"], kind="stable")
    return {k: v[order] for k, v in parts.items()}


def mask_grid(shape: Tuple[int, int], mask_side: int = MASK_SIDE) -> Tuple[int, Tuple[int, int]]:
    """(stride, (height, width)) of the grid masks are compared on."""
    s = max(1, math.ceil(max(shape) / mask_side))
    return s, (math.ceil(shape[0] / s), math.ceil(shape[1] / s))


def rasterize(polygons: List[np.ndarray], shape: Tuple[int, int], mask_side: int = MASK_SIDE) -> np.ndarray:
    """Polygons in image pixels -> (N, h, w) 0/1 masks on the comparison grid, filled by
    Ultralytics' own ``polygons2masks`` (the same fill for labels and predictions)."""
    s, grid = mask_grid(shape, mask_side)
    if not polygons:
        return np.zeros((0,) + grid, dtype=np.uint8)
    du = lazy_import("ultralytics.data.utils", "ultralytics", "validation metrics")
    return du.polygons2masks(grid, [p / s for p in polygons], color=1).astype(np.uint8)


def _xywhr(labels: Labels) -> np.ndarray:
    """Corners -> (cx, cy, w, h, rotation), Ultralytics' conversion (cv2.minAreaRect)."""
    return _ops().xyxyxyxy2xywhr(labels.corners.reshape(-1, 8)).reshape(-1, 5)


#: How each task's ground truth is put in the form of its predictions.
_TRUTH: Dict[str, Dict[str, Callable[[Labels, int], np.ndarray]]] = {
    "classify": {},
    "detect": {"boxes": lambda lb, side: lb.boxes},
    "pose": {"boxes": lambda lb, side: lb.boxes, "keypoints": lambda lb, side: lb.keypoints},  # x y visibility
    "segment": {"boxes": lambda lb, side: lb.boxes,
                "masks": lambda lb, side: rasterize(list(lb.segments), lb.shape, side)},
    "obb": {"boxes": lambda lb, side: _xywhr(lb)},
}


def truth(task: str, labels: Labels, mask_side: int = MASK_SIDE) -> Parts:
    """The ground truth of one image in the form ``parse`` gives predictions."""
    return {"cls": labels.cls, **{k: make(labels, mask_side) for k, make in _TRUTH[task].items()}}


def from_labels(task: str, labels: Labels, nc: Optional[int] = None) -> Any:
    """The ground truth written as a prediction of ``task`` (confidence 1): fed back
    through the metric it must score perfectly."""
    task = task_name(task)
    if task == "classify":
        if nc is None:
            raise ValueError("classify: from_labels needs nc")
        return np.eye(nc)[int(labels.cls[0])]
    n = len(labels)
    boxes = truth(task, labels)["boxes"].reshape(n, -1 if n else _EXTRA[task][0] - 2)
    table = np.concatenate([boxes, np.ones((n, 1)), labels.cls.reshape(n, 1)], 1)
    if task == "pose":
        kpts = labels.keypoints
        return {"boxes": table, "keypoints": np.concatenate([kpts[..., :2], kpts[..., 2:] > 0], -1)}
    if task == "segment":
        return {"boxes": table, "polygons": list(labels.segments)}
    return table


def _table(part) -> np.ndarray:
    """Geometry, conf, cls of Ultralytics' Boxes or OBB (without a tracker's id column)."""
    geometry = part.xywhr if hasattr(part, "xywhr") else part.xyxy
    return np.concatenate([_array(geometry), _array(part.conf)[:, None], _array(part.cls)[:, None]], 1)


def from_results(task: str, result: Any) -> Any:
    """One Ultralytics ``Results`` (``model.predict`` output) as ``task``'s prediction:
    boxes, keypoints and mask outlines in the original image's pixels, as they come."""
    task = task_name(task)
    if task == "classify":
        return _array(result.probs.data)
    if task == "obb":
        return _table(result.obb)
    boxes = _table(result.boxes)
    if task == "pose":
        return {"boxes": boxes, "keypoints": _array(result.keypoints.data)}
    if task == "segment":
        return {"boxes": boxes, "polygons": list(result.masks.xy) if result.masks is not None else []}
    return boxes
