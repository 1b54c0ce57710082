"""TensorRT backend: an engine built from the model's ONNX (cached per GPU) or an
``.engine`` file given as is, run with preallocated device buffers on its own stream,
timed with CUDA events.

Options (``models[].options``), named after trtexec's where they mean the same:
  transfers: true      H2D/D2H copies from pinned memory, timed as stages (false = device
                       buffers only, like ``--noDataTransfers``)
  cuda_graph: false    launch a captured CUDA graph instead of ``execute_async_v3``
  sync_wait: auto      how the host waits: auto | spin | yield | block (``--useSpinWait``)
  workspace_gb: 4      builder workspace;  opt_level: N  builder optimization level (>= 8.6)
  max_batch: N         dynamic batch: profile (1, batch, N) (the ONNX is exported dynamic)
  tactics: default     none = no cuBLAS/cuDNN tactics
  calib_images, calib_cache   int8 calibration data
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import UserError
from . import _cuda
from ._trt_build import BuildOptions, CapturingLogger, build_engine, check_build_options, deserialize, io_tensors, trt_module

_BUILD = {"workspace_gb", "opt_level", "max_batch", "tactics", "calib_images", "calib_cache"}
_RUN = {"transfers", "cuda_graph", "sync_wait"}
_KNOWN = _BUILD | _RUN


def build_options(model) -> BuildOptions:
    o = model.options
    return BuildOptions(
        precision=model.precision, workspace_gb=float(o.get("workspace_gb", 4.0)), opt_level=o.get("opt_level"),
        max_batch=o.get("max_batch"), batch=model.batch, tactics=o.get("tactics", "default"),
        calib_images=o.get("calib_images"), calib_cache=o.get("calib_cache"),
    )


def check(model, where: str = "") -> None:
    """Refuse bad options on the driver, before a GPU is involved."""
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
    if model.engine_path or str(model.source).endswith((".engine", ".plan")):
        return
    check_build_options(build_options(model), where)


def prepare(model, where: str = ""):
    """On the node that will run it: build or check the engine; returns the model with
    ``engine_path`` and ``engine`` (what was built, by which TensorRT, for which GPU)."""
    where = where or f"models.{model.name}"
    trt = trt_module()
    cuda = _cuda.load()
    gpu = cuda.device_name()
    if str(model.source).endswith((".engine", ".plan")):
        path = Path(model.source)
        if not path.is_file():
            raise UserError(f"{where}.path", f"{path}: no such file")
        logger = CapturingLogger(trt)
        runtime = trt.Runtime(logger)
        engine = deserialize(trt, runtime, logger, path, f"{where}.path")
        ins, outs = io_tensors(trt, engine)
        _check_input(ins, model, where, path)
        info = {"path": str(path), "trt_version": trt.__version__, "gpu": gpu, "cached": True, "build_s": 0.0,
                "inputs": ins, "outputs": outs, "options": {}}
        return dataclasses.replace(model, engine_path=str(path), engine=info)
    info = build_engine(Path(model.onnx_path), build_options(model), gpu, where=where, hw=model.hw)
    return dataclasses.replace(model, engine_path=info.path, engine=dataclasses.asdict(info))


def _check_input(ins, model, where, path):
    if len(ins) != 1:
        raise UserError(f"{where}.path", f"{path} has {len(ins)} inputs; one image input is expected")
    shape = ins[0][1]
    want = [model.batch, None, model.hw[0], model.hw[1]]
    for have, need in zip(shape, want):
        if need is not None and have > 0 and have != need:
            raise UserError(f"{where}.imgsz", f"{path} takes input {'x'.join(map(str, shape))}, "
                            f"not batch {model.batch} at {model.hw[0]}x{model.hw[1]}")


class TensorRTRunner:
    """One engine, one execution context, one stream; CUDA events around every inference
    (and its H2D / compute / D2H stages when copies are on)."""

    backend = "tensorrt"

    def __init__(self, model):
        o = model.options
        self.transfers = bool(o.get("transfers", True))
        self.graph = bool(o.get("cuda_graph", False))
        self.cuda = _cuda.load(o.get("sync_wait", "auto"))
        trt = trt_module()
        self.logger = CapturingLogger(trt)
        self.runtime = trt.Runtime(self.logger)
        self.engine = deserialize(trt, self.runtime, self.logger, Path(model.engine_path), f"models.{model.name}")
        self.context = self.engine.create_execution_context()
        ins, outs = io_tensors(trt, self.engine)
        self.in_name, in_shape, in_dtype = ins[0]
        shape = [model.batch if (i == 0 and d < 0) else d for i, d in enumerate(in_shape)]
        if any(d < 0 for d in shape):
            shape = [model.batch, 3, model.hw[0], model.hw[1]]
        self.context.set_input_shape(self.in_name, shape)
        self.in_shape, self.in_dtype = tuple(shape), np.dtype(in_dtype)
        self.stream = self.cuda.stream()
        self.outputs = []  # (name, device ptr, pinned host array)
        for name, _, dt in outs:
            oshape = tuple(self.context.get_tensor_shape(name))
            nbytes = int(np.prod(oshape)) * np.dtype(dt).itemsize
            ptr = self.cuda.malloc(nbytes)
            self.context.set_tensor_address(name, ptr)
            host = self.cuda.host_array(oshape, dt) if self.transfers else None
            self.outputs.append((name, ptr, host))
        self.in_ptr = self.cuda.malloc(int(np.prod(self.in_shape)) * self.in_dtype.itemsize)
        self.context.set_tensor_address(self.in_name, self.in_ptr)
        self.n_inputs = 0
        self._inputs: List = []
        self._events: List[tuple] = []
        self._n = 0
        self._stages: Dict[str, List[float]] = {}
        self._graph_exec = None
        self._staging = None
        self.model = model

    # ---------------------------------------------------------------- inputs
    def prepare(self, inputs: Sequence[np.ndarray]) -> None:
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
    def reserve(self, n: int) -> None:
        """Create the CUDA events of ``n`` inferences now (``run_loop`` calls it before
        timing), so that no ``cudaEventCreate`` lands inside a timed iteration."""
        k = 4 if self.transfers else 2
        while len(self._events) < n:
            self._events.append(tuple(self.cuda.event() for _ in range(k)))

    def _next_events(self) -> tuple:
        if self._n == len(self._events):
            self.reserve(self._n + 1)
        ev = self._events[self._n]
        self._n += 1
        return ev

    def infer(self, index: int) -> None:
        self._launch(self._inputs[index] if self.transfers else None, index)

    def run_array(self, x: np.ndarray) -> list:
        """One inference on a new image (the pipeline's call): staged through pinned
        memory, timed like ``infer``; outputs in pinned host arrays after sync."""
        if not self.transfers:
            raise UserError(f"models.{self.model.name}.options.transfers",
                            "the predict pipeline copies each image in and its outputs out: needs transfers: true")
        if self._staging is None:
            self._staging = self.cuda.host_array(self.in_shape, self.in_dtype)
        self._staging[...] = x.reshape(self.in_shape)
        self._launch(self._staging, 0)
        return [host for _, _, host in self.outputs]

    def _launch(self, host_in, index: int) -> None:
        cuda, s = self.cuda, self.stream
        ev = self._next_events()
        cuda.record(ev[0], s)
        if self.transfers:
            cuda.htod(self.in_ptr, host_in, s)
            cuda.record(ev[1], s)
        elif self.n_inputs > 1:
            self.context.set_tensor_address(self.in_name, self._inputs[index])
        if self._graph_exec is not None:
            cuda.launch(self._graph_exec, s)
        else:
            self.context.execute_async_v3(s)
        if self.transfers:
            cuda.record(ev[2], s)
            for _, ptr, host in self.outputs:
                cuda.dtoh(host, ptr, s)
        cuda.record(ev[-1], s)

    def synchronize(self, how: str) -> None:
        if how == "device":
            self.cuda.sync_device()
        elif how == "stream":
            self.cuda.sync_stream(self.stream)

    def gpu_times_ms(self) -> Optional[List[float]]:
        el = self.cuda.elapsed_ms
        evs = self._events[: self._n]
        total = [el(e[0], e[-1]) for e in evs]
        if self.transfers:
            self._stages = {
                "h2d_ms": [el(e[0], e[1]) for e in evs],
                "compute_ms": [el(e[1], e[2]) for e in evs],
                "d2h_ms": [el(e[2], e[3]) for e in evs],
            }
        else:
            self._stages = {"compute_ms": list(total)}
        self._n = 0
        return total

    def stage_times_ms(self) -> Dict[str, List[float]]:
        """Per-stage GPU times of the calls reported by the last ``gpu_times_ms``."""
        out, self._stages = self._stages, {}
        return out

    def describe(self) -> dict:
        e = self.model.engine or {}
        return {"device": "gpu", "providers": f"tensorrt {e.get('trt_version', '')} via {self.cuda.name}",
                "gpu": e.get("gpu", ""), "engine_path": self.model.engine_path,
                "transfers": self.transfers, "cuda_graph": self.graph}

    def close(self) -> None:
        self.context = None
        self.engine = None
        self.cuda.close()


def load(model, **_):
    return TensorRTRunner(model)
