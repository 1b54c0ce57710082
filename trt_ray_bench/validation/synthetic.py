"""A small real data set on disk for each task: images with drawn objects (PIL) and the
labels that match them exactly, in the layouts ``load_dataset`` reads. For tests and
demos that must run offline; the objects are simple, the files are the real formats."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import yaml

from .datasets import task_name

#: Class names, sorted so that a class folder's sorted position is its index.
NAMES = ("bar", "circle", "cross", "ring", "square", "triangle")
#: Pose objects carry the four corners and the centre of their box.
KPT_SHAPE = (5, 3)
_EMPTY_EVERY = 8  # every 8th image shows nothing (an empty label file), as real sets have


def make_synthetic(
    task: str,
    folder: Union[str, Path],
    n: int = 16,
    imgsz: Union[int, Tuple[int, int]] = 128,
    seed: int = 0,
    nc: int = 3,
    kpt_shape: Tuple[int, int] = KPT_SHAPE,
) -> Path:
    """Write ``n`` images with 1-3 objects each and their labels under ``folder``; returns
    what ``load_dataset`` takes: the data yaml, or for classify the folder holding
    ``val/<class>/``. ``imgsz`` is an int or (height, width)."""
    task = task_name(task)
    if not 1 <= nc <= len(NAMES):
        raise ValueError(f"nc must be 1..{len(NAMES)}")
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    if task == "classify":
        return _write_classify(folder, n, (h, w), rng, nc)
    return _write_yolo(task, folder, n, (h, w), rng, nc, tuple(kpt_shape))


def _write_classify(folder: Path, n: int, hw: Tuple[int, int], rng, nc: int) -> Path:
    for i in range(n):
        c = i % nc
        out = folder / "val" / NAMES[c] / f"{i:04d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        poly = _class_shape(rng, c, hw, big=True)
        _save(out, hw, rng, [(c, poly)], None)
    return folder


def _write_yolo(task: str, folder: Path, n: int, hw: Tuple[int, int], rng, nc: int,
                kpt_shape: Tuple[int, int] = KPT_SHAPE) -> Path:
    images, labels = folder / "images" / "val", folder / "labels" / "val"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    shape, line = _SHAPES[task], _LINES[task]
    for i in range(n):
        count = 0 if i % _EMPTY_EVERY == _EMPTY_EVERY - 1 else int(rng.integers(1, 4))
        objects = [(c, shape(rng, c, hw)) for c in rng.integers(0, nc, count)]
        kpts = [_keypoints(poly, j, kpt_shape[0]) for j, (_, poly) in enumerate(objects)] if task == "pose" else None
        _save(images / f"{i:04d}.jpg", hw, rng, objects, kpts)
        scale = np.array([hw[1], hw[0]], dtype=np.float64)
        text = [line(c, poly / scale, kpts[j] if kpts else None, scale) for j, (c, poly) in enumerate(objects)]
        (labels / f"{i:04d}.txt").write_text("".join(t + "\n" for t in text))
    # No `path`: the yaml's folder, for us and for Ultralytics. Ultralytics insists on a
    # `train` key; this set is for validation only, so it names the same images.
    data = {"train": "images/val", "val": "images/val", "names": {i: NAMES[i] for i in range(nc)}}
    if task == "pose":
        data["kpt_shape"] = [kpt_shape[0], 3]
    out = folder / "data.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


# Shapes: polygons in pixels, well inside the image.

def _centre(rng, hw: Tuple[int, int], radius: Tuple[float, float]) -> np.ndarray:
    h, w = hw
    return np.array([rng.uniform(radius[0] + 1, w - radius[0] - 1), rng.uniform(radius[1] + 1, h - radius[1] - 1)])


def _size(rng, hw: Tuple[int, int], big: bool = False) -> np.ndarray:
    lo, hi = (0.5, 0.7) if big else (0.2, 0.4)
    return rng.uniform(lo, hi, 2) * min(hw)


def _rectangle(rng, c: int, hw, big: bool = False) -> np.ndarray:
    half = _size(rng, hw, big) / 2
    ctr = _centre(rng, hw, half)
    return ctr + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])


def _class_shape(rng, c: int, hw, big: bool = False) -> np.ndarray:
    """Each class its own outline: rectangle, ellipse, triangle, ..."""
    half = _size(rng, hw, big) / 2
    ctr = _centre(rng, hw, half)
    kind = c % 3
    if kind == 0:
        unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    elif kind == 1:
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        unit = np.stack([np.cos(t), np.sin(t)], 1)
    else:
        unit = np.array([[0, -1], [1, 1], [-1, 1]])
    return ctr + half * unit


def _rotated_rectangle(rng, c: int, hw) -> np.ndarray:
    half = _size(rng, hw) / 2
    r = float(np.hypot(*half))
    ctr = _centre(rng, hw, (r, r))
    a = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ctr + (half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])) @ rot.T


def _keypoints(poly: np.ndarray, j: int, k: int = 5) -> np.ndarray:
    """Corners and centre of a rectangle, then edge midpoints for more, visible (2);
    every second object's centre is absent (0 0 0), as unlabelled keypoints are written."""
    base = np.concatenate([poly, poly.mean(0, keepdims=True)])
    extra = [(poly[i % 4] + poly[(i + 1) % 4]) / 2 for i in range(max(0, k - 5))]
    pts = np.concatenate([base] + ([np.asarray(extra)] if extra else []))[:k]
    kpts = np.concatenate([pts, np.full((k, 1), 2.0)], 1)
    if j % 2 and k > 4:
        kpts[4] = 0
    return kpts


_SHAPES: Dict[str, Callable] = {"detect": _class_shape, "segment": _class_shape, "pose": _rectangle,
                                "obb": _rotated_rectangle}


# Label lines: normalized, as Ultralytics writes them.

def _numbers(values) -> str:
    return " ".join(f"{v:.6f}" for v in np.asarray(values).ravel())


def _box(poly: np.ndarray) -> str:
    lo, hi = poly.min(0), poly.max(0)
    return _numbers(np.concatenate([(lo + hi) / 2, hi - lo]))


def _detect_line(c, poly, kpts, scale) -> str:
    return f"{c} {_box(poly)}"


def _segment_line(c, poly, kpts, scale) -> str:
    return f"{c} {_numbers(poly)}"


def _pose_line(c, poly, kpts, scale) -> str:
    norm = kpts.copy()
    norm[:, :2] /= scale
    return f"{c} {_box(poly)} {_numbers(norm)}"


_LINES: Dict[str, Callable] = {"detect": _detect_line, "segment": _segment_line, "pose": _pose_line,
                               "obb": _segment_line}  # obb: the four corners, a 4-point polygon

_COLOURS = ((220, 40, 40), (40, 180, 60), (50, 80, 220), (230, 200, 30), (200, 60, 200), (30, 200, 200))


def _save(path: Path, hw: Tuple[int, int], rng, objects: List[Tuple[int, np.ndarray]],
          kpts: Optional[List[np.ndarray]]) -> None:
    from PIL import Image, ImageDraw

    grey = int(rng.integers(60, 140))
    img = Image.new("RGB", (hw[1], hw[0]), (grey, grey, grey))
    draw = ImageDraw.Draw(img)
    for c, poly in objects:
        draw.polygon([tuple(p) for p in poly.tolist()], fill=_COLOURS[c % len(_COLOURS)])
    for k in kpts or []:
        for x, y, v in k:
            if v > 0:
                draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(255, 255, 255))
    img.save(path, quality=92)
