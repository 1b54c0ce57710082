"""Accuracy of predictions against labels, computed by Ultralytics' own metric code
(``ultralytics.utils.metrics``: ``box_iou``, ``batch_probiou``, ``kpt_iou``,
``mask_iou``, ``DetMetrics`` and its pose/segment/obb kin, ``ClassifyMetrics``, and the
validators' ``match_predictions``), so a number here means what ``model.val()`` means.

Model-independent: feed one image's prediction (``predictions.FORMATS``) and its
``Labels`` at a time; ``result()`` gives flat floats with stable names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import UserError, lazy_import
from ._labels import Labels
from .datasets import Dataset, task_name
from .predictions import MASK_SIDE, parse, truth

_WHY = "validation metrics"


def _um():
    return lazy_import("ultralytics.utils.metrics", "ultralytics", _WHY)


def _torch():
    return lazy_import("torch", "ultralytics", _WHY)


class _Matcher:
    """Ultralytics' prediction-to-label matcher (``BaseValidator.match_predictions``: one
    label per prediction, in falling confidence, at IoU 0.50:0.05:0.95). It needs only
    the thresholds; building a validator would create a ``runs/`` folder."""

    def __init__(self):
        validator = lazy_import("ultralytics.engine.validator", "ultralytics", _WHY)
        self.iouv = _torch().linspace(0.5, 0.95, 10)
        self._match = validator.BaseValidator.match_predictions

    def __call__(self, pred_cls, true_cls, iou) -> np.ndarray:
        return self._match(self, pred_cls, true_cls, iou).cpu().numpy()


# IoU of every label (rows) with every prediction (columns), one function per kind.

def _box_iou(t, p, acc) -> Any:
    return _um().box_iou(t["boxes"], p["boxes"])


def _obb_iou(t, p, acc) -> Any:
    return _um().batch_probiou(t["boxes"], p["boxes"])


def _oks(t, p, acc) -> Any:
    # 0.53: COCO's keypoint area from the box area (Ultralytics' PoseValidator)
    wh = t["boxes"][:, 2:] - t["boxes"][:, :2]
    area = wh[:, 0] * wh[:, 1] * 0.53
    return _um().kpt_iou(t["keypoints"], p["keypoints"], sigma=acc.sigmas(t["keypoints"].shape[1]), area=area)


def _mask_iou(t, p, acc) -> Any:
    # masks stay uint8 until compared, a few predictions at a time: memory stays bounded
    # whatever mask_side and the number of predictions
    torch, truth_masks = _torch(), t["masks"].flatten(1).float()
    chunks = p["masks"].flatten(1).split(_MASK_CHUNK)
    return torch.cat([_um().mask_iou(truth_masks, c.float()) for c in chunks], 1)


_MASK_CHUNK = 32


@dataclass(frozen=True)
class _Part:
    """One thing a task's predictions are judged by."""

    stat: str  # the key of Ultralytics' stats: tp, tp_p, tp_m
    metric: str  # the attribute of Ultralytics' metrics object holding its mAP: box, pose, seg
    prefix: str  # of our result names
    iou: Callable


_PARTS: Dict[str, Sequence[_Part]] = {
    "detect": (_Part("tp", "box", "", _box_iou),),
    "obb": (_Part("tp", "box", "", _obb_iou),),
    "pose": (_Part("tp", "box", "box_", _box_iou), _Part("tp_p", "pose", "pose_", _oks)),
    "segment": (_Part("tp", "box", "box_", _box_iou), _Part("tp_m", "seg", "mask_", _mask_iou)),
}
_METRICS = {"detect": "DetMetrics", "obb": "OBBMetrics", "pose": "PoseMetrics", "segment": "SegmentMetrics"}


def result_names(task: str) -> tuple:
    """The keys of ``result()`` for a task, in order."""
    task = task_name(task)
    if task == "classify":
        return ("top1", "top5", "n_images", "n_labels")
    return tuple(f"{p.prefix}{m}" for p in _PARTS[task] for m in ("map50", "map50_95")) + ("n_images", "n_labels")


def _tensor(torch, a: np.ndarray):
    """float32, except 0/1 masks, which stay uint8 (a quarter of the memory)."""
    return torch.from_numpy(np.ascontiguousarray(a if a.dtype == np.uint8 else a.astype(np.float32)))


class MetricAccumulator:
    """Accumulates one image at a time; ``result()`` may be read at any point.

    ``names``: the data set's classes (a mapping id -> name, or a list).
    ``kpt_sigmas``: pose OKS sigmas (default as Ultralytics: COCO's for 17 keypoints,
    else 1/K each). ``mask_side``: segment masks are compared on a grid at most this
    many pixels a side (``predictions.MASK_SIDE``)."""

    def __init__(self, task: str, names: Union[Mapping[int, str], Sequence[str]], *,
                 kpt_sigmas: Optional[Sequence[float]] = None, mask_side: int = MASK_SIDE):
        self.task = task_name(task)
        self.names = dict(names) if isinstance(names, Mapping) else dict(enumerate(names))
        if not self.names:
            raise UserError("names", "no classes")
        self.kpt_sigmas = None if kpt_sigmas is None else np.asarray(kpt_sigmas, dtype=np.float32)
        if mask_side < 8:
            raise UserError("mask_side", f"{mask_side}: expected at least 8 pixels")
        self.mask_side = mask_side
        self.n_images = 0
        self.n_labels = 0
        um = _um()
        if self.task == "classify":
            self._metrics = um.ClassifyMetrics()
            self._targets, self._top = [], []
        else:
            self._metrics = getattr(um, _METRICS[self.task])(names=self.names)
            self._match = _Matcher()

    @classmethod
    def for_dataset(cls, dataset: Dataset) -> "MetricAccumulator":
        return cls(dataset.task, dataset.names, kpt_sigmas=dataset.kpt_sigmas)

    def sigmas(self, k: int) -> np.ndarray:
        """OKS sigmas for K keypoints."""
        if self.kpt_sigmas is not None:
            if len(self.kpt_sigmas) != k:
                raise UserError("kpt_sigmas", f"{len(self.kpt_sigmas)} values for {k} keypoints")
            return self.kpt_sigmas
        return _um().OKS_SIGMA if k == 17 else np.full(k, 1.0 / k, dtype=np.float32)

    def update(self, prediction: Any, labels: Labels) -> None:
        """Add one image: its prediction (``predictions.FORMATS[task]``, in its pixels)
        and its ground truth."""
        nc = len(self.names)
        pred = parse(self.task, prediction, labels.shape, nc, self.mask_side)
        if self.task == "classify":
            self._update_classify(pred["scores"], labels, nc)
        else:
            self._update_objects(pred, labels)
        self.n_images += 1
        self.n_labels += len(labels)

    def _update_classify(self, scores: np.ndarray, labels: Labels, nc: int) -> None:
        torch = _torch()
        # as ClassificationValidator: the top min(5, nc) classes, best first
        top = np.argsort(-scores, kind="stable")[: min(5, scores.size)]
        self._top.append(torch.from_numpy(top[None].astype(np.int32)))
        self._targets.append(torch.from_numpy(labels.cls[:1].astype(np.int32)))

    def _update_objects(self, pred: Dict[str, np.ndarray], labels: Labels) -> None:
        torch = _torch()
        t = {k: _tensor(torch, v) for k, v in truth(self.task, labels, self.mask_side).items()}
        p = {k: _tensor(torch, v) for k, v in pred.items()}
        if self.task == "pose" and len(p["cls"]) and p["keypoints"].shape[1] != t["keypoints"].shape[1]:
            raise UserError("prediction", f"pose: {p['keypoints'].shape[1]} keypoints per object, "
                                          f"the data set has {t['keypoints'].shape[1]}")
        n_pred = len(p["cls"])
        cls = labels.cls.astype(np.float32)
        stat = {"target_cls": cls, "target_img": np.unique(cls), "conf": pred["conf"].astype(np.float32),
                "pred_cls": pred["cls"].astype(np.float32), "im_name": str(self.n_images)}
        for part in _PARTS[self.task]:
            if n_pred == 0 or len(cls) == 0:
                stat[part.stat] = np.zeros((n_pred, 10), dtype=bool)
            else:
                stat[part.stat] = self._match(p["cls"], t["cls"], part.iou(t, p, self))
        self._metrics.update_stats(stat)

    def result(self) -> Dict[str, float]:
        """``top1``, ``top5`` (classify) or the mAPs of the task's parts, with
        ``n_images`` and ``n_labels``; NaN metrics before any image."""
        names = result_names(self.task)
        out = dict.fromkeys(names[:-2], float("nan"))
        if self.n_images:
            out.update(self._classify() if self.task == "classify" else self._maps())
        out.update(n_images=float(self.n_images), n_labels=float(self.n_labels))
        return out

    def _classify(self) -> Dict[str, float]:
        self._metrics.process(self._targets, self._top)
        return {"top1": float(self._metrics.top1), "top5": float(self._metrics.top5)}

    def _maps(self) -> Dict[str, float]:
        self._metrics.process()
        out = {}
        for part in _PARTS[self.task]:
            m = getattr(self._metrics, part.metric)
            out[f"{part.prefix}map50"] = float(m.map50)
            out[f"{part.prefix}map50_95"] = float(m.map)
        return out
