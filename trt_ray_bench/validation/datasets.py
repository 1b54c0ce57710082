"""Validation data sets: images with their ground truth, read before anything is timed,
so the "Validation" study compares predictions against labels that were checked first.

Two layouts, as Ultralytics reads them: a data yaml (``path``, ``val``, ``names``,
``kpt_shape`` for pose; labels in ``labels/`` mirroring ``images/``) for detect, pose,
segment and obb; class folders (``val/<class>/*.jpg``, index = sorted order) for
classify. Every mistake is a one-line ``UserError`` naming the file (and line) or the
yaml field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..errors import UserError
from ..models._inputs import open_image
from ..spec._model import _task
from ._labels import Labels, label_path, read_label_file, to_pixels
from ._source import Source, find_source

__all__ = ["Dataset", "Item", "Labels", "load_dataset", "read_image", "image_shape", "task_name"]

ON_BAD_LABEL = ("stop", "skip")


@dataclass(frozen=True, eq=False)
class Item:
    """One image and its ground truth (in its pixels)."""

    image: Path
    labels: Labels


@dataclass(frozen=True, eq=False)
class Dataset:
    """The images used and their labels, with an account of what was left out."""

    task: str
    names: Dict[int, str]
    items: Tuple[Item, ...]
    source: str  # the yaml or folder it came from
    split: str = "val"
    n_listed: int = 0  # images in the split before ``limit`` and skipping
    kpt_shape: Optional[Tuple[int, int]] = None
    kpt_sigmas: Optional[Tuple[float, ...]] = None
    skipped: Tuple[str, ...] = ()  # "file:line: reason", the first bad line of each skipped image
    n_bad_lines: int = 0  # bad label lines in the skipped images
    n_background: int = 0  # images without a label file: no objects, as Ultralytics counts them
    n_repeated: int = 0  # label lines given twice in one file, dropped as Ultralytics does

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    @property
    def n_images(self) -> int:
        return len(self.items)

    @property
    def n_labels(self) -> int:
        return sum(len(it.labels) for it in self.items)

    @property
    def images(self) -> List[Path]:
        return [it.image for it in self.items]

    def summary(self) -> str:
        """One line for the user: what was used and what was left out."""
        text = f"{self.source} ({self.split}, {self.task}): {self.n_images} of {self.n_listed} images, " \
               f"{self.n_labels} labels, {len(self.names)} classes"
        if self.n_background:
            text += f"; {self.n_background} without a label file"
        if self.n_repeated:
            text += f"; {self.n_repeated} repeated label lines dropped"
        if self.skipped:
            text += (f"; {len(self.skipped)} images skipped for {self.n_bad_lines} bad label lines "
                     f"(first: {self.skipped[0]})")
        return text


def task_name(task: str) -> str:
    """The Ultralytics task name for what users write (cls, seg, ...)."""
    try:
        name = _task(task)
    except ValueError as exc:
        raise UserError("task", str(exc)) from None
    if name is None:
        raise UserError("task", "needed (classify, detect, pose, segment, obb)")
    return name


def load_dataset(
    data: Union[str, Path],
    task: str,
    *,
    split: str = "val",
    limit: Optional[int] = None,
    on_bad_label: str = "stop",
) -> Dataset:
    """Read ``split`` of ``data`` (a data yaml, or a folder of class folders for classify)
    for a ``task`` model: the first ``limit`` usable images. A bad label line stops with
    its file:line, or (``on_bad_label="skip"``) leaves its image out and is counted."""
    task = task_name(task)
    if on_bad_label not in ON_BAD_LABEL:
        raise UserError("on_bad_label", f"{on_bad_label!r}: expected stop or skip")
    if limit is not None and limit < 1:
        raise UserError("limit", f"{limit}: expected at least 1 image")
    src = find_source(str(data), task, split)
    reader = _read_classes if task == "classify" else _read_labelled
    return reader(src, task, split, limit, on_bad_label == "skip")


def _read_classes(src: Source, task: str, split: str, limit: Optional[int], _skip: bool) -> Dataset:
    images = src.images[:limit] if limit else src.images
    items = tuple(Item(f, Labels(image_shape(f), np.array([c], dtype=np.int64)))
                  for f, c in zip(images, src.classes))
    return Dataset(task, src.names, items, src.where, split, n_listed=len(src.images))


def _read_labelled(src: Source, task: str, split: str, limit: Optional[int], skip: bool) -> Dataset:
    items: List[Item] = []
    skipped: List[str] = []
    n_bad = n_background = n_lines = n_repeated = 0
    for image in src.images:
        if limit and len(items) >= limit:
            break
        lf = label_path(image)
        if lf.is_file():
            rows, problems, repeated = read_label_file(lf, task, len(src.names), src.kpt_shape)
            n_lines += len(rows) + len(problems)
        else:
            rows, problems, repeated = [], [], 0
            n_background += 1
        if problems:
            line, reason = problems[0]
            if not skip:
                raise UserError(f"{lf}:{line}", reason)
            skipped.append(f"{lf}:{line}: {reason}")
            n_bad += len(problems)
            continue
        items.append(Item(image, to_pixels(rows, task, image_shape(image), src.kpt_shape)))
        n_repeated += repeated
    _check_some_labels(src, task, len(items) + len(skipped), n_background)
    if n_bad and n_bad == n_lines:  # not a few bad lines: data of another task
        raise UserError(src.where, f"no label line fits a {task} data set "
                                   f"(all {n_bad} bad; first: {skipped[0]})")
    return Dataset(task, src.names, tuple(items), src.where, split, n_listed=len(src.images),
                   kpt_shape=src.kpt_shape, kpt_sigmas=src.kpt_sigmas, skipped=tuple(skipped),
                   n_bad_lines=n_bad, n_background=n_background, n_repeated=n_repeated)


def _check_some_labels(src: Source, task: str, n_read: int, n_background: int) -> None:
    """No label file at all gives metrics of nothing: refuse it, saying when the images
    are class folders (a classify set given to a box model)."""
    if n_background < n_read:
        return
    folder = label_path(src.images[0]).parent
    if folder.is_dir() and next(folder.glob("*.txt"), None) is not None:
        return  # labelled set whose first images show no objects
    hint = ""
    if len({f.parent for f in src.images}) > 1 and len({f.parent.parent for f in src.images}) == 1:
        hint = "; the images are in class folders, a classify data set"
    raise UserError(src.where, f"no label files for a {task} data set (looked for {label_path(src.images[0])}: "
                               f"labels/ mirrors images/, one .txt per image){hint}")


def image_shape(path: Path) -> Tuple[int, int]:
    """(height, width) of the upright image, from its header (EXIF rotation applied, as
    Ultralytics does, since labels are drawn on the upright image)."""
    try:
        with open_image(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception as exc:  # noqa: BLE001 - PIL and its plugins raise many kinds
        raise UserError(str(path), f"cannot decode the image ({_why(exc)})") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def read_image(path: Union[str, Path]) -> np.ndarray:
    """The upright RGB image as (H, W, 3) uint8, in the frame the labels are in."""
    from PIL import ImageOps

    try:
        with open_image(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception as exc:  # noqa: BLE001
        raise UserError(str(path), f"cannot decode the image ({_why(exc)})") from None


def _why(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text[:80]}" if text else exc.__class__.__name__
