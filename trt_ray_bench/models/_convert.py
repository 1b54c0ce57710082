"""Precision by explicit model conversion: an fp32 ONNX becomes a mixed-precision fp16
ONNX or a Q/DQ int8 ONNX, with ONNX Runtime's own tools, cached beside the exports.

The converted file is what a strongly typed TensorRT network is built from (TensorRT 11
has nothing else) and what ``backend: onnxruntime`` runs at ``precision: fp16 | int8``.
Inputs and outputs stay float32 in both. Works with ONNX Runtime 1.19 (the newest for
Python 3.8, JetPack 5) through 1.32: only options and keyword arguments both have are used.

fp16: ``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)``
with ModelOpt AutoCast's data_max rule re-applied: the fp32 model runs on the
calibration images (or a seeded dummy input) with every node's output exposed, and a
node any of whose float inputs or outputs exceeds ``DATA_MAX`` (512: the fp16 ULP there
is 0.5) stays fp32, as do the op types the converter blocks itself. Measured on the five
yolov8n graphs (benchmarks/convert_fidelity.py): the rule keeps only the box-decoding
tail, the ``Mul`` by the strides and the output ``Concat`` (pose: also the keypoint
decoding), 0-5 of 96-269 nodes, which see |x| up to 636-744 at 640 and 1020-1138 at
1024. It changes nothing on ONNX Runtime's CPU, which computes an fp16 graph in fp32 (its
fp16 error there is the rounding of the weights); on an fp16 engine it spares those
pixel coordinates a rounding of up to 0.25 px (640) or 0.5 px (1024), far from fp16's
overflow: cheap insurance, not a fix on these graphs.

int8: ``onnxruntime.quantization.quantize_static`` in QDQ format with the settings
ModelOpt passes to it for TensorRT (``modelopt/onnx/quantization/ort_utils.py``
``configure_ort``): per-channel symmetric int8 weights (Q/DQ pairs kept on the weights),
symmetric int8 activations, biases unquantized, no dedicated Q/DQ pair per consumer, and
no output quantization for any op type: an op's input Q/DQ is what TensorRT fuses, and a
quantized output only loses precision (a quantized Softmax output gets the fixed range
0..1, a step of 1/127, and yolov8n-cls's probabilities, ~0.001 with random weights,
become 0). Like ModelOpt's ``get_skipped_output_layers``, nodes that write a graph
output are not quantized unless they are compute ops. Choices, from measurement:

* Quantized op types are the compute ops (``QUANTIZE_OP_TYPES``). Adding MaxPool, Add,
  Concat and Resize (ModelOpt's placement, a TensorRT speed choice not measurable here)
  brought no output closer to fp32; leaving the first conv (and the head's last convs) in
  fp32 helped a little (relative error 0.091 -> 0.084 on a trained detector at 640), not
  enough to depart from what ModelOpt does.
* Calibration is MinMax (with symmetric activations, "max" calibration), as ModelOpt's
  "max". Its weak spot, measured on a trained YOLOv8 detector at 640 calibrated on
  generated images: activation outliers widen the ranges, and the class scores of the
  worst held-out image keep a cosine of only 0.25 to fp32 (boxes: relative error 0.091).
  ONNX Runtime's Entropy gave the very same scales; Percentile (99.999) brought the
  scores to 0.996 and the boxes to 0.052 but, like every histogram calibrator there,
  keeps every intermediate tensor of every calibration image in memory (GBs at 640 x 64
  images) and took 3x longer; the mean of per-image maxima (``CalibMovingAverage``) was
  in between (0.87).
* ONNX Runtime 1.19 sets every Softmax output's range whether the node is quantized or
  not and fails on one it did not calibrate: Softmax nodes are calibrated and excluded.

Calibration uses at most ``MAX_CALIB_IMAGES`` images of ``options.calib_images``, spread
evenly over the folder's sorted files and decoded one batch at a time, preprocessed
exactly like the model's input: with max calibration more images only widen the ranges,
and 64 keep a conversion within ~20 s at 640 and ~40 s at 1024 on a 2-core CPU.

A yolov8n built from its yaml has random weights whose outputs hardly depend on the
input, so a conversion looks exact on it; ``lsuv_weights`` gives the same graph
unit-spread activations for measuring one (tests, benchmarks/convert_fidelity.py), and
``agreement`` is the measure (cosine similarity, relative L2 error).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .._atomic import write_atomic
from ..errors import UserError, lazy_import
from ._export import cache_dir
from ._inputs import list_images, load_images
from ._resolve import sha256_file

PRECISIONS = ("fp32", "fp16", "int8")
#: calibration images used at most (spread evenly over the folder); see the module docstring
MAX_CALIB_IMAGES = 64
#: AutoCast's DEFAULT_DATA_MAX: a node that sees |x| above it stays fp32 (fp16 ULP at 512 is 0.5)
DATA_MAX = 512.0
#: the op types whose inputs get Q/DQ nodes (int8)
QUANTIZE_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
CALIBRATE_METHOD = "MinMax"
#: bumped whenever what this module does to a graph changes; part of the cache key
REVISION = 1
DUMMY_SEED = 0
#: metadata the converted file gets on top of the source's own (names, imgsz, task, ...)
PRECISION_KEY, CONVERTER_KEY, SOURCE_KEY = "trb_precision", "trb_converter", "trb_source_sha256"

_WHY = "converting a model to fp16/int8"
_CONVERTED_KEYS = ("path", "precision", "converter", "converter_version", "source_sha256", "calib_sha256",
                   "n_calib", "sha256", "cached", "convert_s")


def _onnx():
    return lazy_import("onnx", "convert", _WHY)


def _load(path, where: str):
    """The ModelProto of ``path``, or one line saying it is not an ONNX file."""
    onnx = _onnx()
    p = Path(path)
    if not p.is_file():
        raise UserError(where, f"{path}: no such file")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # DecodeError, and whatever protobuf raises for other bytes
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise UserError(where, f"{path}: not an ONNX file ({first})") from None
    if not model.graph.node:
        raise UserError(where, f"{path}: not an ONNX model (no graph)")
    return model


def _precision_of(model) -> str:
    onnx = _onnx()
    fp16 = onnx.TensorProto.FLOAT16
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        return "int8"
    if any(t.data_type == fp16 for t in model.graph.initializer):
        return "fp16"
    for n in model.graph.node:
        if n.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in n.attribute):
            return "fp16"
        if n.op_type == "Constant" and any(a.t.data_type == fp16 for a in n.attribute if a.name == "value"):
            return "fp16"
    if any(v.type.tensor_type.elem_type == fp16 for v in model.graph.input):
        return "fp16"
    return "fp32"


def onnx_precision(path) -> str:
    """``int8`` (Quantize/DequantizeLinear nodes), ``fp16`` (float16 initializers, casts
    or inputs) or ``fp32``: the precision the ONNX file already carries."""
    return _precision_of(_load(path, ""))


def _hash_images(folder: Path, files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.relative_to(folder).as_posix()):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def calib_set_sha256(folder) -> str:
    """Hash of a calibration set: every image's path relative to ``folder`` and content."""
    return _hash_images(Path(folder), list_images(str(folder), where="calib_images"))


def _pick(files: Sequence[Path], n: int) -> List[Path]:
    """``n`` files spread evenly over the sorted list (a folder per class stays mixed)."""
    if len(files) <= n:
        return list(files)
    return [files[(i * len(files)) // n] for i in range(n)]


def _input_spec(model, hw: Tuple[int, int], where: str) -> Tuple[str, Tuple[int, int, int, int]]:
    """The image input's name and the shape a calibration batch takes (symbolic dims:
    batch 1, ``hw``)."""
    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise UserError(where, f"the model has {len(inputs)} inputs; one image input is expected")
    dims = [d.dim_value if d.dim_value > 0 else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise UserError(where, f"the model takes input of rank {len(dims)}; an image batch (N, C, H, W) "
                               "is expected")
    shape = (dims[0] or 1, dims[1] or 3, dims[2] or int(hw[0]), dims[3] or int(hw[1]))
    return inputs[0].name, shape


def _batches(files: Sequence[Path], shape, task: Optional[str]) -> Iterator[np.ndarray]:
    """Calibration batches, decoded one at a time (64 images at 1024 px would be 800 MB);
    no files: one seeded dummy batch."""
    b, _, h, w = shape
    if not files:
        yield np.random.default_rng(DUMMY_SEED).random(shape, dtype=np.float32)
        return
    files = list(files)
    if len(files) < b:  # fewer images than one batch: repeat them
        files = (files * (b // len(files) + 1))[:b]
    for i in range(0, len(files) - b + 1, b):
        yield load_images(files[i:i + b], (h, w), task)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantization tools log advice through the root logger ("consider
    pre-processing"); the conversion reports what it did itself."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _name_nodes(model) -> None:
    """Give unnamed nodes a name: the fp16 block list and the quantizer's exclusions
    address nodes by name."""
    seen = {n.name for n in model.graph.node if n.name}
    for i, n in enumerate(model.graph.node):
        if not n.name:
            name = f"{n.op_type}_trb{i}"
            while name in seen:
                name += "_"
            n.name = name
            seen.add(name)


def _session(model_bytes: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # the reference run must see the graph's own tensors, not a fused graph's
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def tensor_abs_max(model, batches: Iterator[np.ndarray]) -> Dict[str, float]:
    """max |x| of every float tensor a node reads or writes (graph input and node
    outputs), over ``batches``: AutoCast's reference run, on ONNX Runtime's CPU."""
    onnx = _onnx()
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    for n in probe.graph.node:
        for out in n.output:
            if out and out not in have:
                probe.graph.output.append(onnx.ValueInfoProto(name=out))
                have.add(out)
    sess = _session(probe.SerializeToString())
    names = [o.name for o in sess.get_outputs()]
    in_name = sess.get_inputs()[0].name
    amax: Dict[str, float] = {}
    for x in batches:
        amax[in_name] = max(amax.get(in_name, 0.0), float(np.abs(x).max()))
        for name, y in zip(names, sess.run(names, {in_name: x})):
            y = np.asarray(y)
            if np.issubdtype(y.dtype, np.floating) and y.size:
                m = float(np.nanmax(np.abs(y))) if np.isfinite(y).all() else float("inf")
                amax[name] = max(amax.get(name, 0.0), m)
    return amax


def fp16_block_list(model, amax: Dict[str, float], data_max: float = DATA_MAX) -> List[str]:
    """Nodes kept fp32: any float input or output above ``data_max`` in the reference
    run, or an op type the float16 converter blocks itself."""
    blocked_ops = set(_float16().DEFAULT_OP_BLOCK_LIST)
    keep = []
    for n in model.graph.node:
        if n.op_type in blocked_ops or any(amax.get(t, 0.0) > data_max for t in list(n.input) + list(n.output)):
            keep.append(n.name)
    return keep


def _float16():
    # Its package appends its own folder to sys.path on import, and ONNX Runtime's
    # quantization tools import through that entry: it stays.
    return lazy_import("onnxruntime.transformers.float16", "convert", _WHY)


def to_fp16(model, keep: Sequence[str]):
    """The mixed-precision model: float16 everywhere but the nodes in ``keep``; float32
    inputs and outputs."""
    with _quiet():
        return _float16().convert_float_to_float16(model, keep_io_types=True, node_block_list=list(keep))


def _skipped_output_nodes(model, op_types: Sequence[str]) -> List[str]:
    """Nodes that write a graph output and are not compute ops (ModelOpt's
    ``get_skipped_output_layers``)."""
    outs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if set(n.output) & outs and n.op_type not in ("Conv", "Gemm", "MatMul")
            and n.op_type in op_types]


def int8_extra_options(op_types_in_graph: Sequence[str]) -> Dict:
    """ModelOpt's TensorRT-friendly ``extra_options`` for ``quantize_static``."""
    return {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "AddQDQPairToWeight": True,
        "DedicatedQDQPair": False,
        "ForceQuantizeNoInputCheck": True,
        # no output quantization: for every op type of the graph
        "OpTypesToExcludeOutputQuantization": sorted(set(op_types_in_graph)),
        "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
    }


def quantize_int8(src: Path, out: Path, batches: Iterator[np.ndarray], input_name: str,
                  op_types: Sequence[str] = QUANTIZE_OP_TYPES, exclude: Sequence[str] = ()) -> None:
    """``quantize_static`` of ``src`` into ``out`` (QDQ) calibrated on ``batches``."""
    model = _load(src, "")
    q = lazy_import("onnxruntime.quantization", "convert", _WHY)
    ops = [n.op_type for n in model.graph.node]
    exclude = set(exclude) | set(_skipped_output_nodes(model, op_types))
    op_types = list(op_types)
    if "Softmax" not in op_types:
        # ONNX Runtime 1.19 sets every Softmax output's range to 0..1 whether the node is
        # quantized or not, and fails on one it did not calibrate ("Only an existing tensor
        # can be modified"): calibrated, then excluded by name, they stay float.
        op_types.append("Softmax")
        exclude |= {n.name for n in model.graph.node if n.op_type == "Softmax"}
    with _quiet():
        q.quantize_static(
            model_input=str(src),
            model_output=str(out),
            calibration_data_reader=_reader(q, batches, input_name),
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            per_channel=True,
            reduce_range=False,
            activation_type=q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8,
            nodes_to_exclude=sorted(exclude),
            calibrate_method=getattr(q.CalibrationMethod, CALIBRATE_METHOD),
            extra_options=int8_extra_options(ops),
        )


def _reader(q, batches: Iterator[np.ndarray], input_name: str):
    """``batches`` as ONNX Runtime's calibration data reader."""
    class _Reader(q.CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {input_name: x}

    return _Reader()


def quantize_every_op(src: Path, out: Path, batches: Iterator[np.ndarray], input_name: str,
                      keep_float: Sequence[str] = ()) -> None:
    """ONNX Runtime's INT8 as TensorRT's calibrator may make it: every operator ONNX Runtime
    can quantize, outputs included (QDQ, symmetric, per-channel weights, entropy calibration),
    the nodes ``keep_float`` left in float. Not a conversion users get: it measures which
    layers a calibrated engine must keep out of INT8 (``engines._int8_head``)."""
    q = lazy_import("onnxruntime.quantization", "convert", _WHY)
    with _quiet():
        q.quantize_static(str(src), str(out), _reader(q, batches, input_name), quant_format=q.QuantFormat.QDQ,
                          per_channel=True, activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                          nodes_to_exclude=list(keep_float), calibrate_method=q.CalibrationMethod.Entropy,
                          extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


def _quantized_nodes(model) -> List[str]:
    """Nodes of the Q/DQ model that read a DequantizeLinear output (other than Q/DQ)."""
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and set(n.input) & dq_out]


def agreement(reference: np.ndarray, output: np.ndarray) -> Tuple[float, float]:
    """(cosine similarity, relative L2 error) of ``output`` against ``reference``."""
    a = np.asarray(reference, dtype=np.float64).ravel()
    b = np.asarray(output, dtype=np.float64).ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cos = float(a @ b) / (na * nb) if na and nb else (1.0 if na == nb else 0.0)
    rel = float(np.linalg.norm(a - b)) / na if na else float(np.linalg.norm(b))
    return cos, rel


def lsuv_weights(model, x: np.ndarray, target: float = 1.0, skip: Sequence[str] = ("dfl",)):
    """A copy of ``model`` whose Conv/ConvTranspose/Gemm weights are rescaled so that each
    one's output has standard deviation ``target`` over the images ``x`` (N, 3, H, W),
    layer after layer (LSUV, Mishkin & Matas 2016); nodes named with a ``skip`` word keep
    theirs (Ultralytics' DFL conv is a fixed integral, not a learnt layer).

    For measuring a conversion: a yolov8n built from its yaml has random weights that
    shrink activations ~3x per layer, so its outputs hardly depend on the input (two
    different images give outputs 1.5e-5 apart) and every conversion looks exact on it.
    One ONNX Runtime run does it: every output is divided by its own standard deviation
    inside the graph, in topological order, so each is measured on a network already
    rescaled upstream; only what the scales need is run, so the head's batch-1 reshapes
    do not stop a batch of N images."""
    onnx = _onnx()
    from onnx import helper, numpy_helper

    init = {t.name: t for t in model.graph.initializer}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    _name_nodes(probe)
    nodes, scales = [], {}
    for n in probe.graph.node:
        nodes.append(n)
        if n.op_type not in ("Conv", "ConvTranspose", "Gemm") or len(n.input) < 2 or n.input[1] not in init \
                or any(w in n.name for w in skip):
            continue
        t, p = n.output[0], n.name + "/lsuv"
        n.output[0] = raw = p + "/raw"
        probe.graph.initializer.append(numpy_helper.from_array(np.array(target, np.float32), p + "/target"))
        nodes += [helper.make_node("ReduceMean", [raw], [p + "/mean"], keepdims=1),
                  helper.make_node("Sub", [raw, p + "/mean"], [p + "/d"]),
                  helper.make_node("Mul", [p + "/d", p + "/d"], [p + "/d2"]),
                  helper.make_node("ReduceMean", [p + "/d2"], [p + "/var"], keepdims=1),
                  helper.make_node("Sqrt", [p + "/var"], [p + "/std"]),
                  helper.make_node("Div", [p + "/std", p + "/target"], [p + "/s"])]
        if len(n.input) > 2 and n.input[2] in init:  # (y - b) / s + b: the weights alone rescaled
            b = numpy_helper.to_array(init[n.input[2]])
            spatial = 0 if n.op_type == "Gemm" else len(init[n.input[1]].dims) - 2
            bshape = (1, -1) + (1,) * spatial
            probe.graph.initializer.append(numpy_helper.from_array(b.reshape(bshape).astype(np.float32), p + "/b"))
            nodes += [helper.make_node("Sub", [raw, p + "/b"], [p + "/nb"]),
                      helper.make_node("Div", [p + "/nb", p + "/s"], [p + "/q"]),
                      helper.make_node("Add", [p + "/q", p + "/b"], [t])]
        else:
            nodes.append(helper.make_node("Div", [raw, p + "/s"], [t]))
        scales[n.name] = p + "/s"
    need, kept = set(scales.values()), []
    for n in reversed(nodes):
        if set(n.output) & need:
            kept.append(n)
            need.update(i for i in n.input if i)
    del probe.graph.node[:]
    probe.graph.node.extend(reversed(kept))
    used = [t for t in probe.graph.initializer if t.name in need]  # ONNX Runtime 1.19 fails on unused ones
    del probe.graph.initializer[:]
    probe.graph.initializer.extend(used)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.ValueInfoProto(name=v) for v in scales.values())
    probe.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    names = list(scales.values())
    values = _session(probe.SerializeToString()).run(names, {probe.graph.input[0].name: x})
    out = onnx.ModelProto()
    out.CopyFrom(model)
    _name_nodes(out)
    by_name = {n.name: n for n in out.graph.node}
    out_init = {t.name: t for t in out.graph.initializer}
    for name, v in zip(scales, values):
        w_name = by_name[name].input[1]
        s = float(np.asarray(v).ravel()[0]) or 1.0
        w = numpy_helper.to_array(out_init[w_name]) / s
        out_init[w_name].CopyFrom(numpy_helper.from_array(w.astype(np.float32), w_name))
    return out


def _versions() -> Dict[str, str]:
    import onnxruntime as ort

    return {"onnxruntime": ort.__version__, "onnx": _onnx().__version__, "trb_convert": str(REVISION)}


def _settings(precision: str) -> Dict:
    if precision == "fp16":
        return {"data_max": DATA_MAX, "keep_io_types": True, "max_calib_images": MAX_CALIB_IMAGES,
                "dummy_seed": DUMMY_SEED}
    return {"op_types": list(QUANTIZE_OP_TYPES), "calibrate_method": CALIBRATE_METHOD, "per_channel": True,
            "extra_options": int8_extra_options([]), "max_calib_images": MAX_CALIB_IMAGES}


def _stamp(model, source, extra: Dict[str, str]) -> None:
    """The source's metadata (Ultralytics' names, imgsz, task, stride, kpt_shape, and
    trb_weights) on the converted model, plus ``extra``."""
    props = {p.key: p.value for p in source.metadata_props}
    props.update({p.key: p.value for p in model.metadata_props if p.key not in props})
    props.update(extra)
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    for attr in ("producer_name", "producer_version", "doc_string", "model_version"):
        if not getattr(model, attr) and getattr(source, attr):
            setattr(model, attr, getattr(source, attr))


def _read_cached(target: Path) -> Optional[Dict]:
    side = target.with_suffix(".json")
    try:
        info = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if not target.is_file() or info.get("sha256") != sha256_file(target):
        return None  # a file changed or removed by hand: convert again
    return {k: info.get(k) for k in _CONVERTED_KEYS}


def convert_model(src, precision: str, *, hw, task: Optional[str] = None, calib_images=None,
                  where: str = "model", out=None) -> Dict:
    """``src`` (an fp32 ONNX) converted to ``precision`` (fp16 | int8), cached in
    ``out`` or ``cache_dir()/"models"``; returns the ``converted`` record: path,
    precision, converter, converter_version, source_sha256, calib_sha256, n_calib,
    sha256, cached, convert_s. ``calib_images`` (a folder) is needed for int8 and used
    for fp16's reference run when given. A file that already carries ``precision`` is
    returned as it is."""
    if precision not in PRECISIONS:
        raise UserError(f"{where}.precision", f"{precision!r}, expected one of {', '.join(PRECISIONS)}")
    src = Path(src)
    source = _load(src, where)
    have = _precision_of(source)
    src_sha = sha256_file(src)
    if have == precision:
        return {"path": str(src.resolve()), "precision": precision,
                "converter": f"none (the ONNX already carries {precision})", "converter_version": "",
                "source_sha256": src_sha, "calib_sha256": None, "n_calib": 0, "sha256": src_sha,
                "cached": True, "convert_s": 0.0}
    if have != "fp32":
        raise UserError(f"{where}.precision", f"{src} already carries {have}; only an fp32 ONNX is converted "
                                              f"(to {precision}): give the fp32 export")
    calib_where = f"{where}.options.calib_images"
    if precision == "int8" and not calib_images:
        raise UserError(calib_where, "int8 conversion needs a folder of calibration images")
    files: List[Path] = []
    calib_sha = None
    if calib_images:
        every = list_images(str(calib_images), where=calib_where)
        calib_sha = _hash_images(Path(calib_images), every)
        files = _pick(every, MAX_CALIB_IMAGES)
    input_name, shape = _input_spec(source, hw, where)
    versions = _versions()
    key_inputs = {"source_sha256": src_sha, "precision": precision, "converter": "onnxruntime", **versions,
                  "settings": _settings(precision), "input_shape": list(shape),
                  "task": task if files else None, "calib_sha256": calib_sha}
    key = hashlib.sha256(json.dumps(key_inputs, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(out) if out else cache_dir() / "models"
    target = folder / f"{src.stem}-{precision}-{key}.onnx"
    cached = _read_cached(target)
    if cached is not None:
        cached["cached"] = True
        return cached

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_nodes = len(source.graph.node)
    ort_v = versions["onnxruntime"]
    images = f"{len(files)} images" if files else "a dummy input"
    _name_nodes(source)
    if precision == "fp16":
        amax = tensor_abs_max(source, _batches(files, shape, task))
        keep = fp16_block_list(source, amax)
        by_name = {n.name: n for n in source.graph.node}
        # each kept node with the largest |x| it saw (0: kept for its op type)
        detail = {"nodes_fp32": {k: max([amax.get(t, 0.0) for t in list(by_name[k].input) + list(by_name[k].output)])
                                 for k in keep}}
        converted = to_fp16(source, keep)
        converter = (f"onnxruntime {ort_v} float16, data_max {DATA_MAX:g} on {images}, "
                     f"{len(keep)} of {n_nodes} nodes kept fp32")
    else:
        with tempfile.TemporaryDirectory(prefix="trb-convert-") as tmp:
            named = Path(tmp) / "source.onnx"
            _onnx().save(source, str(named))
            qpath = Path(tmp) / "int8.onnx"
            quantize_int8(named, qpath, _batches(files, shape, task), input_name)
            converted = _onnx().load(str(qpath))
        quantized = _quantized_nodes(converted)
        detail = {"nodes_quantized": quantized}
        converter = (f"onnxruntime {ort_v} quantize_static QDQ int8 (per-channel symmetric weights, "
                     f"{CALIBRATE_METHOD} symmetric activations on {images}), "
                     f"{len(quantized)} of {n_nodes} nodes quantized")
    _stamp(converted, source, {PRECISION_KEY: precision, CONVERTER_KEY: converter, SOURCE_KEY: src_sha})
    write_atomic(target, lambda p: _onnx().save(converted, str(p)))
    record = {"path": str(target.resolve()), "precision": precision, "converter": converter,
              "converter_version": ", ".join(f"{k} {v}" for k, v in versions.items()),
              "source_sha256": src_sha, "calib_sha256": calib_sha, "n_calib": len(files),
              "sha256": sha256_file(target), "cached": False, "convert_s": round(time.perf_counter() - t0, 3)}
    side = dict(record, key=key_inputs, **detail)
    write_atomic(target.with_suffix(".json"), json.dumps(side, indent=1, sort_keys=True).encode())
    return record
