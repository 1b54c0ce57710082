"""TensorRT engines from ONNX, built once per (ONNX, precision, TensorRT version, GPU,
build options) and cached; engine files checked before they are deserialized.

Works with TensorRT 8.5 (JetPack 5) through 10.x: only the named-tensor API and
``build_serialized_network`` are used."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import UserError, lazy_import
from ..models._resolve import sha256_file


def trt_module():
    return lazy_import("tensorrt", "tensorrt", "the tensorrt backend")


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

    def key(self) -> dict:
        d = asdict(self)
        d.pop("calib_images")  # the cache file, not the folder, determines the scales
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


def engine_cache_dir() -> Path:
    from ..models import cache_dir

    return cache_dir() / "engines"


def check_build_options(opts: BuildOptions, where: str) -> None:
    """Everything that can be refused without a GPU."""
    if opts.precision == "int8":
        if not opts.calib_cache and not opts.calib_images:
            raise UserError(f"{where}.precision", "int8 needs calibration data: options.calib_images (a folder of "
                            "images) and options.calib_cache (a file to keep the scales in)")
        if not opts.calib_cache:
            raise UserError(f"{where}.options.calib_cache", "int8 needs a calibration cache file path")
        if not opts.calib_images and not Path(opts.calib_cache).is_file():
            raise UserError(f"{where}.options.calib_images",
                            f"{opts.calib_cache} does not exist yet: give a folder of images to calibrate with")
        if opts.calib_images and not Path(opts.calib_images).is_dir():
            raise UserError(f"{where}.options.calib_images", f"{opts.calib_images}: not a folder of images")
    if opts.workspace_gb <= 0:
        raise UserError(f"{where}.options.workspace_gb", f"{opts.workspace_gb}: expected a positive size in GB")
    if opts.max_batch is not None and opts.max_batch < opts.batch:
        raise UserError(f"{where}.options.max_batch", f"{opts.max_batch} is below batch {opts.batch}")
    if opts.tactics not in ("default", "none"):
        raise UserError(f"{where}.options.tactics", f"{opts.tactics!r}, expected default or none")


def build_engine(onnx_path: Path, opts: BuildOptions, gpu_name: str, out: Optional[Path] = None,
                 where: str = "model", hw: Optional[Tuple[int, int]] = None) -> EngineInfo:
    """Build (or find in the cache) the engine of ``onnx_path`` for this GPU."""
    trt = trt_module()
    onnx_path = Path(onnx_path)
    onnx_sha = sha256_file(onnx_path)
    calib_sha = sha256_file(Path(opts.calib_cache)) if opts.calib_cache and Path(opts.calib_cache).is_file() else None
    key_src = json.dumps({"onnx": onnx_sha, "trt": trt.__version__, "gpu": gpu_name, "opts": opts.key(),
                          "calib": calib_sha}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    folder = Path(out) if out else engine_cache_dir()
    path = folder / f"{onnx_path.stem}-{opts.precision}-{key}.engine"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        info = EngineInfo(**json.loads(meta.read_text()))
        info.cached = True
        return info

    logger = CapturingLogger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UserError(str(onnx_path), "the TensorRT ONNX parser rejects it: " + " | ".join(errs)[:400])
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gb * (1 << 30)))
    if opts.opt_level is not None:
        if not hasattr(config, "builder_optimization_level"):
            raise UserError(f"{where}.options.opt_level", f"needs TensorRT >= 8.6 (this is {trt.__version__})")
        config.builder_optimization_level = int(opts.opt_level)
    if opts.tactics == "none":
        config.set_tactic_sources(0)
    if opts.precision in ("fp16", "int8"):
        if opts.precision == "fp16" and not builder.platform_has_fast_fp16:
            raise UserError(f"{where}.precision", f"{gpu_name} has no fast FP16")
        config.set_flag(trt.BuilderFlag.FP16)
    calibrator = None
    if opts.precision == "int8":
        if not builder.platform_has_fast_int8:
            raise UserError(f"{where}.precision", f"{gpu_name} has no fast INT8")
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = make_calibrator(trt, network, opts, hw)
        config.int8_calibrator = calibrator
    inp = network.get_input(0)
    shape = list(inp.shape)
    if shape and shape[0] == -1:
        profile = builder.create_optimization_profile()
        rest = [d if d > 0 else (hw[i - 2] if hw and i >= 2 else 1) for i, d in enumerate(shape)][1:]
        mx = opts.max_batch or opts.batch
        profile.set_shape(inp.name, [1] + rest, [opts.batch] + rest, [mx] + rest)
        config.add_optimization_profile(profile)
        if calibrator is not None:
            config.set_calibration_profile(profile)
    t0 = time.perf_counter()
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise UserError(str(onnx_path), "TensorRT could not build an engine: " + " | ".join(logger.errors)[-400:])
    build_s = time.perf_counter() - t0
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(memoryview(blob))
    os.replace(tmp, path)
    info = EngineInfo(path=str(path), trt_version=trt.__version__, gpu=gpu_name, onnx_sha256=onnx_sha,
                      options=opts.key(), build_s=build_s)
    meta.write_text(json.dumps(asdict(info), indent=1))
    return info


def deserialize(trt, runtime, logger, path: Path, where: str):
    """Load an engine file, turning TensorRT's refusals (another version, not an engine)
    into one clear error instead of a crash later. ``logger`` is the runtime's
    ``CapturingLogger``."""
    data = Path(path).read_bytes()
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


def io_tensors(trt, engine) -> Tuple[list, list]:
    ins, outs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        item = (name, list(engine.get_tensor_shape(name)), str(trt.nptype(engine.get_tensor_dtype(name)).__name__))
        (ins if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outs).append(item)
    return ins, outs


def make_calibrator(trt, network, opts: BuildOptions, hw):
    """An entropy calibrator over a folder of images, preprocessed like the model's input."""
    import numpy as np

    from . import _cuda
    from ._inputs import list_images, load_images

    inp = network.get_input(0)
    shape = [d if d > 0 else 1 for d in inp.shape]
    size = hw or (shape[2], shape[3])
    files = list_images(opts.calib_images, where="options.calib_images") if opts.calib_images else []
    cuda = _cuda.load()

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batch = shape[0]
            self.files = files
            self.i = 0
            self.dev = cuda.malloc(int(np.prod([self.batch, 3, size[0], size[1]])) * 4)

        def get_batch_size(self):
            return self.batch

        def get_batch(self, names):
            if self.i + self.batch > len(self.files):
                return None
            x = np.ascontiguousarray(load_images(self.files[self.i:self.i + self.batch], size, None))
            self.i += self.batch
            stream = cuda.stream()
            cuda.htod(self.dev, x, stream)
            cuda.sync_stream(stream)
            return [self.dev]

        def read_calibration_cache(self):
            p = Path(opts.calib_cache)
            return p.read_bytes() if p.is_file() else None

        def write_calibration_cache(self, cache):
            Path(opts.calib_cache).write_bytes(bytes(cache))

    return Calibrator()
