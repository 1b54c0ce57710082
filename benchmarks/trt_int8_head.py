"""INT8 by TensorRT's calibrator on one Ultralytics detector, with its head kept out of INT8
as trt_ray_bench does, as Ultralytics' exporter does, and not at all: how close the class
scores stay to the float model's, the GPU p50, and which layers the engine runs in INT8.

    python benchmarks/trt_int8_head.py [--model yolov8n:320 | --onnx FILE] [--work DIR]
        [--variants rule-minmax,rule-entropy,ultralytics-minmax,none-minmax]

Each variant is HEAD-CALIBRATOR, built by the framework (``prepare_model``, weak typing,
``tactics: none``, optimization level 0 from TensorRT 8.6) in a process of its own with its
own engine cache:

  HEAD  rule         ``engines._int8_head.head_rule`` (what calibrated builds do)
        ultralytics  the part of it Ultralytics' exporter applies: the head's Sigmoid layers
                     in FP32, its output and DFL convolutions in FP16
        none         every layer free to run INT8
  CALIBRATOR  ``options.calibrator``: minmax (IInt8MinMaxCalibrator, the default, as
              Ultralytics' exporter) or entropy (IInt8EntropyCalibrator2, trtexec's)

The model is the export with LSUV-rescaled weights (``models._convert.lsuv_weights``), so
that its outputs depend on the image; calibrated on 64 generated images, compared on 8
others against the float ONNX on ONNX Runtime's CPU (cosine of the whole output and of the
class scores, channels 4 on). The engines are built with detailed profiling verbosity so
that TensorRT's engine inspector can say each layer's output type: the last two columns
count the engine's layers (and the head's) by it; their JSON is kept in the work folder.
The ``ultralytics`` and ``none`` heads are not options of the framework: this script
substitutes them for the comparison. On an NVIDIA H100 (TensorRT 8.6.0, 2026-12-07) the
inspector showed the rule's layers in FP32 and FP16 as asked and the head's convolution
branches in INT8; the rule-entropy engine of the GPU test lost the class scores (cosine
0.027), which is why the default calibrator is min-max. With min-max, TensorRT 8.5.3.1 kept
them (an H100, 2026-12-07: 0.973 in ``benchmarks/trt_precision.py``'s calibrator row).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VARIANTS = ("rule-minmax", "rule-entropy", "ultralytics-minmax", "none-minmax")


def _kind(layer: dict) -> str:
    fmt = " ".join(o.get("Format/Datatype", "") for o in layer.get("Outputs", []))
    return "int8" if "Int8" in fmt else "fp16" if ("FP16" in fmt or "Half" in fmt) else \
        "fp32" if ("FP32" in fmt or "Float" in fmt) else "other"


def one(onnx: str, work: Path, variant: str) -> None:
    """One variant, in this process: build, compare, time, inspect; prints its table row."""
    import tensorrt as trt

    from trt_ray_bench.engines import _int8_head, _trt_api, prepare_model, resolve_model
    from trt_ray_bench.models._inputs import list_images, load_images
    from trt_ray_bench.spec import ModelSpec

    sys.path.insert(0, str(HERE))
    from trt_precision import agreement, gpu_p50, outputs

    head, calibrator = variant.split("-")
    if head == "none":
        _int8_head.head_rule = lambda layers: {}
    elif head == "ultralytics":
        rule = _int8_head.head_rule
        _int8_head.head_rule = lambda layers: rule(layers, ultralytics_only=True)
    set_opt_level = _trt_api.set_opt_level

    def detailed(trt_, config, level, where):  # called on every build's config: the inspector's verbosity
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        return set_opt_level(trt_, config, level, where)
    _trt_api.set_opt_level = detailed
    opts = {"tactics": "none", "typing": "weak", "convert": False, "calib_images": str(work / "calib"),
            "calib_cache": str(work / f"{variant}.cache"), "calibrator": calibrator}
    if tuple(int(v) for v in trt.__version__.split(".")[:2]) >= (8, 6):
        opts["opt_level"] = 0
    m = prepare_model(resolve_model(ModelSpec(path=onnx, backend="tensorrt", precision="int8", options=opts), "m"),
                      "m")
    x = load_images(list_images(str(work / "eval")), m.hw, m.task)
    ref, y = np.load(work / "reference.npy"), outputs(m, x)
    whole, scores = agreement(ref, y), agreement(ref[:, 4:], y[:, 4:])
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(Path(m.engine_path).read_bytes())
    info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON),
                      strict=False)  # layer names may hold control characters
    (work / f"{variant}.layers.json").write_text(json.dumps(info, indent=1))
    layers = [x for x in info.get("Layers", []) if isinstance(x, dict)]
    every = Counter(_kind(x) for x in layers)
    modules = [int(n) for x in layers for n in re.findall(r"/model\.(\d+)/", x.get("Name", ""))]
    prefix = f"/model.{max(modules)}/" if modules else "(none)"
    in_head = Counter(_kind(x) for x in layers if prefix in x.get("Name", ""))
    p50 = gpu_p50(m, int(os.environ.get("INT8HEAD_ITERS", "1000")), 200)
    kept = len(m.engine.get("int8_kept_out") or [])

    def counts(c):
        return ", ".join(f"{k} {c[k]}" for k in ("int8", "fp16", "fp32", "other") if c[k])
    print(f"| {variant} | {kept} | {m.engine.get('build_s', 0):.1f} | {p50:.4f} | {whole['cos']:.6f} | "
          f"{scores['cos']:.6f} / {scores['rel_l2']:.3f} | {counts(every)} | {counts(in_head)} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="yolov8n:320", help="ARCH:IMGSZ of a detector, exported or found in the cache")
    ap.add_argument("--onnx", help="an ONNX file instead (used as it is: no LSUV rescaling)")
    ap.add_argument("--work", help="folder for the images, models, caches and layer JSON (default: trt_int8_head "
                    "in the model cache)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--one", nargs=2, metavar=("ONNX", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from trt_ray_bench.models import cache_dir, export_onnx, yaml_name

    work = Path(args.work) if args.work else cache_dir() / "trt_int8_head"
    if args.one:
        one(args.one[0], work, args.one[1])
        return 0
    from trt_ray_bench.engines._trt_build import CALIBRATORS

    unknown = [v for v in args.variants.split(",") if v.split("-")[0] not in ("rule", "ultralytics", "none")
               or v.split("-")[-1] not in CALIBRATORS or v.count("-") != 1]
    if unknown:
        ap.error(f"--variants: {', '.join(unknown)}: each is HEAD-CALIBRATOR, HEAD rule|ultralytics|none, "
                 f"CALIBRATOR {'|'.join(CALIBRATORS)}")
    try:
        import tensorrt
    except ImportError:
        print("no TensorRT here: this benchmark needs a GPU with TensorRT; nothing measured")
        return 0
    import onnx
    import onnxruntime as ort

    from trt_ray_bench.models._convert import lsuv_weights
    from trt_ray_bench.models._inputs import list_images, load_images
    from trt_ray_bench.validation import make_synthetic

    work.mkdir(parents=True, exist_ok=True)
    make_synthetic("detect", str(work / "calib"), n=64, imgsz=(480, 640), seed=0)
    make_synthetic("detect", str(work / "eval"), n=8, imgsz=(480, 640), seed=1)
    arch, size = args.model.split(":")
    hw = (int(size), int(size))
    if args.onnx:
        lively = Path(args.onnx)
        dims = onnx.load(str(lively)).graph.input[0].type.tensor_type.shape.dim
        hw = (dims[2].dim_value, dims[3].dim_value)
    else:
        src, _ = export_onnx(yaml_name(arch, "detect"), "detect", hw)
        lively = work / f"{src.stem}-lively.onnx"
        calib = load_images(list_images(str(work / "calib"))[:8], hw, "detect")
        onnx.save(lsuv_weights(onnx.load(str(src)), calib), str(lively))
    s = ort.InferenceSession(str(lively), providers=["CPUExecutionProvider"])
    x = load_images(list_images(str(work / "eval")), hw, "detect")
    name = s.get_inputs()[0].name
    np.save(work / "reference.npy", np.stack([s.run(None, {name: x[i:i + 1]})[0][0] for i in range(len(x))]))
    print(f"{lively.name}, TensorRT {tensorrt.__version__}; class scores against the float ONNX on ONNX Runtime, "
          f"8 images; GPU p50 over 1000 iterations\n")
    print("| variant | layers kept out | build s | GPU p50 ms | whole cos | scores cos / rel. L2 "
          "| engine layers by output type | head layers by output type |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for v in args.variants.split(","):
        env = {**os.environ, "TRB_CACHE_DIR": str(work / f"cache-{v}")}  # one engine cache per variant
        r = subprocess.run([sys.executable, __file__, "--work", str(work), "--one", str(lively), v], env=env,
                           capture_output=True, text=True)
        last = (r.stdout.strip().splitlines() or [""])[-1]
        if r.returncode or not last.startswith("|"):
            print(f"| {v} | failed: {((r.stderr or r.stdout).strip().splitlines() or ['?'])[-1][:300]} |", flush=True)
        else:
            print(last, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
