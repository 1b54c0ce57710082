"""fp16 and int8 by model conversion (``trt_ray_bench.models.convert_model``) against fp32,
on the five YOLO tasks at their real sizes, on ONNX Runtime's CPU.

For each task (yolov8n-cls 224, yolov8n detect / pose / seg 640, yolov8n-obb 1024,
exported from the Ultralytics yaml) and each weight variant:

  random   the export as it is (random weights: activations shrink layer after layer,
           so the outputs hardly depend on the input and every conversion looks exact)
  lively   the same graph with LSUV-rescaled weights (``lsuv_weights``: unit-spread
           activations over the calibration images, like a trained network's)
  --pt F   a trained Ultralytics .pt of any task, exported at --pt-imgsz (real weights)

it converts to fp16 (data_max rule on the calibration images) and int8 (Q/DQ calibrated
on generated images, ``validation.make_synthetic``), then prints:

  * agreement with fp32 on held-out generated images, worst image: cosine similarity and
    relative L2 error per output, and per part of a head output (boxes / class scores /
    keypoints / mask coefficients / angle: a box column carries its anchor position,
    which dilutes the whole tensor's relative error); "fp16 no rule" is the float16
    converter without the data_max rule (only its own op block list kept fp32);
  * ONNX Runtime CPU latency p50 of fp32, fp16 and int8 (default session options);
  * conversion time, nodes kept fp32 (fp16) and nodes quantized (int8);
  * the nodes the data_max rule keeps fp32, with the largest |x| each saw.

    python benchmarks/convert_fidelity.py [--tasks detect,obb] [--weights lively,random]
        [--calib 64] [--held 8] [--iterations 20] [--pt best.pt --pt-imgsz 640]
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"classify": 224, "detect": 640, "pose": 640, "segment": 640, "obb": 1024}
PARTS_AFTER_SCORES = {"pose": "keypoints", "segment": "mask coef", "obb": "angle"}


def _session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _outputs(path, x):
    sess = _session(path)
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]


def _p50_ms(path, x, iterations: int) -> float:
    sess = _session(path)
    name = sess.get_inputs()[0].name
    feed = {name: x[:1]}
    for _ in range(3):
        sess.run(None, feed)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


def _parts(task: str, j: int, shape, nc: int):
    """(label, slice over axis 1) of output ``j``: a head output (1, C, anchors) split into
    its column groups, anything else whole."""
    whole = [("all", slice(None))]
    if task == "classify" or j > 0 or len(shape) != 3:
        return whole
    extra = PARTS_AFTER_SCORES.get(task)
    parts = whole + [("boxes", slice(0, 4)), ("scores", slice(4, 4 + nc))]
    if extra and shape[1] > 4 + nc:
        parts.append((extra, slice(4 + nc, None)))
    return parts


def _worst(task: str, ref, out, nc: int) -> dict:
    """{(output, part): (worst cosine, worst relative L2, largest |difference|)} over the images."""
    from trt_ray_bench.models._convert import agreement

    worst = {}
    for r_img, o_img in zip(ref, out):
        for j, (r, o) in enumerate(zip(r_img, o_img)):
            for label, sl in _parts(task, j, r.shape, nc):
                cos, rel = agreement(r[:, sl], o[:, sl])
                diff = float(np.abs(r[:, sl].astype(np.float64) - o[:, sl]).max())
                c0, r0, d0 = worst.get((j, label), (1.0, 0.0, 0.0))
                worst[(j, label)] = (min(c0, cos), max(r0, rel), max(d0, diff))
    return worst


def _meta(path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _no_rule_fp16(src: Path, folder: Path) -> Path:
    """The float16 converter alone: only its own op block list kept fp32."""
    import onnx

    from trt_ray_bench.models import _convert

    model = onnx.load(str(src))
    _convert._name_nodes(model)
    keep = _convert.fp16_block_list(model, {}, data_max=float("inf"))
    out = folder / f"{src.stem}-fp16-norule.onnx"
    onnx.save(_convert.to_fp16(model, keep), str(out))
    return out


def run_one(label: str, task: str, size: int, src: Path, weights: str, args, work: Path) -> dict:
    import onnx

    from trt_ray_bench.models._inputs import list_images, load_images
    from trt_ray_bench.models import convert_model
    from trt_ray_bench.models._convert import lsuv_weights
    from trt_ray_bench.validation import make_synthetic

    calib = work / f"{task}-{size}-calib"
    held = work / f"{task}-{size}-held"
    if not calib.exists():
        make_synthetic(task, calib, n=args.calib, imgsz=size, seed=1)
        make_synthetic(task, held, n=args.held, imgsz=size, seed=2)
    x = load_images(list_images(str(held)), (size, size), task)
    if weights == "lively":
        # LSUV over 8 calibration images (all 64 at 640 would need GBs in one batch)
        xc = load_images(list_images(str(calib))[:8], (size, size), task)
        lively = work / f"{src.stem}-lively.onnx"
        onnx.save(lsuv_weights(onnx.load(str(src)), xc), str(lively))
        src = lively
    meta = _meta(src)
    names = ast.literal_eval(meta.get("names", "{}")) if meta.get("names") else {}
    nc = len(names) or 80
    row = {"label": label, "task": task, "size": size, "weights": weights, "models": {"fp32": str(src)}}
    ref = _outputs(src, x)
    row["amax"] = {(j, label): max(float(np.abs(img[j][:, sl]).max()) for img in ref)
                   for j, r in enumerate(ref[0]) for label, sl in _parts(task, j, r.shape, nc)}
    for precision in ("fp16", "int8"):
        c = convert_model(src, precision, hw=(size, size), task=task, calib_images=calib,
                          where=f"models.{label}")
        row["models"][precision] = c["path"]
        row[precision] = {"convert_s": c["convert_s"], "cached": c["cached"], "converter": c["converter"],
                          "worst": _worst(task, ref, _outputs(c["path"], x), nc)}
        side = json.loads(Path(c["path"]).with_suffix(".json").read_text())
        row[precision]["nodes"] = side.get("nodes_fp32") or side.get("nodes_quantized")
    no_rule = _no_rule_fp16(src, work)
    row["fp16 no rule"] = {"worst": _worst(task, ref, _outputs(no_rule, x), nc)}
    row["p50_ms"] = {p: _p50_ms(path, x, args.iterations) for p, path in row["models"].items()}
    return row


def _print(rows, args) -> None:
    import onnxruntime as ort

    print(f"\nONNX Runtime {ort.__version__} CPU, {platform.processor() or platform.machine()}, "
          f"calibration {args.calib} generated images, {args.held} held-out; worst held-out image\n")
    print("| model | weights | output | part | fp32 max|x| | fp16 cos | fp16 rel | fp16 max|Δ| | fp16 no rule rel | "
          "int8 cos | int8 rel | int8 max|Δ| |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for key in r["fp16"]["worst"]:
            f, n, i = r["fp16"]["worst"][key], r["fp16 no rule"]["worst"][key], r["int8"]["worst"][key]
            print(f"| {r['label']} | {r['weights']} | output{key[0]} | {key[1]} | {r['amax'][key]:.3g} | {f[0]:.6f} | "
                  f"{f[1]:.5f} | {f[2]:.3g} | {n[1]:.5f} | {i[0]:.5f} | {i[1]:.4f} | {i[2]:.3g} |")
    print("\n| model | weights | p50 fp32 ms | p50 fp16 ms | p50 int8 ms | convert fp16 s | convert int8 s | "
          "fp16 kept fp32 | int8 quantized |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["p50_ms"]
        conv = {k: f"{r[k]['convert_s']:.1f}{' (cached)' if r[k]['cached'] else ''}" for k in ("fp16", "int8")}
        kept = r["fp16"]["converter"].rsplit(", ", 1)[-1].replace(" nodes kept fp32", "")
        quant = r["int8"]["converter"].rsplit(", ", 1)[-1].replace(" nodes quantized", "")
        print(f"| {r['label']} | {r['weights']} | {p['fp32']:.1f} | {p['fp16']:.1f} | {p['int8']:.1f} | "
              f"{conv['fp16']} | {conv['int8']} | {kept} | {quant} |")
    print("\nNodes the data_max rule (|x| > 512) keeps fp32, with the largest |x| each saw:")
    for r in rows:
        nodes = r["fp16"]["nodes"] or {}
        listed = ", ".join(f"{k} ({v:.0f})" for k, v in nodes.items()) or "none"
        print(f"- {r['label']} ({r['weights']}): {listed}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(SIZES))
    ap.add_argument("--weights", default="lively,random", help="lively and/or random")
    ap.add_argument("--calib", type=int, default=64, help="generated calibration images")
    ap.add_argument("--held", type=int, default=8, help="generated held-out images")
    ap.add_argument("--iterations", type=int, default=20, help="timed runs per model for the p50")
    ap.add_argument("--pt", action="append", default=[], help="a trained Ultralytics .pt (repeatable)")
    ap.add_argument("--pt-imgsz", type=int, default=640)
    args = ap.parse_args(argv)

    from trt_ray_bench.models import export_onnx, yaml_name

    rows = []
    with tempfile.TemporaryDirectory(prefix="trb-convert-fidelity-") as tmp:
        work = Path(tmp)
        for task in args.tasks.split(","):
            size = SIZES[task]
            src, _ = export_onnx(yaml_name("yolov8n", task), task, (size, size), 1)
            for weights in args.weights.split(","):
                t0 = time.perf_counter()
                rows.append(run_one(f"yolov8n-{task} {size}", task, size, src, weights, args, work))
                print(f"{task} {size} {weights}: {time.perf_counter() - t0:.0f} s", flush=True)
        for pt in args.pt:
            s = args.pt_imgsz
            src, _ = export_onnx(pt, None, (s, s), 1)
            task = _meta(src).get("task", "detect")
            rows.append(run_one(f"{Path(pt).name} ({task}) {s}", task, s, src, "trained", args, work))
            print(f"{pt} {s}: done", flush=True)
    _print(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
