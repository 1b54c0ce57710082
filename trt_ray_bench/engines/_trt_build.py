"""TensorRT engines from ONNX, built once per (ONNX, precision, typing, TensorRT version,
GPU, build options) and cached; engine files checked before they are deserialized.

Works with TensorRT 8.5 (JetPack 5) through 11.x: only the named-tensor API and
``build_serialized_network`` are used, and every call that exists on some versions only
goes through ``_trt_api`` (the version gates, in one place)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .._atomic import write_atomic
from ..control.platform import on_jetson
from ..errors import MissingExtra, UserError, lazy_import
from ..models import cache_dir
from ..models._engine_file import split_ultralytics_header
from ..models._inputs import list_images, load_images
from ..models._resolve import sha256_file
from . import _int8_head, _trt_api, _trt_timing_cache

#: options.convert's values (YAML gives booleans; ``--set`` overrides may give the words)
CONVERT = {"auto": "auto", True: True, False: False, "true": True, "false": False}


#: where TensorRT comes from on a Jetson (``pip install tensorrt`` is not the Jetson build)
JETSON_TRT = ("on a Jetson it comes with JetPack, never from pip: a venv made with --system-site-packages from the "
              "system's python3 sees it (trb doctor says what this Python lacks)")


def trt_module():
    try:
        return lazy_import("tensorrt", "tensorrt", "the tensorrt backend")
    except MissingExtra:
        if not on_jetson():
            raise
        raise MissingExtra("tensorrt", "", "the tensorrt backend", JETSON_TRT) from None


class CapturingLogger:
    """A TensorRT logger that keeps the errors, so they can be reported in one line."""

    def __new__(cls, trt, min_severity=None):
        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: List[str] = []
                self.min = min_severity if min_severity is not None else trt.ILogger.Severity.WARNING

            def log(self, severity, msg):
                if severity <= trt.ILogger.Severity.ERROR:
                    self.errors.append(str(msg).strip())

        return _Logger()


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp32"  # fp32 | fp16 | int8
    workspace_gb: float = 4.0
    opt_level: Optional[int] = None  # builder optimization level (TensorRT >= 8.6)
    max_batch: Optional[int] = None  # dynamic batch: profile (1, batch, max_batch)
    batch: int = 1
    tactics: str = "default"  # default | none (no cuBLAS/cuDNN tactics)
    calib_images: Optional[str] = None
    calib_cache: Optional[str] = None
    #: TensorRT's calibrator: minmax (IInt8MinMaxCalibrator, Ultralytics' exporter's) or
    #: entropy (IInt8EntropyCalibrator2, trtexec's); part of a calibrated engine's key only
    calibrator: str = "minmax"
    #: weak (builder precision flags) | strong (the precision is in the ONNX); None: this
    #: TensorRT's default, resolved where TensorRT is imported
    typing: Optional[str] = None
    #: auto | True | False: whether prepare converts the ONNX (not part of the engine's
    #: identity: the built file's hash is)
    convert: object = "auto"
    #: the precision the ONNX to build already carries (fp32, or fp16 / int8 when converted
    #: or made so by the user); None where it could not be read (the driver without onnx)
    onnx_precision: Optional[str] = "fp32"
    #: the DLA core to build for (None: the GPU), and whether layers the DLA cannot run
    #: may fall back to the GPU
    dla_core: Optional[int] = None
    gpu_fallback: bool = False
    #: TensorRT's timing cache file (``_trt_timing_cache``; None: none): read before the
    #: build, updated after; not part of the engine's identity
    timing_cache: Optional[str] = None

    def calibrates(self) -> bool:
        """Whether the build runs TensorRT's INT8 calibrator: weak int8 from an ONNX without
        Q/DQ nodes (a Q/DQ ONNX carries its scales)."""
        return self.precision == "int8" and self.typing != "strong" and self.onnx_precision != "int8"

    def key(self) -> dict:
        d = asdict(self)
        d.pop("calib_images")  # the cache file (calibrator) or the converted ONNX (Q/DQ) holds the scales
        d.pop("convert")
        d.pop("timing_cache")  # the same engine is wanted with or without it
        if not self.calibrates():
            d.pop("calib_cache")
            d.pop("calibrator")
        else:  # the layers kept out of INT8 make another engine
            d["int8_head"] = _int8_head.HEAD_RULE
        if self.dla_core is None:  # a GPU engine's key as it always was
            d.pop("dla_core")
            d.pop("gpu_fallback")
        return d


@dataclass
class EngineInfo:
    path: str
    trt_version: str
    gpu: str
    onnx_sha256: str
    options: dict
    build_s: float = 0.0
    cached: bool = False
    inputs: List[Tuple[str, List[int], str]] = field(default_factory=list)
    outputs: List[Tuple[str, List[int], str]] = field(default_factory=list)
    #: weak | strong: what the engine was built with
    typing: str = "weak"
    #: the conversion the engine was built from (``models.convert_model``'s record), or None
    converted: Optional[Dict] = None
    #: device memory an execution context needs (``device_memory_size_v2`` where it exists)
    device_memory_bytes: Optional[int] = None
    compute_capability: str = ""
    #: the DLA core it was built for (None: the GPU), and the layers that fell back to the GPU
    dla_core: Optional[int] = None
    gpu_layers: List[str] = field(default_factory=list)
    #: the timing cache the build used (``_trt_timing_cache.Attached.record``: path, whether
    #: it existed, its bytes before and after), or None
    timing_cache: Optional[Dict] = None
    #: INT8 by the calibrator: the head layers kept out of INT8 (``name: fp32|fp16``,
    #: ``_trt_api.keep_head_out_of_int8``)
    int8_kept_out: List[str] = field(default_factory=list)


def engine_cache_dir() -> Path:
    return cache_dir() / "engines"


def _check_typing_options(opts: BuildOptions, where: str) -> None:
    if opts.typing not in (None,) + _trt_api.TYPINGS:
        raise UserError(f"{where}.options.typing", f"{opts.typing!r}, expected weak or strong")
    if not isinstance(opts.convert, (str, bool)) or opts.convert not in CONVERT:
        raise UserError(f"{where}.options.convert", f"{opts.convert!r}, expected auto, true or false")


def converts(opts: BuildOptions) -> bool:
    """Whether ``prepare`` converts the ONNX to ``opts.precision`` first (the contract's
    ``convert``): true converts (the 8.x route to an engine from a Q/DQ or mixed-precision
    ONNX), auto converts for strong typing; never where the ONNX already carries it."""
    convert = CONVERT[opts.convert]
    if opts.precision == "fp32" or opts.onnx_precision == opts.precision:
        return False
    return convert is True or (convert == "auto" and opts.typing == "strong")


#: ``options.calibrator``: the TensorRT class each name builds on
CALIBRATORS = {"minmax": "IInt8MinMaxCalibrator", "entropy": "IInt8EntropyCalibrator2"}
#: the algorithm a TensorRT calibration cache names in its first line (``TRT-8601-MinMaxCalibration``)
_CACHE_ALGORITHMS = {"MinMaxCalibration": "minmax", "EntropyCalibration2": "entropy",
                     "EntropyCalibration": "IInt8EntropyCalibrator", "LegacyCalibration": "IInt8LegacyCalibrator"}


def cache_calibrator(path: str) -> Optional[str]:
    """The calibrator whose scales a calibration cache file holds (``minmax``, ``entropy``, or
    the class of another TensorRT calibrator), from its first line; None where the file is
    absent or its first line names none."""
    try:
        with open(path, "rb") as f:
            first = f.readline(200).decode("ascii", "replace").strip()
    except OSError:
        return None
    parts = first.split("-", 2)
    return _CACHE_ALGORITHMS.get(parts[2]) if len(parts) == 3 and parts[0] == "TRT" else None


def _check_calibration(opts: BuildOptions, where: str) -> None:
    """int8's data: a folder of images for a Q/DQ conversion; images and/or a cache file
    for TensorRT's calibrator (weak typing); nothing for an ONNX that has Q/DQ nodes."""
    if opts.calib_images:  # a folder holding images, refused on the driver rather than on the node
        list_images(opts.calib_images, where=f"{where}.options.calib_images")
    if not isinstance(opts.calibrator, str) or opts.calibrator not in CALIBRATORS:
        raise UserError(f"{where}.options.calibrator", f"{opts.calibrator!r}, expected {' or '.join(CALIBRATORS)}")
    if opts.precision != "int8" or opts.onnx_precision == "int8":
        return
    if converts(opts):
        if not opts.calib_images:
            raise UserError(f"{where}.options.calib_images", "int8 by conversion (Q/DQ nodes) is calibrated on a "
                            "folder of images like the model's input")
        return
    if opts.typing == "strong":
        if opts.onnx_precision is not None:  # known to have no Q/DQ nodes
            raise UserError(f"{where}.options.convert", "false builds the ONNX as given, and it has no Q/DQ nodes: "
                            "a strongly typed int8 engine needs them (convert: auto)")
        return
    # TensorRT's calibrator: weak typing, the default below TensorRT 11
    if not opts.calib_cache and not opts.calib_images:
        raise UserError(f"{where}.precision", "int8 needs calibration data: options.calib_images (a folder of "
                        "images) and options.calib_cache (a file to keep the scales in)")
    if not opts.calib_cache and opts.typing is None:
        return  # the node's TensorRT decides: 11.x converts (images only), below it the calibrator asks there
    if not opts.calib_cache:
        raise UserError(f"{where}.options.calib_cache", "int8 needs a calibration cache file path for TensorRT's "
                        "calibrator (typing: weak); a Q/DQ conversion (convert: true) needs calib_images only")
    if not opts.calib_images and not Path(opts.calib_cache).is_file():
        raise UserError(f"{where}.options.calib_images",
                        f"{opts.calib_cache} does not exist yet: give a folder of images to calibrate with")
    held = cache_calibrator(opts.calib_cache)
    if held is not None and held != opts.calibrator:
        # TensorRT would calibrate again and the new scales would overwrite the file (trtexec's, say)
        use = f"give calibrator: {held} to use them, or" if held in CALIBRATORS else "trt_ray_bench builds with none " \
            f"of that kind ({' or '.join(CALIBRATORS)}): give"
        raise UserError(f"{where}.options.calib_cache", f"{opts.calib_cache} holds the {held} calibrator's scales, "
                        f"and options.calibrator is {opts.calibrator}: {use} another calib_cache")


def check_dla_options(opts: BuildOptions, where: str) -> None:
    """dla_core and gpu_fallback, without TensorRT: a core number, a boolean, DLA's precisions."""
    core = opts.dla_core
    if core is not None and (isinstance(core, bool) or not isinstance(core, int) or core < 0):
        raise UserError(f"{where}.options.dla_core", f"{core!r}, expected a DLA core number (0 or 1)")
    if not isinstance(opts.gpu_fallback, bool):
        raise UserError(f"{where}.options.gpu_fallback", f"{opts.gpu_fallback!r}, expected true or false")
    if opts.gpu_fallback and core is None:
        raise UserError(f"{where}.options.gpu_fallback", "true needs options.dla_core: it lets the layers a DLA "
                        "cannot run fall back to the GPU")
    if core is not None and opts.precision == "fp32":
        raise UserError(f"{where}.options.dla_core", f"{core}: a DLA runs FP16 or INT8 only, this model is fp32 "
                        "(precision: fp16 or int8)")


def check_dla(trt, opts: BuildOptions, gpu_name: str, where: str, count: Optional[int] = None) -> None:
    """Refuse, in one line, a DLA core this machine's TensorRT has not (every desktop GPU:
    ``num_DLA_cores`` is 0). ``count``: the cores already asked of TensorRT."""
    if opts.dla_core is None:
        return
    n = _trt_api.dla_cores(trt, CapturingLogger(trt)) if count is None else count
    if opts.dla_core >= n:
        has = "has no DLA (TensorRT's builder counts 0 DLA cores; Jetson AGX Xavier, Xavier NX and AGX Orin have 2)" \
            if n == 0 else f"has DLA cores 0 to {n - 1} only"
        raise UserError(f"{where}.options.dla_core", f"{opts.dla_core}: {gpu_name} {has}")


def check_build_options(opts: BuildOptions, where: str) -> None:
    """Everything that can be refused without TensorRT or a GPU."""
    _check_typing_options(opts, where)
    check_dla_options(opts, where)
    _trt_timing_cache.check(opts.timing_cache, where)
    if opts.precision in ("fp16", "int8") and opts.typing == "strong" and opts.onnx_precision == "fp32" \
            and CONVERT[opts.convert] is False:
        raise UserError(f"{where}.options.convert", f"false builds the ONNX as given, which carries fp32: a strongly "
                        f"typed engine from it is fp32, not {opts.precision} (convert: auto)")
    _check_calibration(opts, where)
    if opts.workspace_gb <= 0:
        raise UserError(f"{where}.options.workspace_gb", f"{opts.workspace_gb}: expected a positive size in GB")
    if opts.max_batch is not None and opts.max_batch < opts.batch:
        raise UserError(f"{where}.options.max_batch", f"{opts.max_batch} is below batch {opts.batch}")
    if opts.tactics not in ("default", "none"):
        raise UserError(f"{where}.options.tactics", f"{opts.tactics!r}, expected default or none")


def resolve_typing(trt, opts: BuildOptions, where: str) -> BuildOptions:
    """``opts`` with the typing this TensorRT builds with (its default where none was
    asked); refused in one line where this version does not have it."""
    typing = opts.typing or _trt_api.default_typing(trt)
    _trt_api.check_typing(trt, typing, where)
    return replace(opts, typing=typing)


def _check_gpu_precision(precision: str, cc: Optional[Tuple[int, int]], gpu_name: str, where: str) -> None:
    problem = _trt_api.precision_problem(cc, precision) if cc else None
    if problem:
        raise UserError(f"{where}.precision", f"{gpu_name} ({problem})")


def _cache_path(onnx_path: Path, onnx_sha: str, opts: BuildOptions, trt, gpu_name: str, out) -> Path:
    calib_sha = (sha256_file(Path(opts.calib_cache))
                 if opts.calibrates() and opts.calib_cache and Path(opts.calib_cache).is_file() else None)
    key_src = json.dumps({"onnx": onnx_sha, "trt": trt.__version__, "gpu": gpu_name, "opts": opts.key(),
                          "calib": calib_sha}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    folder = Path(out) if out else engine_cache_dir()
    return folder / f"{onnx_path.stem}-{opts.precision}-{key}.engine"


def build_engine(onnx_path: Path, opts: BuildOptions, gpu_name: str, out: Optional[Path] = None,
                 where: str = "model", hw: Optional[Tuple[int, int]] = None,
                 cc: Optional[Tuple[int, int]] = None, converted: Optional[Dict] = None,
                 task: Optional[str] = None) -> EngineInfo:
    """Build (or find in the cache) the engine of ``onnx_path`` for this GPU. With a
    conversion, ``onnx_path`` is the converted file and ``converted`` its record;
    ``cc`` (the GPU's compute capability) refuses a precision it has no fast kernels for."""
    trt = trt_module()
    onnx_path = Path(onnx_path)
    opts = resolve_typing(trt, opts, where)
    check_build_options(opts, where)
    _check_gpu_precision(opts.precision, cc, gpu_name, where)
    check_dla(trt, opts, gpu_name, where)
    onnx_sha = sha256_file(onnx_path)
    path = _cache_path(onnx_path, onnx_sha, opts, trt, gpu_name, out)
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        info = EngineInfo(**json.loads(meta.read_text()))
        info.cached = True
        return info

    logger = CapturingLogger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(_trt_api.network_flags(trt, opts.typing))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UserError(str(onnx_path), "the TensorRT ONNX parser rejects it: " + " | ".join(errs)[:400])
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gb * (1 << 30)))
    _trt_api.set_opt_level(trt, config, opts.opt_level, where)
    if opts.tactics == "none":
        config.set_tactic_sources(0)  # an int: TacticSource's cuBLAS/cuDNN names are gone in 11.x
    if opts.typing == "weak":
        _trt_api.set_precision_flags(trt, config, opts.precision)
    # before the DLA's layer check: a layer kept in FP32 is one the DLA cannot run
    kept_out = _trt_api.keep_head_out_of_int8(trt, network, config) if opts.calibrates() else []
    on_gpu: List[str] = []
    if opts.dla_core is not None:
        _trt_api.set_dla(trt, config, opts.dla_core, opts.gpu_fallback)
        on_gpu = _trt_api.gpu_layers(config, network)
        if on_gpu and not opts.gpu_fallback:
            raise UserError(f"{where}.options.gpu_fallback", f"false, but {len(on_gpu)} of {network.num_layers} "
                            f"layers cannot run on DLA core {opts.dla_core} ({', '.join(on_gpu[:3])}"
                            f"{', ...' if len(on_gpu) > 3 else ''}): gpu_fallback: true runs them on the GPU")
    # a timing cache this TensorRT refuses is refused now, before the build's long part
    timing = _trt_timing_cache.attach(config, opts.timing_cache, logger, where, f"TensorRT {trt.__version__} on "
                                      f"{gpu_name}")
    calibrator = None
    if opts.calibrates():
        calibrator = make_calibrator(trt, network, opts, hw, task)
        config.int8_calibrator = calibrator
    _add_profile(trt, builder, network, config, opts, hw, calibrator is not None)
    from .. import progress

    t0 = time.perf_counter()
    on = "" if opts.dla_core is None else f", DLA core {opts.dla_core}"
    with progress.spinner(f"engine   {onnx_path.name}: TensorRT {trt.__version__} builds it ({opts.precision}, "
                          f"{opts.typing} typing{on})") as spin:
        monitor = _trt_api.attach_progress(trt, config, spin.note)  # noqa: F841 - kept alive for the build
        blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise UserError(str(onnx_path), "TensorRT could not build an engine: " + " | ".join(logger.errors)[-400:])
    build_s = time.perf_counter() - t0
    facts = engine_facts(trt, trt.Runtime(logger), blob, str(onnx_path))  # before writing: a refusal leaves no file
    if calibrator is not None and opts.calib_cache:
        # the calibrator has just written the cache (it was not there: the key had no scales);
        # the next run finds the file and keys by it, so the engine is stored under that key
        path = _cache_path(onnx_path, onnx_sha, opts, trt, gpu_name, out)
        meta = path.with_suffix(".json")
    # the timing cache is written before the engine's record names it; a cache that cannot
    # be written does not lose the engine: it is kept, and the error raised after
    timing_record, timing_error = None, None
    if timing is not None:
        try:
            timing_record = _trt_timing_cache.save(config, timing, where)
        except UserError as exc:
            timing_error = exc
    write_atomic(path, blob)
    info = EngineInfo(path=str(path), trt_version=trt.__version__, gpu=gpu_name, onnx_sha256=onnx_sha,
                      options=opts.key(), build_s=build_s, typing=opts.typing, converted=converted,
                      compute_capability=f"{cc[0]}.{cc[1]}" if cc else "", dla_core=opts.dla_core,
                      gpu_layers=on_gpu, timing_cache=timing_record, int8_kept_out=kept_out, **facts)
    write_atomic(meta, json.dumps(asdict(info), indent=1).encode())
    if timing_error is not None:
        raise timing_error
    return info


def _add_profile(trt, builder, network, config, opts: BuildOptions, hw, calibrating: bool) -> None:
    """A dynamic batch axis gets the profile (1, batch, max_batch)."""
    inp = network.get_input(0)
    shape = list(inp.shape)
    if not shape or shape[0] != -1:
        return
    profile = builder.create_optimization_profile()
    rest = [d if d > 0 else (hw[i - 2] if hw and i >= 2 else 1) for i, d in enumerate(shape)][1:]
    mx = opts.max_batch or opts.batch
    profile.set_shape(inp.name, [1] + rest, [opts.batch] + rest, [mx] + rest)
    config.add_optimization_profile(profile)
    if calibrating:
        _trt_api.set_calibration_profile(trt, config, profile)


def engine_facts(trt, runtime, data, where: str = "engine") -> dict:
    """Inputs, outputs and device memory of a serialized engine (deserialized once: this
    also proves the engine just built loads)."""
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        return {}
    ins, outs = io_tensors(trt, engine, where)
    return {"inputs": ins, "outputs": outs, "device_memory_bytes": _trt_api.engine_device_memory(engine)}


def deserialize(trt, runtime, logger, path: Path, where: str):
    """Load an engine file, turning TensorRT's refusals (another version, not an engine)
    into one clear error instead of a crash later. ``logger`` is the runtime's
    ``CapturingLogger``. An Ultralytics ``.engine`` (metadata before the engine) loads too."""
    _, data = split_ultralytics_header(Path(path).read_bytes())
    meta = Path(path).with_suffix(".json")
    if meta.is_file():
        built = json.loads(meta.read_text()).get("trt_version")
        if built and built != trt.__version__:
            raise UserError(where, f"{path} was built by TensorRT {built}; this is {trt.__version__}: rebuild it")
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        msg = " | ".join(logger.errors)[-300:]
        raise UserError(where, f"{path} is not an engine this TensorRT {trt.__version__} can load"
                        + (f" ({msg})" if msg else ""))
    return engine


def io_tensors(trt, engine, where: str = "engine") -> Tuple[list, list]:
    """(inputs, outputs): each (name, shape with -1 for dynamic axes, numpy dtype name);
    ``where`` names the model in the error a tensor type numpy has not gets."""
    ins, outs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dtype = _trt_api.numpy_dtype_name(trt, engine.get_tensor_dtype(name), name, where)
        item = (name, list(engine.get_tensor_shape(name)), dtype)
        (ins if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outs).append(item)
    return ins, outs


def make_calibrator(trt, network, opts: BuildOptions, hw, task: Optional[str] = None):
    """TensorRT's calibrator (``opts.calibrator``: min-max by default, as Ultralytics'
    exporter; entropy, as trtexec) over a folder of images, preprocessed like the model's
    input. Min-max keeps each tensor's largest value: a detector's class scores live in a
    few large activations, which the entropy calibrator's clipping can round away. Weak
    typing only: TensorRT 11 has no calibrators (``_trt_api.check_typing`` refuses weak
    typing there before this is reached)."""
    import numpy as np

    from . import _cuda

    inp = network.get_input(0)
    shape = [d if d > 0 else 1 for d in inp.shape]
    size = hw if hw and hw[0] > 0 else (shape[2], shape[3])
    files = list_images(opts.calib_images, where="options.calib_images") if opts.calib_images else []
    cuda = _cuda.load()

    base = getattr(trt, CALIBRATORS[opts.calibrator])

    class Calibrator(base):
        def __init__(self):
            base.__init__(self)
            self.batch = shape[0]
            self.files = files
            self.i = 0
            self.dev = cuda.malloc(int(np.prod([self.batch, 3, size[0], size[1]])) * 4)
            self.stream = cuda.stream()

        def get_batch_size(self):
            return self.batch

        def get_batch(self, names):
            if self.i + self.batch > len(self.files):
                return None
            cuda.bind()  # TensorRT calls back on its builder's thread
            x = np.ascontiguousarray(load_images(self.files[self.i:self.i + self.batch], size, task))
            self.i += self.batch
            cuda.htod(self.dev, x, self.stream)
            cuda.sync_stream(self.stream)
            return [self.dev]

        def read_calibration_cache(self):
            p = Path(opts.calib_cache)
            return p.read_bytes() if p.is_file() else None

        def write_calibration_cache(self, cache):
            Path(opts.calib_cache).write_bytes(bytes(cache))

    return Calibrator()
