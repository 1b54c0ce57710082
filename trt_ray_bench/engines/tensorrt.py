"""TensorRT backend: an engine built from the model's ONNX (cached per GPU) or an
``.engine`` file given as is, run with preallocated device buffers on its own stream,
timed with CUDA events. TensorRT 8.5 (JetPack 5) to 11.x; the calls that differ between
versions are in ``_trt_api``.

Options (``models[].options``), named after trtexec's where they mean the same:
  transfers: true      H2D/D2H copies from pinned memory, timed as stages (false = device
                       buffers only, like ``--noDataTransfers``)
  cuda_graph: false    launch a captured CUDA graph instead of ``execute_async_v3``
                       (needs cuda-python: pycuda cannot capture)
  sync_wait: auto      how the host waits: auto | spin | yield | block (``--useSpinWait``)
  workspace_gb: 4      builder workspace;  opt_level: N  builder optimization level (>= 8.6)
  max_batch: N         dynamic batch: profile (1, batch, N) (the ONNX is exported dynamic)
  tactics: default     none = no cuBLAS/cuDNN tactics
  typing: weak|strong  weak: builder precision flags (+ INT8 calibrator), TensorRT < 11;
                       strong: the precision is in the ONNX (STRONGLY_TYPED), TensorRT >= 10.
                       Default: weak below 11, strong from 11.
  convert: auto        true | false | auto: convert the ONNX to the precision first
                       (``models.convert_model``: mixed-precision fp16, Q/DQ int8). auto
                       converts for strong typing; true with weak typing is TensorRT 8.x's
                       route to an engine from a Q/DQ or mixed-precision ONNX.
  calib_images         int8: the calibration images (calibrator and Q/DQ conversion)
  calib_cache          int8 with the calibrator: the file that keeps its scales
  calibrator: minmax   int8 with the calibrator: minmax (Ultralytics' exporter's) or entropy
                       (trtexec's); part of the engine cache's key
  dla_core: N          build for and run on DLA core N (``--useDLACore``; FP16 or INT8
                       only); refused where TensorRT counts no such core (every desktop GPU)
  gpu_fallback: false  with dla_core: layers the DLA cannot run go to the GPU
                       (``--allowGPUFallback``); false refuses an engine that needs it
  timing_cache: FILE   TensorRT's timing cache (``--timingCacheFile``): created by the first
                       build, read and updated by every later one (``_trt_timing_cache``);
                       not part of the engine cache's key
An ``.engine`` file is run as it was built: beside it only the run options, ``dla_core`` and
``gpu_fallback`` are taken; a build option is refused.
The CUDA binding: ``TRB_CUDA=auto | cuda-python | pycuda`` (``_cuda``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import BrokenExtra, MissingExtra, UserError
from ..models import convert_model, onnx_precision
from ..models._engine_file import read_metadata
from ..timing import BaseRunner, EventRing
from . import _cuda, _trt_api
from ._trt_build import (BuildOptions, CapturingLogger, build_engine, check_build_options, check_dla,
                         check_dla_options, converts, deserialize, io_tensors, trt_module)

NAME = "tensorrt"
USES_ONNX = True

_BUILD = {"workspace_gb", "opt_level", "max_batch", "tactics", "calib_images", "calib_cache", "calibrator", "typing",
          "convert", "dla_core", "gpu_fallback", "timing_cache"}
_RUN = {"transfers", "cuda_graph", "sync_wait"}
#: what an engine file given as ``path`` also takes: the core it loads on (and its fallback,
#: checked with it); the other build options would be ignored, so they are refused
_FOR_ENGINE_FILES = {"dla_core", "gpu_fallback"}
_KNOWN = _BUILD | _RUN
_ENGINE_SUFFIXES = (".engine", ".plan")
_DTYPES = ("float32", "float16", "uint8")


# ------------------------------------------------------------------ the backend seam
def available() -> None:
    """Both libraries import here (no GPU call): TensorRT and the CUDA binding."""
    trt_module()
    _cuda.import_binding()


def needs_gpu(model) -> bool:
    return True


def has_build_step(model) -> bool:
    """Always: an engine is built, or an engine file is deserialized and checked."""
    return True


def exports_dynamic(spec) -> bool:
    return "max_batch" in spec.options


def made_files(model) -> List[str]:
    """The engine and its record, and the converted ONNX and its record, where prepare
    made them (an engine file given as ``path`` is the user's, not made)."""
    files: List[str] = []
    e = model.engine or {}
    if model.engine_path and not e.get("given"):
        files += [model.engine_path, str(Path(model.engine_path).with_suffix(".json"))]
    c = getattr(model, "converted", None) or e.get("converted")
    if c and c.get("path") and c.get("converter_version"):  # "" = the ONNX already carried the precision
        files += [c["path"], str(Path(c["path"]).with_suffix(".json"))]
    return [f for f in files if Path(f).is_file()]


def _is_engine_file(model) -> bool:
    return str(model.source).lower().endswith(_ENGINE_SUFFIXES)


def build_options(model, onnx_precision: Optional[str] = "fp32") -> BuildOptions:
    o = model.options
    return BuildOptions(
        precision=model.precision, workspace_gb=float(o.get("workspace_gb", 4.0)), opt_level=o.get("opt_level"),
        max_batch=o.get("max_batch"), batch=model.batch, tactics=o.get("tactics", "default"),
        calib_images=o.get("calib_images"), calib_cache=o.get("calib_cache"),
        calibrator=o.get("calibrator", "minmax"), typing=o.get("typing"),
        convert=o.get("convert", "auto"), onnx_precision=onnx_precision,
        dla_core=o.get("dla_core"), gpu_fallback=o.get("gpu_fallback", False),
        timing_cache=o.get("timing_cache"),  # ~ expanded where it is read (_trt_timing_cache)
    )


def _carried_precision(path: str) -> Optional[str]:
    """What the ONNX already carries (fp32 / fp16 / int8); None where that cannot be read
    here (no onnx installed): the node decides then."""
    if not path or not Path(path).is_file():
        return None
    try:
        return onnx_precision(path)
    except (ImportError, MissingExtra, BrokenExtra):
        return None


def check(model, where: str = "") -> None:
    """Refuse bad options on the driver, before a GPU (or TensorRT) is involved."""
    where = where or f"models.{model.name}"
    unknown = set(model.options) - _KNOWN
    if unknown:
        raise UserError(f"{where}.options", f"unknown tensorrt option(s) {sorted(unknown)}; known: {sorted(_KNOWN)}")
    o = model.options
    for flag in ("transfers", "cuda_graph"):
        if flag in o and not isinstance(o[flag], bool):
            raise UserError(f"{where}.options.{flag}", f"{o[flag]!r}, expected true or false")
    if o.get("sync_wait", "auto") not in _cuda.SCHEDULE:
        raise UserError(f"{where}.options.sync_wait", f"{o['sync_wait']!r}, expected one of {list(_cuda.SCHEDULE)}")
    if o.get("cuda_graph") and _cuda.choice() == "pycuda":
        _refuse_graph(where)
    _check_types(o, where)
    if model.engine_path or _is_engine_file(model):
        unused = sorted(set(o) & (_BUILD - _FOR_ENGINE_FILES)) if _is_engine_file(model) else []
        if unused:
            raise UserError(f"{where}.options.{unused[0]}",
                            f"build option(s) {unused} given with an engine file ({Path(str(model.source)).name}), "
                            "which is run as it was built: build from the ONNX to use them")
        check_dla_options(BuildOptions(precision=model.precision, dla_core=o.get("dla_core"),
                                       gpu_fallback=o.get("gpu_fallback", False)), where)
        return
    carried = _carried_precision(model.onnx_path) if model.precision != "fp32" else "fp32"
    check_build_options(build_options(model, carried), where)


#: the numeric build options: (type, lowest, highest, what is expected), checked before any use
_NUMBERS = {"workspace_gb": (float, 0.0, None, "a positive size in GB"),
            "opt_level": (int, 0, 5, "an optimization level, 0 to 5 (TensorRT's builder_optimization_level)"),
            "max_batch": (int, 1, None, "the largest batch of the engine's profile, 1 or more")}


def _check_types(o: dict, where: str) -> None:
    """Each option of the right kind, in one line naming it, before any is used (a string
    where a number belongs had ended in an internal error, or failed on the node)."""
    for name, (kind, lo, hi, expected) in _NUMBERS.items():
        if name not in o:
            continue
        v = o[name]
        ok = isinstance(v, (int, float) if kind is float else int) and not isinstance(v, bool)
        ok = ok and math.isfinite(v) and (v > lo if kind is float else v >= lo) and (hi is None or v <= hi)
        if not ok:
            raise UserError(f"{where}.options.{name}", f"{v!r:.60}, expected {expected}")
    for name in ("calib_images", "calib_cache"):
        if name in o and not isinstance(o[name], str):
            raise UserError(f"{where}.options.{name}", f"{o[name]!r:.60}, expected a path")


def _refuse_graph(where: str) -> None:
    raise UserError(f"{where}.options.cuda_graph", "needs cuda-python (the CUDA binding here is pycuda, which cannot "
                    f"capture graphs): pip install cuda-python and unset {_cuda.ENV}")


# ------------------------------------------------------------------ on the node
def _node_checks(model, where: str):
    """What the node's TensorRT, CUDA binding and GPU refuse, before any conversion or
    build: a CUDA graph without cuda-python, a typing this version lacks, the build
    options, a DLA core the builder does not have. Returns (trt, gpu, cc, opts); opts is
    None for an engine file (checked when it is loaded)."""
    trt = trt_module()
    cuda = _cuda.load()
    if model.options.get("cuda_graph") and not cuda.supports_graphs:
        _refuse_graph(where)
    gpu, cc = cuda.device_name(), cuda.compute_capability()
    if _is_engine_file(model):
        return trt, gpu, cc, None
    carried = _carried_precision(model.onnx_path) if model.precision != "fp32" else "fp32"
    opts = build_options(model, carried)
    # the typing first: a version that lacks it is refused before any conversion work
    opts = dataclasses.replace(opts, typing=opts.typing or _trt_api.default_typing(trt))
    _trt_api.check_typing(trt, opts.typing, where)
    check_build_options(opts, where)
    check_dla(trt, opts, gpu, where)
    return trt, gpu, cc, opts


def check_on_node(model, where: str = "") -> None:
    """``_node_checks`` alone: run on the node for every model of a run before the first
    is built, so that a refusal costs no build of the others."""
    _node_checks(model, where or f"models.{model.name}")


def prepare(model, where: str = ""):
    """On the node that will run it: convert the ONNX where the precision asks for it,
    build or check the engine; returns the model with ``engine_path``, ``engine`` (what
    was built, by which TensorRT, with which typing, for which GPU) and ``converted``."""
    where = where or f"models.{model.name}"
    trt, gpu, cc, opts = _node_checks(model, where)
    if opts is None:
        return _prepare_engine_file(trt, model, gpu, cc, where)
    src, converted = Path(model.onnx_path), None
    if converts(opts):
        converted = convert_model(src, model.precision, hw=model.hw, task=model.task,
                                  calib_images=opts.calib_images, where=where)
        src = Path(converted["path"])
        opts = dataclasses.replace(opts, onnx_precision=converted["precision"])
    info = build_engine(src, opts, gpu, where=where, hw=model.hw, cc=cc, converted=converted, task=model.task)
    return _with(model, engine_path=info.path, engine=dataclasses.asdict(info), converted=converted)


def _with(model, **changes):
    """``dataclasses.replace`` of the fields ``model`` has (``converted`` is new)."""
    names = {f.name for f in dataclasses.fields(model)}
    return dataclasses.replace(model, **{k: v for k, v in changes.items() if k in names})


def _prepare_engine_file(trt, model, gpu: str, cc, where: str):
    """An engine given as ``path``: loadable by this TensorRT, one image input; its input
    size taken from the engine where the spec gave none (``hw`` (0, 0))."""
    path = Path(model.source)
    if not path.is_file():
        raise UserError(f"{where}.path", f"{path}: no such file")
    logger = CapturingLogger(trt)
    runtime = trt.Runtime(logger)
    core = model.options.get("dla_core")
    if core is not None:  # a DLA engine loads on the core the runtime is set to
        check_dla(trt, build_options(model), gpu, where, count=int(runtime.num_DLA_cores))
        runtime.DLA_core = int(core)
    engine = deserialize(trt, runtime, logger, path, f"{where}.path")
    ins, outs = io_tensors(trt, engine, f"{where}.path")
    model = _with_engine_input(model, ins, where, path)
    meta = read_metadata(path)
    info = {"path": str(path), "trt_version": trt.__version__, "gpu": gpu, "cached": True, "given": True,
            "build_s": 0.0, "inputs": ins, "outputs": outs, "options": {}, "converted": None,
            # 11.x builds strongly typed networks only; an older engine does not say how it was built
            "typing": "strong" if _trt_api.version_tuple(trt)[0] >= _trt_api.WEAK_BEFORE else "unknown",
            "device_memory_bytes": _trt_api.engine_device_memory(engine),
            "compute_capability": f"{cc[0]}.{cc[1]}" if cc else "", "metadata": meta,
            "dla_core": core, "gpu_layers": [], "timing_cache": None}
    return _with(model, engine_path=str(path), engine=info)


def _hw_known(hw) -> bool:
    return bool(hw) and hw[0] > 0 and hw[1] > 0


def _with_engine_input(model, ins, where: str, path: Path):
    """Check the engine's input against the spec; take its size where the spec has none."""
    if len(ins) != 1:
        raise UserError(f"{where}.path", f"{path} has {len(ins)} inputs; one image input is expected")
    _, shape, dtype = ins[0]
    text = "x".join(map(str, shape))
    if len(shape) != 4:
        raise UserError(f"{where}.path", f"{path} takes input {text}; an image batch (N, C, H, W) is expected")
    if shape[0] > 0 and shape[0] != model.batch:
        raise UserError(f"{where}.batch", f"{path} takes input {text}, not batch {model.batch}")
    changes = {}
    if not _hw_known(model.hw):
        if shape[2] <= 0 or shape[3] <= 0:
            raise UserError(f"{where}.imgsz", f"{path} has a dynamic input size ({text}): give imgsz")
        changes["hw"] = (int(shape[2]), int(shape[3]))
    elif any(have > 0 and have != need for have, need in zip(shape[2:], model.hw)):
        raise UserError(f"{where}.imgsz", f"{path} takes input {text}, "
                        f"not batch {model.batch} at {model.hw[0]}x{model.hw[1]}")
    if dtype in _DTYPES:
        changes["input_dtype"] = dtype
    changes["input_shape"] = tuple(int(d) for d in shape)
    return _with(model, **changes)


# ------------------------------------------------------------------ trb doctor
_WIDTH = 13  # control.doctor's label column


def _line(label: str, text: str) -> str:
    return f"{label:<{_WIDTH}} {text}"


def doctor_lines() -> List[str]:
    """TensorRT's version (or why it does not import), the CUDA binding and its version,
    the CUDA runtime and driver, and each GPU with its compute capability. Never raises."""
    lines: List[str] = []
    try:
        trt = trt_module()
        lines.append(_line("tensorrt", f"{trt.__version__} (default typing: {_trt_api.default_typing(trt)})"))
    except Exception as exc:  # noqa: BLE001 - MissingExtra / BrokenExtra, or anything a binding raises
        lines.append(_line("tensorrt", str(exc)))
    try:
        cuda = _cuda.load(None)
        lines.append(_line("cuda binding", f"{cuda.name} {cuda.version} ({_cuda.ENV}={_cuda.choice()})"))
        lines.append(_line("cuda", f"runtime {cuda.runtime_version()}, driver {cuda.driver_version()}"))
        for d in range(cuda.device_count()):
            major, minor = cuda.compute_capability(d)
            lines.append(_line(f"gpu {d}", f"{cuda.device_name(d)}, compute capability {major}.{minor}"))
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not fail
        lines.append(_line("gpu", str(exc) if isinstance(exc, UserError) else f"{exc.__class__.__name__}: {exc}"))
    return lines


# ------------------------------------------------------------------ the runner
class TensorRTRunner(BaseRunner):
    """One engine, one execution context, one stream; CUDA events around every inference
    (and its H2D / compute / D2H stages when copies are on)."""

    backend = "tensorrt"

    def __init__(self, model):
        o = model.options
        self.model = model
        self.transfers = bool(o.get("transfers", True))
        self.graph = bool(o.get("cuda_graph", False))
        self.cuda = _cuda.load(o.get("sync_wait", "auto"))
        if self.graph and not self.cuda.supports_graphs:
            _refuse_graph(f"models.{model.name}")
        trt = trt_module()
        self.logger = CapturingLogger(trt)
        self.runtime = trt.Runtime(self.logger)
        dla = (model.engine or {}).get("dla_core")
        if dla is not None:  # the core the engine was built for
            self.runtime.DLA_core = int(dla)
        self.engine = deserialize(trt, self.runtime, self.logger, Path(model.engine_path), f"models.{model.name}")
        self.context = self.engine.create_execution_context()
        ins, outs = io_tensors(trt, self.engine)
        self.in_name, in_shape, in_dtype = ins[0]
        self.in_shape, self.in_dtype = self._input_shape(in_shape), np.dtype(in_dtype)
        self.context.set_input_shape(self.in_name, list(self.in_shape))
        self.stream = self.cuda.stream()
        self.outputs = []  # (name, device ptr, pinned host array)
        for name, _, dt in outs:
            oshape = tuple(self.context.get_tensor_shape(name))
            ptr = self.cuda.malloc(int(np.prod(oshape)) * np.dtype(dt).itemsize)
            self.context.set_tensor_address(name, ptr)
            host = self.cuda.host_array(oshape, dt) if self.transfers else None
            self.outputs.append((name, ptr, host))
        self.in_ptr = self.cuda.malloc(int(np.prod(self.in_shape)) * self.in_dtype.itemsize)
        self.context.set_tensor_address(self.in_name, self.in_ptr)
        self._poke_ptr = self.cuda.malloc(4)  # poke(): a 4-byte memset on this stream
        self.n_inputs = 0
        self._inputs: List = []
        self._events = EventRing(self.cuda.event, self._read_events, 4 if self.transfers else 2,
                                 width=4 if self.transfers else 1)
        self._stages: Dict[str, List[float]] = {}
        self._graph_exec = None
        self._staging = None

    def _input_shape(self, in_shape) -> Tuple[int, ...]:
        """The engine's input shape with the dynamic axes filled from the model."""
        m = self.model
        shape = [m.batch if (i == 0 and d < 0) else d for i, d in enumerate(in_shape)]
        if any(d < 0 for d in shape):
            shape = [m.batch, 3, m.hw[0], m.hw[1]]
        return tuple(int(d) for d in shape)

    # ---------------------------------------------------------------- inputs
    def prepare(self, inputs: Sequence[np.ndarray]) -> None:
        self.cuda.bind()
        batches = [np.ascontiguousarray(x, dtype=self.in_dtype).reshape(self.in_shape) for x in inputs]
        if self.transfers:
            self._inputs = []
            for x in batches:
                pinned = self.cuda.host_array(self.in_shape, self.in_dtype)
                pinned[...] = x
                self._inputs.append(pinned)
        else:
            if self.graph and len(batches) > 1:
                raise UserError(f"models.{self.model.name}.options.cuda_graph",
                                "a captured graph reads one input buffer: use transfers: true with several inputs")
            self._inputs = [self.in_ptr] + [self.cuda.malloc(x.nbytes) for x in batches[1:]]
            for ptr, x in zip(self._inputs, batches):
                self.cuda.htod(ptr, x, self.stream)
            self.cuda.sync_stream(self.stream)
        self.n_inputs = len(self._inputs)
        self.context.execute_async_v3(self.stream)  # the first run allocates; keep it out of capture
        self.cuda.sync_stream(self.stream)
        if self.graph:
            self._graph_exec = self.cuda.capture(self.stream, lambda: self.context.execute_async_v3(self.stream))

    # ---------------------------------------------------------------- timing
    def reserve(self, n: int) -> int:
        """Create the ring of CUDA events now (``run_loop`` calls it before timing, in the
        thread that times): ``n`` slots (at least ``EVENT_RING``, at most ``EVENT_RING_MAX``;
        kept for later loops), recycled, so no ``cudaEventCreate`` lands inside a timed
        iteration and a long run holds no more events than the largest phase asked for.
        Returns the capacity; an inference past it records no events (NaN GPU time)."""
        self.cuda.bind()
        return self._events.reserve(n)

    def _read_events(self, e: tuple) -> tuple:
        el = self.cuda.elapsed_ms
        if self.transfers:
            return (el(e[0], e[3]), el(e[0], e[1]), el(e[1], e[2]), el(e[2], e[3]))
        return (el(e[0], e[1]),)

    def poke(self) -> None:
        """A 4-byte ``cudaMemsetAsync`` on this runner's stream, waited for."""
        self.cuda.memset(self._poke_ptr, 0, 4, self.stream)
        self.cuda.sync_stream(self.stream)

    def infer(self, index: int) -> None:
        self._launch(self._inputs[index] if self.transfers else None, index)

    def run_array(self, x: np.ndarray) -> list:
        """One inference on a new image (the pipeline's call): staged through pinned
        memory, timed like ``infer``; outputs in pinned host arrays after sync."""
        if not self.transfers:
            raise UserError(f"models.{self.model.name}.options.transfers",
                            "the predict pipeline copies each image in and its outputs out: needs transfers: true")
        self.cuda.bind()  # a thread-local check, once per image (the pipeline's stages are ms)
        if self._staging is None:
            self._staging = self.cuda.host_array(self.in_shape, self.in_dtype)
        self._staging[...] = x.reshape(self.in_shape)
        self._launch(self._staging, 0)
        return [host for _, _, host in self.outputs]

    def _launch(self, host_in, index: int) -> None:
        cuda, s = self.cuda, self.stream
        ev = self._events.next()  # None: past the reserved ring's capacity, no GPU time
        if ev is not None:
            cuda.record(ev[0], s)
        if self.transfers:
            cuda.htod(self.in_ptr, host_in, s)
            if ev is not None:
                cuda.record(ev[1], s)
        elif self.n_inputs > 1:
            self.context.set_tensor_address(self.in_name, self._inputs[index])
        if self._graph_exec is not None:
            cuda.launch(self._graph_exec, s)
        else:
            self.context.execute_async_v3(s)
        if self.transfers:
            if ev is not None:
                cuda.record(ev[2], s)
            for _, ptr, host in self.outputs:
                cuda.dtoh(host, ptr, s)
        if ev is not None:
            cuda.record(ev[-1], s)

    def synchronize(self, how: str) -> None:
        if how == "device":
            self.cuda.sync_device()
        elif how == "stream":
            self.cuda.sync_stream(self.stream)

    def gpu_times_ms(self) -> Optional[List[float]]:
        """Reads (and frees for reuse) the events of the calls since the last call; NaN
        for a call past the ring's capacity. Waits for the stream first, so ``run_loop``
        calls it only where a wait changes nothing it measures: with ``sync: none`` in a
        gap or after the final synchronisation, never between back-to-back inferences."""
        self.cuda.bind()  # run_loop's first call, in the thread that times
        self.cuda.sync_stream(self.stream)
        vals = self._events.take()
        total = [v[0] for v in vals]
        if self.transfers:
            self._stages = {"h2d_ms": [v[1] for v in vals], "compute_ms": [v[2] for v in vals],
                            "d2h_ms": [v[3] for v in vals]}
        else:
            self._stages = {"compute_ms": list(total)}
        return total

    def stage_times_ms(self) -> Dict[str, List[float]]:
        """Per-stage GPU times of the calls reported by the last ``gpu_times_ms``."""
        out, self._stages = self._stages, {}
        return out

    def describe(self) -> dict:
        e = self.model.engine or {}
        return {"device": "gpu", "providers": f"tensorrt {e.get('trt_version', '')} via {self.cuda.name}",
                "gpu": e.get("gpu", ""), "engine_path": self.model.engine_path,
                "transfers": self.transfers, "cuda_graph": self.graph, "dla_core": e.get("dla_core")}

    def close(self) -> None:
        self.cuda.bind()
        self.context = None
        self.engine = None
        self.cuda.close()


def load(model, **_):
    return TensorRTRunner(model)
