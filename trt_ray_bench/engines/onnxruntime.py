"""ONNX Runtime backend: CPU by default, the CUDA execution provider when it is present
(``options.providers`` chooses explicitly). Options: ``providers``, ``threads``
(intra-op threads; default ONNX Runtime's), ``graph_optimization`` (all | extended |
basic | disable), ``calib_images`` (int8: the calibration set).

``precision: fp16 | int8`` runs the model converted by ``models.convert_model`` (a
mixed-precision ONNX with FP32 inputs and outputs, or a Q/DQ ONNX calibrated on
``calib_images``): the same files a strongly typed TensorRT engine is built from, so
backends can be compared at equal precision. The conversion happens in ``prepare``, on
the node, and is cached beside the exports."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..errors import UserError, lazy_import
from ..models import convert_model, onnx_precision
from ..models._inputs import list_images
from ..timing import BaseRunner

_OPT_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC", "disable": "ORT_DISABLE_ALL"}
_KNOWN = {"providers", "threads", "graph_optimization", "calib_images"}

NAME = "onnxruntime"
USES_ONNX = True


def available() -> None:
    lazy_import("onnxruntime", "onnxruntime", "the onnxruntime backend")


def doctor_detail() -> str:
    import onnxruntime as ort

    return f"providers {', '.join(ort.get_available_providers())}"


def needs_gpu(model) -> bool:
    return "CUDAExecutionProvider" in (model.options.get("providers") or [])


def has_build_step(model) -> bool:
    """fp16 / int8 models are converted on the node."""
    return model.precision != "fp32"


def exports_dynamic(spec) -> bool:
    return False


def made_files(model) -> List[str]:
    c = getattr(model, "converted", None)
    return [c["path"], str(Path(c["path"]).with_suffix(".json"))] if c else []


def onnx_to_run(model) -> str:
    """The file the session loads: the converted model where there is one."""
    c = getattr(model, "converted", None)
    return c["path"] if c else model.onnx_path


class OnnxRuntimeRunner(BaseRunner):
    """``session.run`` is synchronous, also on the CUDA provider (outputs return to the
    host), so host time is the latency and there is no separate GPU timer."""

    backend = "onnxruntime"

    def __init__(self, model, providers: Optional[List[str]] = None, threads: Optional[int] = None,
                 graph_optimization: str = "all"):
        import onnxruntime as ort

        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[graph_optimization])
        if threads:
            opts.intra_op_num_threads = int(threads)
        self._sess = ort.InferenceSession(onnx_to_run(model), opts, providers=providers)
        self._input = model.input_name
        self.providers = self._sess.get_providers()
        self._feeds: List[dict] = []
        self.n_inputs = 0

    def prepare(self, inputs: Sequence[np.ndarray]) -> None:
        self._feeds = [{self._input: x} for x in inputs]
        self.n_inputs = len(self._feeds)

    def infer(self, index: int) -> None:
        self._sess.run(None, self._feeds[index])

    def run_array(self, x: np.ndarray) -> list:
        """One inference on a new input, outputs on the host (the pipeline's call)."""
        return self._sess.run(None, {self._input: x})

    def synchronize(self, how: str) -> None:
        pass  # run() has returned with the outputs on the host

    def gpu_times_ms(self):
        return None

    def describe(self) -> dict:
        return {"providers": ",".join(self.providers), "device": "gpu" if "CUDAExecutionProvider" in self.providers else "cpu"}

    def close(self) -> None:
        self._sess = None


def check(model, where: str = "") -> None:
    """Refuse bad options before anything runs (called by the driver's preflight)."""
    import onnxruntime as ort

    where = where or f"models.{model.name}"
    if model.precision == "int8" and not model.options.get("calib_images"):
        if not model.onnx_path or onnx_precision(model.onnx_path) != "int8":
            raise UserError(f"{where}.options.calib_images", "int8 is a Q/DQ model calibrated on images: give "
                            "options.calib_images (a folder of images like the model's input)")
    if model.options.get("calib_images") is not None:  # a folder holding images, refused here rather than on the node
        list_images(str(model.options["calib_images"]), where=f"{where}.options.calib_images")
    where = f"{where}.options"
    opts = model.options
    unknown = set(opts) - _KNOWN
    if unknown:
        raise UserError(where, f"unknown onnxruntime option(s) {sorted(unknown)}; known: {sorted(_KNOWN)}")
    go = opts.get("graph_optimization", "all")
    if go not in _OPT_LEVELS:
        raise UserError(f"{where}.graph_optimization", f"{go!r}, expected one of {list(_OPT_LEVELS)}")
    threads = opts.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"{where}.threads", f"{threads!r}, expected a positive integer")
    providers = opts.get("providers")
    if providers is not None:
        if not isinstance(providers, list) or not all(isinstance(p, str) for p in providers) or not providers:
            raise UserError(f"{where}.providers", f"{providers!r}, expected a list of execution provider names")
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise UserError(f"{where}.providers", f"{', '.join(missing)} not available here (have {', '.join(available)})")


def prepare(model, where: str = ""):
    """On the node: fp16 / int8 become a converted ONNX (cached); fp32 runs as exported."""
    if model.precision == "fp32":
        return model
    converted = convert_model(model.onnx_path, model.precision, hw=model.hw, task=model.task,
                              calib_images=model.options.get("calib_images"),
                              where=where or f"models.{model.name}")
    return dataclasses.replace(model, converted=converted)


def load(model, **_):
    check(model)
    if model.precision != "fp32" and getattr(model, "converted", None) is None:
        model = prepare(model)
    go = model.options.get("graph_optimization", "all")
    return OnnxRuntimeRunner(model, model.options.get("providers"), model.options.get("threads"), go)
