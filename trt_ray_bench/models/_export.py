"""ONNX export through Ultralytics, offline, cached by what determines the file.

Models built from a yaml have random weights: they time exactly like trained ones
(same graph, same shapes) but predict nothing useful. The exported file carries that
fact in its ONNX metadata (``trb_weights``) so that it is reported wherever it is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Tuple

from .._atomic import write_atomic
from ..errors import UserError, lazy_import
from ..spec import TASK_SUFFIX

WEIGHTS_KEY = "trb_weights"
RANDOM_SEED = 0  # the torch seed of weights built from a yaml (stamped as trb_weights_seed)


def cache_dir() -> Path:
    """``$TRB_CACHE_DIR`` or ``~/.cache/trt_ray_bench``."""
    root = os.environ.get("TRB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "trt_ray_bench")
    return Path(root)


def yaml_name(arch: str, task: str) -> str:
    """``yolov8n`` + ``segment`` -> ``yolov8n-seg.yaml`` (a yaml Ultralytics ships)."""
    return f"{arch}{TASK_SUFFIX[task]}.yaml"


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    # Ultralytics writes an export from a yaml next to the current directory.
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _source_key(source: str) -> str:
    p = Path(source)
    if p.is_file():
        return hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    return source  # a yaml name that Ultralytics resolves from its own package


def export_onnx(
    source: str,
    task: Optional[str],
    hw: Tuple[int, int],
    batch: int = 1,
    out: Optional[Path] = None,
    name: Optional[str] = None,
    dynamic: bool = False,
) -> Tuple[Path, bool]:
    """Export ``source`` (yaml name/file or ``.pt``) to ONNX; returns (path, cached).

    Cached in ``cache_dir()/models`` by source content, task, size and batch; a file
    exported by another Ultralytics version than the installed one is exported again.
    """
    random_weights = not source.endswith(".pt")
    key = hashlib.sha256(
        f"{_source_key(source)}|{task}|{hw}|{batch}{'|dynamic' if dynamic else ''}".encode()
    ).hexdigest()[:12]
    stem = name or Path(source).stem
    tag = "dyn" if dynamic else f"b{batch}"
    target = (Path(out) if out else cache_dir() / "models") / f"{stem}-{hw[0]}x{hw[1]}-{tag}-{key}.onnx"
    installed = _installed("ultralytics")
    if target.is_file() and (installed is None or _exported_by(target) in (installed, None)):
        # Re-exported when another Ultralytics is installed; used as is where none is
        # (a GPU node that only runs the ONNX it was given).
        return target, True
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for the hub
    os.environ.setdefault("YOLO_VERBOSE", "False")
    ul = lazy_import("ultralytics", "ultralytics", "exporting a model from a yaml or .pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    src = str(Path(source).resolve()) if Path(source).is_file() else source
    from .. import progress

    with tempfile.TemporaryDirectory(prefix="trb-export-") as tmp, \
            progress.spinner(f"export   {stem} {hw[0]}x{hw[1]} b{batch} to ONNX (Ultralytics)"):
        with _chdir(Path(tmp)):
            try:
                model = _build(ul, src, task, random_weights)
                if task and model.task != task:
                    raise UserError(source, f"is a {model.task} model, not {task}")
                exported = model.export(format="onnx", imgsz=list(hw), batch=batch, dynamic=dynamic, verbose=False)
            except UserError:
                raise
            except FileNotFoundError as exc:
                raise UserError(source, f"Ultralytics cannot find it ({exc})") from None
            except Exception as exc:  # Ultralytics raises many kinds for a bad yaml/pt
                raise UserError(source, f"Ultralytics could not build/export it: {exc}".splitlines()[0]) from None
        exported = Path(tmp) / exported if not Path(exported).is_absolute() else Path(exported)
        props = {WEIGHTS_KEY: "random" if random_weights else "file", "trb_source": source}
        if random_weights:
            props["trb_weights_seed"] = str(RANDOM_SEED)
        _stamp(exported, props)
        write_atomic(target, lambda part: shutil.move(str(exported), str(part)))  # whole, even with two exporters
    return target, False


def _build(ul, src: str, task: Optional[str], random_weights: bool):
    """``ul.YOLO(src)``; a model built from a yaml gets its random weights from a fixed
    seed, so that the same yaml, Ultralytics and torch give the same ONNX on every machine
    (the user's own torch random state is left as it was)."""
    if not random_weights:
        return ul.YOLO(src, task=task)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return ul.YOLO(src, task=task)


def _installed(dist: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _exported_by(path: Path) -> Optional[str]:
    """The Ultralytics version recorded in an exported file's metadata."""
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        meta = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).get_modelmeta()
        return meta.custom_metadata_map.get("version")
    except Exception:  # noqa: BLE001 - unreadable: re-export
        return "unreadable"


def _stamp(path: Path, props: dict) -> None:
    onnx = lazy_import("onnx", "ultralytics", "stamping exported models")
    m = onnx.load(str(path))
    for k, v in props.items():
        entry = next((p for p in m.metadata_props if p.key == k), None) or m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(m, str(path))
