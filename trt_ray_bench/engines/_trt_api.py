"""Which TensorRT call to make on which TensorRT version, in one place.

The builder and runner support TensorRT 8.5 (JetPack 5) to 11.x (``pip install
tensorrt``). What differs (tests/engines/data/README.md has the whole table):

- weak typing (``BuilderFlag.FP16`` / ``INT8``, ``int8_calibrator``) exists up to 10.x
  and was removed in 11.0; strongly typed networks exist from 10.0 (the flag
  ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``) and are the only kind in 11.x, where
  that flag is deprecated and ignored, so nothing is passed there;
- ``EXPLICIT_BATCH`` is required below 10, ignored in 10.x and gone in 11.x;
- ``builder_optimization_level`` exists from 8.6;
- ``device_memory_size_v2`` exists from 10.1, ``device_memory_size`` until 10.x;
- ``platform_has_fast_fp16`` / ``_int8`` are gone in 11.x: the compute capability,
  asked of CUDA, answers instead (``precision_problem``);
- DLA (Jetson Xavier and Orin): ``Builder.num_DLA_cores``, ``IBuilderConfig.default_device_type``
  / ``DLA_core`` / ``can_run_on_DLA``, ``BuilderFlag.GPU_FALLBACK`` and ``Runtime.DLA_core``
  exist in every version from 8.5 (a desktop GPU's builder counts 0 cores).

Nothing here imports TensorRT: the functions take the module (or its objects).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from ..errors import UserError
from . import _int8_head

TYPINGS = ("weak", "strong")
#: the TensorRT major version from which each typing exists / up to which it exists
STRONG_FROM, WEAK_BEFORE = 10, 11
#: the build's progress callbacks (``IProgressMonitor``, ``config.progress_monitor``) exist from 10.0
PROGRESS_FROM = 10


def version_tuple(trt) -> Tuple[int, int]:
    """(major, minor) of a TensorRT module."""
    parts = (str(trt.__version__).split(".") + ["0"])[:2]
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


def default_typing(trt) -> str:
    """weak below TensorRT 11 (what engines were always built with), strong from 11 (the
    only kind there)."""
    return "strong" if version_tuple(trt)[0] >= WEAK_BEFORE else "weak"


def check_typing(trt, typing: str, where: str) -> None:
    """Refuse, in one line, a typing this TensorRT does not have."""
    major = version_tuple(trt)[0]
    if typing == "weak" and major >= WEAK_BEFORE:
        raise UserError(f"{where}.options.typing",
                        f"weak: TensorRT {trt.__version__} has no weak typing (11.0 removed the builder precision "
                        "flags and INT8 calibrators); use typing: strong (the precision is converted into the ONNX)")
    if typing == "strong" and major < STRONG_FROM:
        raise UserError(f"{where}.options.typing",
                        f"strong: TensorRT {major}.x has no strongly typed networks (10.0+); "
                        "use typing: weak with convert: true")


def network_flags(trt, typing: str) -> int:
    """``create_network``'s flags: explicit batch below 10 (required there, ignored in
    10.x, gone in 11.x); strongly typed on 10.x when asked (11.x networks are always
    strongly typed and its flag is deprecated)."""
    major = version_tuple(trt)[0]
    if major < STRONG_FROM:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if typing == "strong" and major < WEAK_BEFORE:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def set_precision_flags(trt, config, precision: str) -> None:
    """Weak typing: let the builder pick fp16 (and int8) kernels. Only reached where weak
    typing exists (``check_typing`` first)."""
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 engines fall back to fp16, not fp32, where int8 has no kernel
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)


def keep_head_out_of_int8(trt, network, config) -> List[str]:
    """INT8 by the calibrator (weak typing) on an Ultralytics network: the layers
    ``_int8_head.head_rule`` picks run in FP32 or FP16 (precision and output types), under
    ``OBEY_PRECISION_CONSTRAINTS`` (every version from 8.2 has it). The layers constrained,
    each ``name: fp32|fp16``; none on a network without ``/model.N/`` layer names."""
    layers, views = [], []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        kind = ("constant" if layer.type == trt.LayerType.CONSTANT else
                "convolution" if layer.type == trt.LayerType.CONVOLUTION else
                "sigmoid" if layer.type == trt.LayerType.ACTIVATION and "sigmoid" in layer.name.lower() else "other")
        layers.append(layer)
        views.append(_int8_head.Layer(layer.name, kind, bool(outputs) and all(t.dtype == trt.DataType.FLOAT
                                                                              for t in outputs),
                                      any(t.is_network_output for t in outputs)))
    rule = _int8_head.head_rule(views)
    for layer in layers:
        word = rule.get(layer.name)
        if word is None:
            continue
        dtype = trt.DataType.FLOAT if word == "fp32" else trt.DataType.HALF
        layer.precision = dtype
        for j in range(layer.num_outputs):
            layer.set_output_type(j, dtype)
    if rule:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return [f"{name}: {word}" for name, word in rule.items()]


def kept_out_text(kept: Optional[List[str]]) -> str:
    """The engine line's words for ``keep_head_out_of_int8``'s layers ("" for none)."""
    if not kept:
        return ""
    fp32 = sum(k.endswith(": fp32") for k in kept)
    return f", {len(kept)} head layer(s) kept out of INT8 ({fp32} in FP32, {len(kept) - fp32} in FP16)"


def set_opt_level(trt, config, level: Optional[int], where: str) -> None:
    """The builder optimization level (8.6+); refused in one line below."""
    if level is None:
        return
    if not hasattr(config, "builder_optimization_level"):
        raise UserError(f"{where}.options.opt_level", f"needs TensorRT >= 8.6 (this is {trt.__version__})")
    config.builder_optimization_level = int(level)


def set_calibration_profile(trt, config, profile) -> None:
    """The shapes the calibrator sees on a dynamic network: needed below 10; deprecated
    in 10.1 (the builder calibrates with the first profile) and, by Ultralytics'
    exporter's experience, a cause of internal errors on 10.x, so not called there."""
    if version_tuple(trt)[0] < STRONG_FROM:
        config.set_calibration_profile(profile)


#: numpy's name for each TensorRT ``DataType`` with a numpy type (BF16, FP8, INT4 have none)
_NUMPY_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
                 "BOOL": "bool", "UINT8": "uint8"}


def numpy_dtype_name(trt, dtype, tensor: str, where: str) -> str:
    """numpy's name of a TensorRT ``DataType`` (``float32`` for ``FLOAT``); a type numpy has
    not is refused in one line naming ``tensor``. Not through ``trt.nptype``: TensorRT 8.5's
    maps BOOL to ``np.bool``, which numpy 1.24 to 1.26 lack, in a dict built on each call, so
    there it fails for every type."""
    for name, np_name in _NUMPY_DTYPES.items():
        member = getattr(trt.DataType, name, None)  # each version has its own members
        if member is not None and dtype == member:
            return np_name
    label = next((n for n in dir(trt.DataType) if n.isupper() and getattr(trt.DataType, n) == dtype), str(dtype))
    raise UserError(where, f"the engine's tensor {tensor} is of type {label}, which numpy has not: "
                    "give the model float, half or integer inputs and outputs")


def engine_device_memory(engine) -> Optional[int]:
    """Bytes of device memory an execution context of ``engine`` needs: ``_v2`` (10.1+,
    includes weight-streaming scratch) where it exists, else the old property (gone in 11)."""
    for name in ("device_memory_size_v2", "device_memory_size"):
        if hasattr(engine, name):
            return int(getattr(engine, name))
    return None


def precision_problem(cc: Tuple[int, int], precision: str) -> Optional[str]:
    """Why a GPU of compute capability ``cc`` has no fast ``precision``, or None. What
    ``Builder.platform_has_fast_fp16/int8`` answered before 11.x removed them: fast FP16
    from sm 5.3 (Jetson TX1/Nano) except sm 6.1 (GeForce Pascal); INT8 (DP4A / tensor
    cores) on sm 6.1 and from sm 7.0, not on sm 6.0 nor 6.2 (P100, Jetson TX2)."""
    cc = tuple(cc)
    if precision == "fp16" and (cc < (5, 3) or cc == (6, 1)):
        return f"sm {cc[0]}.{cc[1]} has no fast FP16"
    if precision == "int8" and not (cc == (6, 1) or cc >= (7, 0)):
        return f"sm {cc[0]}.{cc[1]} has no fast INT8"
    return None


def attach_progress(trt, config, note: Callable[[str], None]):
    """From TensorRT 10: a progress monitor on ``config`` that tells ``note`` the phases
    the build is in and their steps (``Building engine 2/5 > Tactic selection 14/60``).
    Below 10 (no ``IProgressMonitor``) nothing is attached and None returned: the
    caller's spinner shows the time elapsed only. The monitor is returned because it
    must outlive the build (TensorRT holds no reference to the Python object)."""
    if version_tuple(trt)[0] < PROGRESS_FROM or not hasattr(trt, "IProgressMonitor") \
            or not hasattr(config, "progress_monitor"):
        return None

    class _Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.phases: dict = {}  # name -> [steps done, steps], in the order they started

        def _tell(self) -> None:
            try:
                note(" > ".join(f"{name} {done}/{total}" for name, (done, total) in self.phases.items()))
            except Exception:  # noqa: BLE001 - a display must never fail a build
                pass

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.phases[str(phase_name)] = [0, int(num_steps)]
            self._tell()

        def step_complete(self, phase_name, step):
            if str(phase_name) in self.phases:
                self.phases[str(phase_name)][0] = int(step) + 1
                self._tell()
            return True  # go on (False would cancel the build)

        def phase_finish(self, phase_name):
            self.phases.pop(str(phase_name), None)
            self._tell()

    monitor = _Monitor()
    config.progress_monitor = monitor
    return monitor


def dla_cores(trt, logger) -> int:
    """How many DLA cores this machine's TensorRT builder can use (0 on every desktop GPU)."""
    return int(trt.Builder(logger).num_DLA_cores)


def set_dla(trt, config, core: int, gpu_fallback: bool) -> None:
    """Build for DLA core ``core`` (trtexec's ``--useDLACore``); ``gpu_fallback``: layers
    the DLA cannot run go to the GPU (``--allowGPUFallback``) instead of failing the build."""
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(core)
    if gpu_fallback:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def gpu_layers(config, network) -> List[str]:
    """The names of the layers of ``network`` that ``config`` (set for DLA, its precision
    flags set) cannot place on the DLA: the ones that run on the GPU with fallback."""
    out = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not config.can_run_on_DLA(layer):
            out.append(str(layer.name))
    return out
