"""Model inputs, prepared before timing: a seeded random tensor, or real images
preprocessed the way Ultralytics does for the task (letterbox, or resize + centre crop
for classification), scaled to 0..1, RGB, NCHW."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: str, limit: Optional[int] = None, where: str = "input.path") -> List[Path]:
    p = Path(folder)
    if not p.is_dir():
        raise UserError(where, f"{folder}: not a folder of images")
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise UserError(where, f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    return files[:limit] if limit else files


def _letterbox(img, hw: Tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = hw
    r = min(h / img.height, w / img.width)
    nw, nh = max(1, round(img.width * r)), max(1, round(img.height * r))
    canvas = Image.new("RGB", (w, h), (114, 114, 114))
    canvas.paste(img.resize((nw, nh), Image.BILINEAR), ((w - nw) // 2, (h - nh) // 2))
    return np.asarray(canvas)


def _resize_crop(img, hw: Tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = hw
    r = max(h / img.height, w / img.width)
    nw, nh = max(w, round(img.width * r)), max(h, round(img.height * r))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - w) // 2, (nh - h) // 2
    return np.asarray(img.crop((left, top, left + w, top + h)))


def open_image(path):
    """``PIL.Image.open``, as Pillow has it: Ultralytics, once imported, replaces it with an
    opener that tries to install a HEIF plugin when a file does not decode, so a broken
    image would be reported as a missing package instead of as itself."""
    import sys

    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open)(path)


def load_images(files: Sequence[Path], hw: Tuple[int, int], task: Optional[str]) -> np.ndarray:
    """Decode and preprocess to float32 (N, 3, H, W) in 0..1."""
    from PIL import Image

    prep = _resize_crop if task == "classify" else _letterbox
    out = np.empty((len(files), 3, hw[0], hw[1]), dtype=np.float32)
    for i, f in enumerate(files):
        try:
            with open_image(f) as im:
                arr = prep(im.convert("RGB"), hw)
        except Exception as exc:  # noqa: BLE001 - PIL and its plugins raise many kinds
            raise UserError(str(f), f"cannot decode the image ({exc.__class__.__name__})") from None
        out[i] = arr.transpose(2, 0, 1) / 255.0
    return out


def make_inputs(
    kind: str,
    hw: Tuple[int, int],
    batch: int,
    task: Optional[str] = None,
    seed: int = 0,
    path: Optional[str] = None,
    limit: Optional[int] = None,
    dtype: str = "float32",
) -> List[np.ndarray]:
    """The list of batches the loop cycles through (index ``i % len``)."""
    if kind == "dummy":
        rng = np.random.default_rng(seed)
        x = rng.random((batch, 3, hw[0], hw[1]), dtype=np.float32)
        batches = [x]
    else:
        imgs = load_images(list_images(path, limit), hw, task)
        n = max(1, len(imgs) // batch)
        if len(imgs) < batch:  # fewer images than one batch: repeat them
            imgs = np.concatenate([imgs] * (batch // len(imgs) + 1))[:batch]
        batches = [np.ascontiguousarray(imgs[i * batch:(i + 1) * batch]) for i in range(n)]
    if dtype == "uint8":
        return [np.ascontiguousarray((b * 255).round().astype(np.uint8)) for b in batches]
    return [b.astype(dtype, copy=False) for b in batches]
