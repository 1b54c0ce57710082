"""YOLO label files: one object per line, normalized coordinates, the line's shape set by
the task. A table of per-task row parsers; the ground truth comes out in the image's
pixels, the frame predictions are given in."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# Ultralytics accepts coordinates up to 1% outside the image (verify_image_label).
_TOLERANCE = 0.01


@dataclass(frozen=True, eq=False)
class Labels:
    """Ground truth of one image, in its pixels. ``cls`` (N,) always; the rest per task:
    ``boxes`` (N, 4) xyxy for detect, pose and segment; ``keypoints`` (N, K, 3) x, y,
    visibility for pose; ``segments`` N polygons (P, 2) for segment; ``corners``
    (N, 4, 2) for obb. For classify ``cls`` is the image's one class."""

    shape: Tuple[int, int]  # (height, width) of the image
    cls: np.ndarray
    boxes: Optional[np.ndarray] = None
    keypoints: Optional[np.ndarray] = None
    segments: Optional[Tuple[np.ndarray, ...]] = None
    corners: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.cls)


class BadLine(ValueError):
    """A label line that does not fit; the caller names file:line."""


def _coords(values: Sequence[float]) -> np.ndarray:
    pts = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    if pts.min() < -_TOLERANCE or pts.max() > 1 + _TOLERANCE:
        raise BadLine(f"coordinates must be normalized to 0..1, got {pts.min():g}..{pts.max():g}")
    return pts


def _box(values: Sequence[float]) -> np.ndarray:
    cx, cy, w, h = values
    if w <= 0 or h <= 0:
        raise BadLine(f"box width and height must be positive, got {w:g} x {h:g}")
    return _coords([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]).reshape(4)


def _polygon(values: Sequence[float]) -> np.ndarray:
    if len(values) % 2 or len(values) < 6:
        raise BadLine(f"a polygon needs at least 3 x y pairs, got {len(values)} numbers")
    return _coords(values)


def _hull(poly: np.ndarray) -> np.ndarray:
    return np.concatenate([poly.min(0), poly.max(0)])


def _keypoints(values: Sequence[float], kpt_shape: Tuple[int, int]) -> np.ndarray:
    k, d = kpt_shape
    kpts = np.asarray(values, dtype=np.float64).reshape(k, d)
    if d == 2:  # no visibility column: Ultralytics counts negative coordinates as absent
        kpts = np.concatenate([kpts, (kpts.min(1, keepdims=True) >= 0).astype(np.float64)], 1)
    visible = kpts[:, 2] > 0
    if visible.any():
        _coords(kpts[visible, :2])
    return kpts


def _detect(v, kpt_shape):
    if len(v) == 4:
        return {"boxes": _box(v)}
    if kpt_shape and len(v) == 4 + kpt_shape[0] * kpt_shape[1]:  # pose row: keep the box
        return {"boxes": _box(v[:4])}
    return {"boxes": _hull(_polygon(v))}  # segment or obb row: its enclosing box


def _segment(v, kpt_shape):
    if len(v) == 4:
        raise BadLine("a box (5 columns), but segment labels are polygons: cls x1 y1 x2 y2 x3 y3 ...")
    poly = _polygon(v)
    return {"boxes": _hull(poly), "segments": poly}


def _pose(v, kpt_shape):
    k, d = kpt_shape
    if len(v) != 4 + k * d:
        raise BadLine(f"{len(v) + 1} columns, but pose labels with kpt_shape [{k}, {d}] have {5 + k * d}: "
                      f"cls cx cy w h and {k} keypoints of {d} numbers")
    return {"boxes": _box(v[:4]), "keypoints": _keypoints(v[4:], kpt_shape)}


def _obb(v, kpt_shape):
    if len(v) != 8:
        raise BadLine(f"{len(v) + 1} columns, but obb labels have 9: cls x1 y1 x2 y2 x3 y3 x4 y4")
    return {"corners": _coords(v)}


#: How each task reads the numbers after the class id of a line.
ROWS: Dict[str, Callable] = {"detect": _detect, "segment": _segment, "pose": _pose, "obb": _obb}

Row = Tuple[int, Dict[str, np.ndarray]]


def parse_line(text: str, task: str, nc: int, kpt_shape: Optional[Tuple[int, int]]) -> Optional[Row]:
    """One line -> (class, normalized parts); None for a blank line; BadLine otherwise."""
    tokens = text.split()
    if not tokens:
        return None
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise BadLine(f"not a number: {bad[:20]!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise BadLine("not a finite number: " + next(t for t, v in zip(tokens, values) if not math.isfinite(v)))
    c = values[0]
    if c != int(c) or c < 0:
        raise BadLine(f"class id must be a whole number >= 0, got {tokens[0]}")
    if c >= nc:
        raise BadLine(f"class {int(c)} but names has {nc} classes (0-{nc - 1})")
    if len(values) < 5:
        raise BadLine(f"{len(values)} columns, too few for a {task} label")
    return int(c), ROWS[task](values[1:], kpt_shape)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_label_file(path: Path, task: str, nc: int, kpt_shape=None) -> Tuple[List[Row], List[Tuple[int, str]], int]:
    """The rows of a label file, the problems found as (line number, reason), and how
    many repeated lines were dropped (as Ultralytics does: a repeated label would count
    as an object the model missed)."""
    rows, problems, seen = [], [], set()
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for i, line in enumerate(text.splitlines(), 1):
        try:
            row = parse_line(line, task, nc, kpt_shape)
        except BadLine as exc:
            problems.append((i, str(exc)))
            continue
        key = tuple(line.split())
        if row is not None and key not in seen:
            seen.add(key)
            rows.append(row)
    n_lines = sum(1 for line in text.splitlines() if line.strip())
    return rows, problems, n_lines - len(rows) - len(problems)


def to_pixels(rows: List[Row], task: str, shape: Tuple[int, int], kpt_shape=None) -> Labels:
    """Stack the rows of one image and scale them to its (height, width)."""
    scale = np.array([shape[1], shape[0]], dtype=np.float64)
    cls = np.array([c for c, _ in rows], dtype=np.int64)
    out = {}
    for key in FIELDS[task]:
        arrs = [row[key] for _, row in rows]
        if key == "segments":  # ragged: one polygon each
            out[key] = tuple(p * scale for p in arrs)
            continue
        tail = (kpt_shape[0], 3) if key == "keypoints" else _POINTS[key]
        a = np.array(arrs, dtype=np.float64).reshape((-1,) + tail)
        a[..., :2] *= scale  # x, y columns; keypoint visibility untouched
        out[key] = a.reshape(-1, 4) if key == "boxes" else a
    return Labels(shape=shape, cls=cls, **out)


#: What each task's ground truth holds besides ``cls``.
FIELDS = {"detect": ("boxes",), "segment": ("boxes", "segments"), "pose": ("boxes", "keypoints"),
          "obb": ("corners",), "classify": ()}
#: The parts as arrays of x, y points: a box xyxy is two points, obb corners four.
_POINTS = {"boxes": (2, 2), "corners": (4, 2)}


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, the
    suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")
