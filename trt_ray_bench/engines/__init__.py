"""Backends behind one seam: one module per backend, each answering for itself.

A backend module (``onnxruntime``, ``tensorrt``, ``torch``) has, at module level:

- ``NAME`` (the spec's backend name) and ``USES_ONNX`` (``resolve_model`` exports or
  checks an ONNX file for it, through ``models.resolve_onnx``);
- ``available()``: raises ``MissingExtra`` / ``BrokenExtra`` where its library cannot be
  imported here;
- ``needs_gpu(model)``: its actor holds a share of the node's GPU;
- ``has_build_step(model)``: ``prepare`` makes files on the node (an engine, a converted
  ONNX) that a sweep makes once per board kind and ships to the others (``made_files``);
- ``exports_dynamic(spec)``: the ONNX is exported with a dynamic batch axis;
- ``check(model, where)`` on the driver, ``prepare(model, where)`` on the node,
  ``load(model) -> runner`` in the process that times it (a ``timing.Runner``).

Adding a backend means adding one module and its name to ``spec.BACKENDS``; nothing
else names backends. Heavy dependencies are imported inside the module that needs them.
"""

from __future__ import annotations

import importlib
from typing import List

from ..control.doctor import WIDTH
from ..errors import UserError
from ..models import ResolvedModel, resolve_onnx
from ..models._inputs import load_images, make_inputs
from ..spec import BACKENDS, ModelSpec
from ._trt_api import kept_out_text
from ._trt_timing_cache import describe as timing_cache_text

assert len(set(BACKENDS)) == len(BACKENDS)


def backend_module(backend: str):
    """The module of ``backend`` (a name of ``spec.BACKENDS``)."""
    if backend not in BACKENDS:
        raise KeyError(backend)
    return importlib.import_module(f".{backend}", __name__)


def require_backend(model, where: str = "") -> None:
    """Refuse, in one line, a model whose backend library cannot be imported here
    (``MissingExtra``: not installed; ``BrokenExtra``: installed but failing)."""
    try:
        backend_module(model.backend).available()
    except UserError as exc:
        raise UserError(f"{where}.backend" if where else exc.where, str(exc)) from None


def check_model(model, where: str = "") -> None:
    """Validate backend options of a ``models.ResolvedModel`` before anything runs;
    errors name the field as ``where`` (e.g. ``models[2]``)."""
    backend_module(model.backend).check(model, where)


def check_on_node(model, where: str = "") -> None:
    """On the node that will run it, what its backend library and device refuse without
    building anything (a TensorRT model's typing, build options, DLA core); a backend
    without such checks has nothing to do here."""
    fn = getattr(backend_module(model.backend), "check_on_node", None)
    if fn is not None:
        fn(model, where)


def prepare_model(model, where: str = ""):
    """On the node that will run it: build or check what the backend needs (a TensorRT
    engine, a converted ONNX); returns the model with that recorded."""
    return backend_module(model.backend).prepare(model, where)


def needs_gpu(model) -> bool:
    """Whether the model's actor should hold a share of the node's GPU."""
    return bool(backend_module(model.backend).needs_gpu(model))


def has_build_step(model) -> bool:
    """Whether ``prepare_model`` makes files on the node (done before the node changes)."""
    return bool(backend_module(model.backend).has_build_step(model))


def uses_onnx(backend: str) -> bool:
    return bool(backend_module(backend).USES_ONNX)


def exports_dynamic(spec) -> bool:
    """Whether a ``spec.ModelSpec``'s ONNX is exported with a dynamic batch axis."""
    return bool(backend_module(spec.backend).exports_dynamic(spec))


def resolve_model(m: ModelSpec, where: str, export: bool = True) -> ResolvedModel:
    """A model spec to a checked model file, as its backend needs it: the ONNX file found
    or exported (with a dynamic batch axis where the backend asks for one) and checked
    against the spec; none for a backend that runs the Ultralytics model itself (torch).
    ``export=False`` (dry run) builds nothing and describes the planned export."""
    mod = backend_module(m.backend)
    return resolve_onnx(m, where, export, uses_onnx=bool(mod.USES_ONNX), dynamic=bool(mod.exports_dynamic(m)))


def made_files(model) -> List[str]:
    """The cache files ``prepare_model`` made for ``model`` (engine, converted ONNX, their
    records), which the other nodes of a board kind can install instead of making."""
    return list(backend_module(model.backend).made_files(model))


def load_runner(model, **kwargs):
    """Build the runner for a ``models.ResolvedModel`` (in the process that will time it)."""
    return backend_module(model.backend).load(model, **kwargs)


#: the backends of the core install (the others are extras: absent is not a problem)
CORE_BACKENDS = ("onnxruntime",)


def backend_lines() -> List[str]:
    """``trb doctor``'s lines of each backend: whether its library imports in this
    interpreter; if not, whether it is missing or installed but broken, with the fix
    (``MissingExtra`` / ``BrokenExtra``); then what the backend adds (``doctor_lines``)."""
    lines = []
    for name in BACKENDS:
        mod = backend_module(name)
        try:
            mod.available()
            detail = getattr(mod, "doctor_detail", None)  # e.g. ONNX Runtime's providers
            text = f"ok ({detail()})" if detail else "ok"
        except UserError as exc:
            if "not installed" not in exc.message:
                text = f"BROKEN: {exc}"
            elif name in CORE_BACKENDS:
                text = f"MISSING: {exc}"
            else:  # an extra this machine may not want: not a problem (trb doctor exits 0 for it)
                text = f"not installed (optional){exc.message[len('not installed'):]}" if exc.message.startswith(
                    "not installed") else f"not installed (optional): {exc.message}"
        except Exception as exc:  # noqa: BLE001 - doctor reports, it does not fail
            text = f"BROKEN: {exc.__class__.__name__}: {exc}"
        lines.append(f"{'backend':<{WIDTH}} {name}: {text}")
        more = getattr(mod, "doctor_lines", None)  # e.g. TensorRT: CUDA binding, runtime, GPUs
        if text.startswith("ok") and more is not None:
            lines.extend(more())
    return lines


def backend_versions() -> dict:
    """Versions of the backends' libraries, read without importing them."""
    from importlib import metadata

    out = {}
    for dist in ("onnxruntime", "onnxruntime-gpu", "tensorrt", "torch", "ultralytics", "onnx", "cuda-python",
                 "pycuda"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


__all__ = ["backend_lines", "backend_module", "check_model", "exports_dynamic", "has_build_step", "load_runner", "made_files",
           "needs_gpu", "prepare_model", "require_backend", "resolve_model", "uses_onnx", "make_inputs", "load_images",
           "backend_versions", "kept_out_text", "timing_cache_text"]
