"""What keeping an Ultralytics head out of INT8 does to its outputs, per task, measured on
ONNX Runtime's INT8 on this machine's CPU (no GPU needed).

    python benchmarks/int8_head_rule.py [--imgsz 96] [--tasks detect,segment,pose,obb,classify]

TensorRT's calibrator (implicit quantization) lets its builder run any layer in INT8. Here
ONNX Runtime quantizes every operator the same way (``quantize_static`` in QDQ format with
no operator list, symmetric INT8, per-channel weights, entropy calibration like trtexec's
calibrator; trt_ray_bench's calibrated builds use min-max) on 16 generated images, and the
outputs on 4 others are compared with the float model's, as cosine similarity, for three
sets of layers left in float:

  all INT8           none
  Ultralytics' rule  the head's Sigmoid layers and its output and DFL convolutions
                     (what Ultralytics' exporter keeps out of INT8 for TensorRT)
  this rule          ``engines._int8_head.head_rule``: Ultralytics' rule, the head's decoding
                     and every layer writing a network output (what trt_ray_bench's
                     calibrated TensorRT builds keep out of INT8)

Columns: the whole first output; its class scores (channels 4 to 4 + classes; a classifier's
output is its probabilities); the channels after them (masks' coefficients, keypoints, the
angle); a second output (the segmentation protos). Each model is a yolov8n of the task built
from its yaml (exported, or found in the model cache) with LSUV-rescaled weights
(``models._convert.lsuv_weights``), so that its outputs depend on the image: these are
figures of the quantization, not of a trained model's accuracy. ONNX Runtime is not
TensorRT: which layers TensorRT runs in INT8 is its builder's choice, and its kernels round
differently; on a GPU, ``benchmarks/trt_precision.py`` measures TensorRT's engines.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from pathlib import Path

import numpy as np

TASKS = ("detect", "segment", "pose", "obb", "classify")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    from trt_ray_bench.models._convert import agreement

    return agreement(a, b)[0]


def measure(onnx_path: str, work: Path, imgsz: int):
    import onnx
    import onnxruntime as ort

    from trt_ray_bench.engines._int8_head import head_rule, onnx_layers
    from trt_ray_bench.models._convert import lsuv_weights, quantize_every_op
    from trt_ray_bench.models._inputs import list_images, load_images

    model = onnx.load(onnx_path)
    meta = {p.key: p.value for p in model.metadata_props}
    task, nc = meta["task"], len(ast.literal_eval(meta["names"]))
    hw = (imgsz, imgsz)
    calib = load_images(list_images(str(work / "calib")), hw, task)
    x = load_images(list_images(str(work / "eval")), hw, task)
    model = lsuv_weights(model, calib[:8])
    lively = work / f"{Path(onnx_path).stem}-lively.onnx"
    onnx.save(model, str(lively))
    rule = head_rule(onnx_layers(model))
    ultralytics = sorted(head_rule(onnx_layers(model), ultralytics_only=True))
    name = model.graph.input[0].name

    def run(path):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = [s.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]

    ref = run(lively)
    rows = []
    for label, keep in (("all INT8", []), ("Ultralytics' rule", ultralytics), ("this rule", sorted(rule))):
        out = work / f"{Path(onnx_path).stem}-{len(keep)}.onnx"
        quantize_every_op(lively, out, (calib[i:i + 1] for i in range(len(calib))), name, keep)
        y = run(out)
        r0, y0 = ref[0], y[0]
        if task == "classify":
            cells = [_cos(r0, y0), _cos(r0, y0), None]
        else:
            extra = _cos(r0[:, 4 + nc:], y0[:, 4 + nc:]) if r0.shape[1] > 4 + nc else None
            cells = [_cos(r0, y0), _cos(r0[:, 4:4 + nc], y0[:, 4:4 + nc]), extra]
        cells.append(_cos(ref[1], y[1]) if len(ref) > 1 else None)
        rows.append((task, label, len(keep), cells))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imgsz", type=int, default=96)
    ap.add_argument("--tasks", default=",".join(TASKS))
    args = ap.parse_args(argv)
    try:
        import onnxruntime
        from onnxruntime import quantization  # noqa: F401
    except ImportError:
        print("needs onnxruntime (pip install -e .); nothing measured")
        return 0
    from trt_ray_bench.models import export_onnx, yaml_name
    from trt_ray_bench.validation import make_synthetic

    print(f"yolov8n at {args.imgsz} px, LSUV weights; ONNX Runtime {onnxruntime.__version__} INT8 on the CPU; "
          "cosine to the float model on 4 generated images\n")
    print("| task | left in float | layers | whole output | class scores | after the scores | second output |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_synthetic("detect", str(work / "calib"), n=16, imgsz=(480, 640), seed=0)
        make_synthetic("detect", str(work / "eval"), n=4, imgsz=(480, 640), seed=1)
        for task in args.tasks.split(","):
            path, _ = export_onnx(yaml_name("yolov8n", task), task, (args.imgsz, args.imgsz))
            for t, label, n, cells in measure(str(path), work, args.imgsz):
                text = " | ".join("—" if c is None else f"{c:.4f}" for c in cells)
                print(f"| {t} | {label} | {n} | {text} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
