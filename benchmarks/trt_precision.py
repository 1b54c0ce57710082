"""FP32, FP16 and INT8 TensorRT engines of one model, side by side: GPU p50 and how far
each engine's outputs are from the FP32 engine's.

    python benchmarks/trt_precision.py [--onnx PATH | --model yolov8n:640] [--calib-images DIR]
        [--eval-images DIR] [--images 8] [--iterations 1000] [--tactics none --opt-level 0]
        [--cuda cuda-python|pycuda] [--jobs N] [--timing-cache FILE] [--rows int8-calibrator,...]

Engines (rows), each built by the framework (``prepare_model``) with these options:
  FP32               precision fp32
  FP16 (flag)        fp16, typing weak, convert false: the builder's FP16 flag (not on 11.x)
  FP16 (converted)   fp16, convert true: the mixed-precision ONNX (models.convert_model),
                     typing weak below TensorRT 10 (flag on the converted ONNX), strong from 10
  INT8 (Q/DQ)        int8, convert true: the Q/DQ ONNX calibrated on --calib-images, same typing
  INT8 (calibrator)  int8, typing weak: TensorRT's calibrator (min-max, options.calibrator) on
                     --calib-images (not on 11.x)
Columns: build (and conversion) time, GPU p50 (CUDA events around execute_async_v3, via
the framework's ``run_loop``, device buffers only, sync device), and on --images images the
cosine similarity and relative L2 error of the raw first output against FP32's; for a
detection model the same on the class-score channels (``output[:, 4:]``): with random
weights (the cached exports) the raw output is dominated by the box grid, which does not
depend on the input. Give a trained model with --onnx for figures that mean accuracy.

With --jobs N the engines (and their conversions) are built first, N processes at once,
then measured one by one. That pays where builds are short: on an NVIDIA H100 (2026-12-06)
TensorRT 8.6 at optimization level 0 built five YOLOv8n engines at once in 41-106 s each.
On TensorRT 8.5, builds started together slowed each other so that none of eleven (this
benchmark's five and the GPU tests') finished in 14 minutes on the same GPU, where one alone
takes 1-6 minutes: build one at a time there (the default). With --timing-cache FILE every
build reads and adds to TensorRT's timing cache (options.timing_cache): the FP16 and INT8
builds then reuse the FP32 timings of the rows before them, and their build times say less
about a build alone.

--rows picks the rows after FP32 (the reference, always built): fp16-flag, fp16-converted,
int8-qdq, int8-calibrator (default: all).

Calibration images default to 64 synthetic detection images (``validation.make_synthetic``),
evaluation images to 8 others (another seed). Where TensorRT lacks cuBLAS / cuDNN: --tactics none
(and --opt-level 0 from 8.6 to build faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np


ROWS = ("fp16-flag", "fp16-converted", "int8-qdq", "int8-calibrator")


def engines(trt_major: int, calib: str, cache: str, rows: Optional[List[str]] = None) -> List[tuple]:
    """(label, precision, options) of each row (FP32 and ``rows``, default all); None
    options: not on this TensorRT."""
    in_onnx = "strong" if trt_major >= 10 else "weak"
    weak = None if trt_major >= 11 else "weak"
    every = [
        ("FP32", "fp32", {}),
        ("FP16 (flag)", "fp16", weak and {"typing": "weak", "convert": False}),
        ("FP16 (converted)", "fp16", {"typing": in_onnx, "convert": True, "calib_images": calib}),
        ("INT8 (Q/DQ)", "int8", {"typing": in_onnx, "convert": True, "calib_images": calib}),
        ("INT8 (calibrator)", "int8", weak and {"typing": "weak", "convert": False, "calib_images": calib,
                                                "calib_cache": cache}),
    ]
    keep = ("fp32", *ROWS) if rows is None else ("fp32", *rows)
    return [row for key, row in zip(("fp32", *ROWS), every) if key in keep]


def outputs(model, x: np.ndarray) -> np.ndarray:
    """The first output of each image (batch 1), through the runner's pinned host arrays
    (``run_array``)."""
    from trt_ray_bench.engines import load_runner

    r = load_runner(model)
    r.prepare([x[:1]])
    out = []
    for i in range(len(x)):
        host = r.run_array(x[i:i + 1])
        r.synchronize("stream")
        out.append(np.array(host[0][0], dtype=np.float32, copy=True))  # batch 1: (channels, anchors)
    r.gpu_times_ms()
    r.close()
    return np.stack(out)


def gpu_p50(model, iterations: int, warmup: int) -> float:
    from trt_ray_bench.engines import load_runner, make_inputs
    from trt_ray_bench.timing import LoopPlan, run_loop, summarize

    m = dataclasses.replace(model, options={**model.options, "transfers": False})
    r = load_runner(m)
    r.prepare(make_inputs("dummy", m.hw, m.batch))
    s = run_loop(r, LoopPlan(iterations=iterations, warmup=warmup, sync="device"))
    r.close()
    w = np.asarray(s.warmup)
    return summarize(np.asarray(s.gpu_ms)[~w]).p50_ms


def agreement(ref: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    a, b = ref.ravel().astype(np.float64), y.ravel().astype(np.float64)
    return {"cos": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
            "rel_l2": float(np.linalg.norm(a - b) / np.linalg.norm(a))}


def _model_spec(args, precision: str, options: dict):
    from trt_ray_bench.spec import ModelSpec, split_arch

    options = {**options, "tactics": args.tactics}
    if args.opt_level is not None:
        options["opt_level"] = args.opt_level
    if args.timing_cache:
        options["timing_cache"] = args.timing_cache
    if args.onnx:
        return ModelSpec(path=args.onnx, backend="tensorrt", precision=precision, options=options)
    arch, size = args.model.split(":")
    a, task = split_arch(arch)
    return ModelSpec(arch=a, task=task or "detect", imgsz=int(size), backend="tensorrt", precision=precision,
                     options=options)


def _image_sets(args, work: Path):
    from trt_ray_bench.validation import make_synthetic

    calib = args.calib_images
    if not calib:
        calib = str(work / "calib")
        make_synthetic("detect", calib, n=64, imgsz=(480, 640), seed=0)
    evaluation = args.eval_images
    if not evaluation:
        evaluation = str(work / "eval")
        make_synthetic("detect", evaluation, n=args.images, imgsz=(480, 640), seed=1)
    return calib, evaluation


def _lively(args, calib: str, work: Path) -> Optional[str]:
    """The model with LSUV-rescaled weights (``models._convert.lsuv_weights``) where it has
    random ones: a yaml-built yolov8n's outputs hardly depend on the input, so every
    engine would agree with FP32 to 1e-5 whatever its precision. A trained --onnx is
    used as is."""
    import onnx

    from trt_ray_bench.models._inputs import list_images, load_images
    from trt_ray_bench.engines import resolve_model
    from trt_ray_bench.models._convert import lsuv_weights

    m = resolve_model(_model_spec(args, "fp32", {}), "model")
    if m.weights != "random":
        return args.onnx
    x = load_images(list_images(calib)[:8], m.hw, m.task)
    out = work / f"{Path(m.onnx_path).stem}-lively.onnx"
    onnx.save(lsuv_weights(onnx.load(m.onnx_path), x), str(out))
    print(f"  random weights: measuring on {out.name} (LSUV-rescaled, so outputs depend on the input)",
          file=sys.stderr)
    return str(out)


def _build_one(spec, label: str, trb_cuda: Optional[str]):
    """Build (or find cached) one row's engine in a worker process: its build and conversion
    seconds, or the one-line refusal."""
    if trb_cuda:
        os.environ["TRB_CUDA"] = trb_cuda
    from trt_ray_bench.engines import prepare_model, resolve_model
    from trt_ray_bench.errors import UserError

    try:
        m = prepare_model(resolve_model(spec, label), label)
    except UserError as exc:
        return label, None, str(exc)
    if m.engine.get("cached"):
        return label, None, ""   # found in the cache: the measuring loop says "cached"
    c = m.converted or {}
    return label, (m.engine.get("build_s"), None if c.get("cached") else c.get("convert_s")), ""


def prebuild(args, rows: list, jobs: int) -> Dict[str, tuple]:
    """Every row's engine built at once, ``jobs`` processes (spawned: no CUDA state is
    inherited); ``{label: (build_s, convert_s)}`` of those built here."""
    import concurrent.futures as cf
    import multiprocessing as mp

    done = {}
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_build_one, _model_spec(args, precision, options), label, os.environ.get("TRB_CUDA"))
                   for label, precision, options in rows if options is not None]
        for f in cf.as_completed(futures):
            label, times, refused = f.result()
            how = f"refused: {refused}" if refused else "cached" if times is None else (
                f"{times[0] or 0:.1f} s" + (f" (+{times[1]:.1f} s convert)" if times[1] else ""))
            print(f"  built {label}: {how}", file=sys.stderr)
            if times:
                done[label] = times
    return done


def _fmt(v: Optional[float], spec: str) -> str:
    return "—" if v is None else format(v, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", help="an ONNX file (e.g. a trained yolov8n.onnx); default: --model's export")
    ap.add_argument("--model", default="yolov8n:640", help="ARCH[-task]:IMGSZ exported (or found in the cache)")
    ap.add_argument("--calib-images", help="calibration images (default: 64 synthetic ones)")
    ap.add_argument("--eval-images", help="images the outputs are compared on (default: synthetic, another seed)")
    ap.add_argument("--images", type=int, default=8, help="how many images are compared")
    ap.add_argument("--random-weights", action="store_true", help="compare on the random-weight export as is "
                    "(default: LSUV-rescaled weights, see _lively)")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--tactics", default="default", choices=("default", "none"))
    ap.add_argument("--opt-level", type=int, default=None)
    ap.add_argument("--work", help="folder for the images, the LSUV model and the calibration cache "
                    "(default: trt_precision in the model cache)")
    ap.add_argument("--jobs", type=int, default=1, help="build the engines first, this many at once")
    ap.add_argument("--timing-cache", metavar="FILE", help="TensorRT's timing cache for every build (options."
                    "timing_cache): a later row's build reuses the timings the earlier rows measured")
    ap.add_argument("--cuda", choices=("auto", "cuda-python", "pycuda"), default=None,
                    help="the CUDA binding (sets TRB_CUDA)")
    ap.add_argument("--rows", help=f"the rows after FP32, comma-separated: {','.join(ROWS)} (default: all)")
    args = ap.parse_args(argv)
    rows_wanted = args.rows.split(",") if args.rows else None
    unknown = sorted(set(rows_wanted or ()) - set(ROWS))
    if unknown:
        ap.error(f"--rows: {', '.join(unknown)} is not one of {', '.join(ROWS)}")
    if args.cuda:
        os.environ["TRB_CUDA"] = args.cuda
    try:
        import tensorrt as trt
    except ImportError:
        print("no TensorRT here: this benchmark needs a GPU with TensorRT; nothing measured")
        return 0
    from trt_ray_bench.engines import _cuda, kept_out_text, prepare_model
    from trt_ray_bench.models import cache_dir
    from trt_ray_bench.models._inputs import list_images, load_images
    from trt_ray_bench.errors import UserError
    from trt_ray_bench.engines import resolve_model

    # kept between runs (images, the LSUV model, the calibrator's cache): a second run finds
    # every engine in the cache, where a fresh folder would make new keys and build again
    work = Path(args.work) if args.work else cache_dir() / "trt_precision"
    work.mkdir(parents=True, exist_ok=True)
    calib, evaluation = _image_sets(args, work)
    if not args.random_weights:
        args.onnx = _lively(args, calib, work)
    cuda = _cuda.load(None)
    major = int(trt.__version__.split(".")[0])
    rows, ref, ref_scores = [], None, None
    variants = engines(major, calib, str(work / "calib.cache"), rows_wanted)
    built = prebuild(args, variants, args.jobs) if args.jobs > 1 else {}
    for label, precision, options in variants:
        if options is None:
            rows.append((label, "—", "—", "—", f"not on TensorRT {trt.__version__} (no weak typing)", None))
            continue
        try:
            m = prepare_model(resolve_model(_model_spec(args, precision, options), label), label)
        except UserError as exc:
            rows.append((label, options.get("typing", "default"), "—", "—", f"refused: {exc}", None))
            continue
        x = load_images(list_images(evaluation)[:args.images], m.hw, m.task)
        y = outputs(m, x)
        scores = y[:, 4:] if m.task == "detect" and y.ndim == 3 else None  # (image, 4 + classes, anchors)
        if ref is None:
            ref, ref_scores = y, scores
        agree = agreement(ref, y)
        agree_s = agreement(ref_scores, scores) if scores is not None and ref_scores is not None else None
        e, c = m.engine, m.converted or {}
        if label in built:   # built here by prebuild, in parallel with the others
            b_s, c_s = built[label]
            build = f"{b_s or 0:.1f}" + (f" (+{c_s:.1f} convert)" if c_s else "") + " ∥"
        else:
            build = ("cached" if e.get("cached") else f"{e.get('build_s', 0):.1f}") + (
                f" (+{c.get('convert_s', 0):.1f} convert)" if c and not c.get("cached") else "")
        p50 = gpu_p50(m, args.iterations, args.warmup)
        rows.append((label, e.get("typing") or "", build, f"{p50:.4f}", "", (agree, agree_s)))
        print(f"  {label}: {m.engine_path}" + (f" from {c['path']} ({c.get('converter')})" if c else "")
              + kept_out_text(e.get("int8_kept_out")), file=sys.stderr)
    src = args.onnx or args.model
    print(f"\n{src}, TensorRT {trt.__version__}, {cuda.device_name()} (sm "
          f"{'.'.join(map(str, cuda.compute_capability()))}), via {cuda.name} {cuda.version}; "
          f"GPU p50 over {args.iterations} iterations; agreement on {args.images} images of {evaluation}\n")
    if built:
        print(f"∥: built {args.jobs} at once, so each build took longer than it would alone\n")
    if args.timing_cache:
        print(f"builds shared the timing cache {args.timing_cache}: a build reused the timings that the builds "
              "before it measured, so its time is shorter than alone\n")
    print("| engine | typing | build s | GPU p50 ms | cos | rel. L2 | scores cos | scores rel. L2 |")
    print("|---|---|---|---|---|---|---|---|")
    for label, typing, build, p50, note, agree in rows:
        if agree is None:
            print(f"| {label} | {typing} | {build} | {p50} | {note} | | | |")
            continue
        a, s = agree
        print(f"| {label} | {typing} | {build} | {p50} | {a['cos']:.6f} | {a['rel_l2']:.2e} | "
              f"{_fmt(s and s['cos'], '.6f')} | {_fmt(s and s['rel_l2'], '.2e')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
