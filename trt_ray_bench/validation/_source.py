"""Where a data set's images and class names are: an Ultralytics data yaml (YOLO layout)
or ImageNet-style class folders. Only paths and names here; labels are read elsewhere.

Mistakes are one-line ``UserError``s naming the yaml and its field, or the folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..models._inputs import IMAGE_SUFFIXES
from ..errors import UserError


@dataclass(frozen=True)
class Source:
    """The images of one split and what they are labelled with."""

    where: str  # what errors about the whole set name: the yaml or the folder
    names: Dict[int, str]
    images: Tuple[Path, ...]
    classes: Optional[Tuple[int, ...]] = None  # classify: the class of each image
    kpt_shape: Optional[Tuple[int, int]] = None
    kpt_sigmas: Optional[Tuple[float, ...]] = None


#: Folder names Ultralytics accepts for a classify split.
_SPLIT_FOLDERS = {"val": ("val", "validation", "valid")}
_ALL_SPLITS = ("train", "val", "validation", "valid", "test")


def find_source(data: str, task: str, split: str = "val") -> Source:
    """The images (sorted) and names of ``split`` in ``data`` (a yaml file or a folder)."""
    p = Path(data)
    if not p.exists():
        raise UserError(str(data), "no such file or folder (expected a data yaml, or class folders for classify)")
    if p.is_file():
        if p.suffix.lower() not in (".yaml", ".yml"):
            raise UserError(str(data), "expected a data yaml (.yaml) or a folder")
        return _from_yaml(p, task, split)
    if task == "classify":
        folder = _split_folder(p, split)
        return _class_folders(folder, str(folder), None)
    raise UserError(str(data), _folder_for_boxes(p, task))


def _split_folder(p: Path, split: str) -> Path:
    """``p/val`` (or Ultralytics' other names for it); ``p`` itself when it has no split
    folders at all (it is the split)."""
    found = [p / d for d in _SPLIT_FOLDERS.get(split, (split,)) if (p / d).is_dir()]
    if found:
        return found[0]
    others = sorted(d.name for d in p.iterdir() if d.is_dir() and d.name in _ALL_SPLITS)
    if others:
        raise UserError(str(p), f"no {split}/ folder (it has {', '.join(others)})")
    return p


def _folder_for_boxes(p: Path, task: str) -> str:
    need = f"a {task} model needs an Ultralytics data yaml (path, val, names) with labels/ next to images/"
    if _looks_like_class_folders(p):
        return f"class folders, a classify data set: {need}"
    yamls = sorted(p.glob("*.y*ml"))
    return f"a folder: {need}" + (f"; give {yamls[0]}?" if yamls else "")


def _looks_like_class_folders(p: Path) -> bool:
    split = p / "val" if (p / "val").is_dir() else p
    subs = [d for d in split.iterdir() if d.is_dir()]
    return bool(subs) and not (p / "labels").exists() and all(_images_in(d, 1) for d in subs[:3])


def _images_in(folder: Path, limit: Optional[int] = None) -> List[Path]:
    out = []
    for f in sorted(folder.rglob("*")):
        if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
            out.append(f)
            if limit and len(out) >= limit:
                break
    return out


def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise UserError(str(path), f"{line}not valid YAML") from None
    if not isinstance(data, dict):
        raise UserError(str(path), "expected a mapping (path, val, names)")
    return data


def _root(path: Path, data: Dict[str, Any]) -> Path:
    """``path`` relative to the yaml's folder (then to the current one); absent: the
    yaml's folder, as Ultralytics does."""
    value = data.get("path")
    if value in (None, ""):
        return path.parent
    root = Path(str(value)).expanduser()
    for candidate in ([root] if root.is_absolute() else [path.parent / root, root]):
        if candidate.is_dir():
            return candidate
    raise UserError(f"{path}: path", f"{value}: no such folder (looked beside the yaml and in the current folder)")


def _names(path: Path, data: Dict[str, Any]) -> Dict[int, str]:
    names = data.get("names")
    if names is None:
        nc = data.get("nc")
        if not isinstance(nc, int) or nc < 1:
            raise UserError(f"{path}: names", "missing: give the class names (a list, or {0: name, ...})")
        return {i: str(i) for i in range(nc)}
    if isinstance(names, list):
        out = {i: str(n) for i, n in enumerate(names)}
    elif isinstance(names, dict) and all(isinstance(k, int) for k in names):
        out = {int(k): str(v) for k, v in names.items()}
        if sorted(out) != list(range(len(out))):
            raise UserError(f"{path}: names", f"class ids must be 0..{len(out) - 1}, got {sorted(out)}")
    else:
        raise UserError(f"{path}: names", "expected a list of names or a mapping {0: name, ...}")
    if not out:
        raise UserError(f"{path}: names", "empty: a data set needs at least one class")
    nc = data.get("nc")
    if nc is not None and nc != len(out):
        raise UserError(f"{path}: nc", f"{nc} but names has {len(out)} classes")
    return dict(sorted(out.items()))


def _from_yaml(path: Path, task: str, split: str) -> Source:
    data = _read_yaml(path)
    root = _root(path, data)
    entries = data.get(split)
    if entries in (None, "", []):
        raise UserError(f"{path}: {split}", "missing: give the images (a folder, a list file, or a list of them)")
    names = _names(path, data)
    if task == "classify":
        if not isinstance(entries, str):
            raise UserError(f"{path}: {split}", "classify: expected one folder of class folders")
        return _class_folders(_existing(path, split, root, entries), f"{path}: {split}", names)
    images: List[Path] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        images += _listed_images(path, split, _existing(path, split, root, str(entry)))
    # other tasks use it too: their box is read from a pose row (as Ultralytics does)
    kpt_shape, sigmas = _keypoints(path, data) if task == "pose" or "kpt_shape" in data else (None, None)
    return Source(str(path), names, tuple(images), kpt_shape=kpt_shape, kpt_sigmas=sigmas)


def _existing(path: Path, split: str, root: Path, entry: str) -> Path:
    p = Path(entry).expanduser()
    p = p if p.is_absolute() else root / p
    if not p.exists():
        raise UserError(f"{path}: {split}", f"{entry}: no such folder or list file (under {root})")
    return p


def _listed_images(path: Path, split: str, p: Path) -> List[Path]:
    """A folder (searched recursively) or a text file of image paths (relative to it)."""
    if p.is_dir():
        images = _images_in(p)
        if not images:
            raise UserError(f"{path}: {split}", f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
        return images
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        f = Path(line)
        f = f if f.is_absolute() else p.parent / f
        if not f.is_file():
            raise UserError(f"{p}:{i}", f"{line}: no such image")
        out.append(f)
    if not out:
        raise UserError(f"{path}: {split}", f"{p}: lists no images")
    return out


def _keypoints(path: Path, data: Dict[str, Any]) -> Tuple[Tuple[int, int], Optional[Tuple[float, ...]]]:
    shape = data.get("kpt_shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)
            and shape[0] > 0 and shape[1] in (2, 3)):
        raise UserError(f"{path}: kpt_shape", f"expected [keypoints, 2 or 3] for a pose data set, got {shape!r}")
    sigmas = data.get("kpt_oks_sigmas")
    if sigmas is not None:
        if not (isinstance(sigmas, list) and len(sigmas) == shape[0]
                and all(isinstance(s, (int, float)) and s > 0 for s in sigmas)):
            raise UserError(f"{path}: kpt_oks_sigmas", f"expected {shape[0]} positive numbers, one per keypoint")
        sigmas = tuple(float(s) for s in sigmas)
    return (shape[0], shape[1]), sigmas


def _class_folders(folder: Path, where: str, names: Optional[Dict[int, str]]) -> Source:
    """ImageNet layout: one folder per class; the class index is the folders' sorted order."""
    if not folder.is_dir():
        raise UserError(where, f"{folder}: not a folder of class folders")
    classes = sorted(d for d in folder.iterdir() if d.is_dir())
    if not classes:
        detect_style = (folder / "labels").exists() or (folder.parent.name == "images")
        what = "images and labels, a detect-style data set" if detect_style else "images without class folders"
        raise UserError(where, f"{folder}: {what}; a classify model needs class folders (val/<class>/*.jpg)")
    if (folder.parent / "labels").is_dir() or (folder / "labels").is_dir():
        raise UserError(where, f"{folder}: has labels/ beside it, a detect-style data set; "
                               "a classify model needs class folders (val/<class>/*.jpg)")
    if names is not None and len(names) != len(classes):
        raise UserError(where, f"names has {len(names)} classes but {folder} has {len(classes)} class folders")
    per_class = [_images_in(d) for d in classes]
    # classes in turn (1st image of each class, 2nd of each, ...): the first N images of
    # a limited run cover all classes rather than the first few
    order = sorted((i, c) for c, found in enumerate(per_class) for i in range(len(found)))
    images = [per_class[c][i] for i, c in order]
    labels = [c for _, c in order]
    if not images:
        raise UserError(where, f"{folder}: no images in its class folders")
    names = names or {i: d.name for i, d in enumerate(classes)}
    return Source(where, names, tuple(images), classes=tuple(labels))
