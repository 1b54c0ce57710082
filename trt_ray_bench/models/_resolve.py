"""A model spec resolved to an ONNX file whose inputs are known and checked."""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import UserError
from ..spec import DEFAULT_IMGSZ, ModelSpec, TASKS
from ._engine_file import exported_precision, read_metadata
from ._export import WEIGHTS_KEY, export_onnx, yaml_name

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


@dataclass(frozen=True)
class ResolvedModel:
    """Everything a worker needs to run the model, and everything a result records about it."""

    name: str
    task: Optional[str]
    onnx_path: str
    sha256: str
    weights: str  # random | file | unknown
    source: str
    hw: Tuple[int, int]
    batch: int
    backend: str
    options: Dict = field(default_factory=dict)
    input_name: str = "images"
    input_dtype: str = "float32"
    input_shape: Tuple[int, ...] = ()
    exported: bool = False
    precision: str = "fp32"
    #: tensorrt: the engine file (built on the node), and what built it
    engine_path: str = ""
    engine: Optional[Dict] = None
    #: fp16 / int8 by model conversion (``models.convert_model``, on the node): the
    #: converted ONNX and how it was made; the runner runs it instead of ``onnx_path``
    converted: Optional[Dict] = None

    @property
    def hw_known(self) -> bool:
        """False for an engine file given without imgsz: its node reads the size from it."""
        return self.hw[0] > 0 and self.hw[1] > 0


def inspect_onnx(path: Path, where: str) -> dict:
    """Inputs and metadata of an ONNX file, read with ONNX Runtime; clear error if it is not one."""
    import onnxruntime as ort

    if not path.is_file():
        raise UserError(where, f"{path}: no such file")
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(where, f"{path} is not a model ONNX Runtime can load ({first[:200]})") from None
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise UserError(where, f"{path} has {len(inputs)} inputs; one image input is expected")
    meta = sess.get_modelmeta().custom_metadata_map
    i = inputs[0]
    return {"input_name": i.name, "input_shape": list(i.shape), "input_type": i.type, "meta": dict(meta)}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_shape(shape: List, batch: int, hw: Tuple[int, int], where: str, path: Path) -> None:
    """The model's declared input (N, 3, H, W), symbolic dims accepting anything."""
    if len(shape) != 4:
        raise UserError(where, f"{path} takes input of shape {shape}; an image batch (N, C, H, W) is expected")
    want = [batch, None, hw[0], hw[1]]
    for dim, (have, need) in enumerate(zip(shape, want)):
        if need is not None and isinstance(have, int) and have > 0 and have != need:
            field_name = "batch" if dim == 0 else "imgsz"
            got = "x".join(str(d) for d in shape)
            raise UserError(
                f"{where}.{field_name}",
                f"the model takes input {got}, not batch {batch} at {hw[0]}x{hw[1]}",
            )


def _meta_imgsz(meta: dict) -> Optional[Tuple[int, int]]:
    try:
        v = ast.literal_eval(meta.get("imgsz", ""))
        return (int(v[0]), int(v[1]))
    except Exception:
        return None


#: the input size of an engine file given without imgsz: read from the engine on its node
UNKNOWN_HW = (0, 0)


def _default_hw(m: ModelSpec, where: str) -> Tuple[int, int]:
    if m.hw:
        return m.hw
    if _is_engine(m.path):
        return UNKNOWN_HW  # an engine carries its input shape (trtexec-built ones too)
    if m.task:
        return (DEFAULT_IMGSZ[m.task],) * 2
    raise UserError(f"{where}.imgsz", "needed (or a task, whose usual size is taken)")


def _is_engine(path: Optional[str]) -> bool:
    return (path or "").lower().endswith((".engine", ".plan"))


def _metadata_task(m: ModelSpec, meta: dict, path, where: str) -> Optional[str]:
    """The spec's task, else the one the file's metadata records; a contradiction is refused."""
    said = meta.get("task") if meta.get("task") in TASKS else None
    if m.task and said and said != m.task:
        raise UserError(f"{where}.task", f"{path} is a {said} model (its metadata says so), not {m.task}")
    return m.task or said


def _engine_labels(m: ModelSpec, where: str) -> Tuple[Optional[str], str, dict]:
    """(task, precision, options) of an engine file: an Ultralytics engine's from its metadata
    where the spec gives none (the task it records; the precision of the export arguments it
    records; the DLA core it was built for, which its loader runs it on, as here unless the
    spec names another: either core runs a DLA engine), and a spec's task or precision that
    contradicts them is refused. A bare engine (trtexec's) says nothing: the spec's values
    label it (precision default fp32)."""
    meta, options = read_metadata(m.path), dict(m.options)
    if not meta:
        return m.task, m.precision, options
    if str(meta.get("dla")) in ("0", "1") and "dla_core" not in options:
        options["dla_core"] = int(meta["dla"])
    task = _metadata_task(m, meta, m.path, where)
    said = exported_precision(meta)
    if said is None:
        return task, m.precision, options
    precision, words = said
    if "precision" in m.model_fields_set and m.precision != precision:
        raise UserError(f"{where}.precision", f"{m.precision}, but {Path(m.path).name} was exported as {precision} "
                        f"(its Ultralytics metadata: {words}): give precision: {precision}, or leave it out")
    return task, precision, options


def _file_sha(path: str) -> str:
    return sha256_file(Path(path)) if Path(path).is_file() else ""


def resolve_onnx(m: ModelSpec, where: str, export: bool = True, *, uses_onnx: bool, dynamic: bool) -> ResolvedModel:
    """Find or export the ONNX file of ``m`` and check its input against the spec.

    What the backend needs is given by the caller (``engines.resolve_model`` asks the
    backend): ``uses_onnx`` (without it, as for torch, which runs the Ultralytics model
    itself, nothing is exported) and ``dynamic`` (the export has a dynamic batch axis).
    With ``export=False`` (dry run) a model that would need exporting is not built;
    its planned export is described instead, with ``onnx_path`` empty. ``.engine`` files
    are checked on the node.
    """
    if m.path is not None and not Path(m.path).is_file():
        raise UserError(f"{where}.path", f"{m.path}: " + ("a folder, not a model file" if Path(m.path).is_dir()
                                                          else "no such file"))
    engine = _is_engine(m.path)
    task, precision, options = _engine_labels(m, where) if engine else (m.task, m.precision, dict(m.options))
    common = dict(name=m.name, batch=m.batch, backend=m.backend, options=options, precision=precision)
    yaml_src = m.arch is not None or m.path.lower().endswith((".yaml", ".yml"))
    if not uses_onnx or engine:
        source = yaml_name(m.arch, m.task) if m.arch is not None else m.path
        weights = "random" if yaml_src else ("unknown" if source.endswith((".engine", ".plan")) else "file")
        return ResolvedModel(task=task, onnx_path="", sha256=_file_sha(source), weights=weights, source=source,
                             hw=tuple(_default_hw(m, where)), **common)
    if m.arch is not None or not m.path.lower().endswith(".onnx"):
        source = yaml_name(m.arch, m.task) if m.arch is not None else m.path
        hw = tuple(m.hw or ((DEFAULT_IMGSZ[m.task],) * 2 if m.task else (640, 640)))
        if not export:
            return ResolvedModel(task=m.task, onnx_path="", sha256="", weights="random" if yaml_src else "file",
                                 source=source, hw=hw, **common)
        try:
            path, cached = export_onnx(source, m.task, hw, m.batch, dynamic=dynamic)
        except UserError as exc:
            raise UserError(f"{where}", exc.args[0]) from None
        exported = not cached
    else:
        path, exported, source = Path(m.path), False, m.path
    info = inspect_onnx(Path(path), f"{where}.path")
    meta = info["meta"]
    task = _metadata_task(m, meta, path, where)
    shape = info["input_shape"]
    hw = m.hw or _meta_imgsz(meta)
    if hw is None:
        if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
            hw = (shape[2], shape[3])
        else:
            raise UserError(f"{where}.imgsz", f"{path} has a dynamic input size; give imgsz")
    _check_shape(shape, m.batch, tuple(hw), where, Path(path))
    dtype = _ORT_DTYPES.get(info["input_type"])
    if dtype is None:
        raise UserError(f"{where}.path", f"{path} takes {info['input_type']}; float32/float16/uint8 images expected")
    return ResolvedModel(
        task=task,
        onnx_path=str(Path(path).resolve()),
        sha256=sha256_file(Path(path)),
        weights=meta.get(WEIGHTS_KEY, "unknown"),
        source=source,
        hw=(int(hw[0]), int(hw[1])),
        input_name=info["input_name"],
        input_dtype=dtype,
        input_shape=tuple(d if isinstance(d, int) else -1 for d in shape),
        exported=exported,
        **common,
    )
