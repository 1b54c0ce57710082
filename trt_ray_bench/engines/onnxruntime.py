"""ONNX Runtime backend: CPU by default, the CUDA execution provider when it is present
(``options.providers`` chooses explicitly). Options: ``providers``, ``threads``
(intra-op threads; default ONNX Runtime's), ``graph_optimization`` (all | extended |
basic | disable)."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..errors import UserError

_OPT_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC", "disable": "ORT_DISABLE_ALL"}
_KNOWN = {"providers", "threads", "graph_optimization"}


class OnnxRuntimeRunner:
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
        self._sess = ort.InferenceSession(model.onnx_path, opts, providers=providers)
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
    if model.precision != "fp32":
        raise UserError(f"{where}.precision", "onnxruntime runs the ONNX file as exported (fp32); use tensorrt for fp16/int8")
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


def load(model, **_):
    check(model)
    go = model.options.get("graph_optimization", "all")
    return OnnxRuntimeRunner(model, model.options.get("providers"), model.options.get("threads"), go)
