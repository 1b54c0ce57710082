"""Backends behind one seam: each module has a loader (``load(model) -> runner``).

A runner satisfies ``trt_ray_bench.timing.Runner``: ``prepare(inputs)``, ``infer(i)``,
``synchronize(how)``, ``gpu_times_ms()``, ``describe()`` and ``close()``. Adding a backend
means adding one module here and its name to ``spec.BACKENDS``; nothing else changes.
Heavy dependencies are imported inside the module that needs them.
"""

from __future__ import annotations

import importlib

from ..spec import BACKENDS
from ._inputs import load_images, make_inputs

_MODULES = {"onnxruntime": ".onnxruntime", "tensorrt": ".tensorrt", "torch": ".torch"}
assert set(_MODULES) == set(BACKENDS), "spec.BACKENDS and engines._MODULES disagree"


def _module(backend: str):
    return importlib.import_module(_MODULES[backend], __name__)


def check_model(model, where: str = "") -> None:
    """Validate backend options of a ``models.ResolvedModel`` before anything runs;
    errors name the field as ``where`` (e.g. ``models[2]``)."""
    _module(model.backend).check(model, where)


def prepare_model(model, where: str = ""):
    """On the node that will run it (GPU present): build or check what the backend
    needs (a TensorRT engine); returns the model with that recorded."""
    mod = _module(model.backend)
    return mod.prepare(model, where) if hasattr(mod, "prepare") else model


def needs_gpu(model) -> bool:
    """Whether the model's actor should hold a share of the node's GPU."""
    if model.backend == "tensorrt":
        return True
    if model.backend == "torch":
        return model.options.get("device", "auto") != "cpu"
    return "CUDAExecutionProvider" in (model.options.get("providers") or [])


def load_runner(model, **kwargs):
    """Build the runner for a ``models.ResolvedModel`` (in the process that will time it)."""
    return _module(model.backend).load(model, **kwargs)


def backend_versions() -> dict:
    """Versions of the backends' libraries, read without importing them."""
    from importlib import metadata

    out = {}
    for dist in ("onnxruntime", "onnxruntime-gpu", "tensorrt", "torch", "ultralytics"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


__all__ = ["check_model", "load_runner", "needs_gpu", "prepare_model", "make_inputs", "load_images", "backend_versions"]
