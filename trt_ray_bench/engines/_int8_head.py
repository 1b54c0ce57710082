"""Which layers of an Ultralytics network INT8 by TensorRT's calibrator keeps out of INT8.

TensorRT's calibrator (implicit quantization, weak typing) lets the builder run any layer
in INT8, the output concatenation of a detection head included. TensorRT gives a
concatenation's inputs the concatenation's scale, and a head's output concatenation joins
boxes (pixels, up to the image size) and class scores (0 to 1): one INT8 step of about
imgsz / 127 rounds every score to 0. The rule keeps that from happening; it is not all a
calibrated detector needs: on TensorRT 8.6.0 a 320-pixel yolov8n calibrated by entropy with
the rule (the inspector showed its layers as asked) still lost its class scores (cosine
0.027), as it had on 8.5.3.1 without it (0.023), which is why the calibrator is min-max by
default (``_trt_build.CALIBRATORS``): with the rule and min-max, 8.5.3.1 kept them (0.973).

The rule (``head_rule``), on the last ``/model.N/`` module of the layer names (the head):

* Ultralytics' own (its exporter, 8.4.91 and later): the head's Sigmoid layers in FP32,
  its output convolutions (``.2/Conv``) and DFL convolution in FP16;
* beyond it: the head's decoding (the layers directly in the head module or its DFL:
  reshapes, concatenations, the DFL softmax, the box arithmetic) and every layer that
  writes a network output in FP32.

Layers with a non-float output (shape arithmetic) and constants are left alone, and so is a
network without ``/model.N/`` names. ``benchmarks/int8_head_rule.py`` measures the rule on
ONNX Runtime's INT8 (every operator quantized, as the calibrator may), where the same
zeros appear: ``onnx_layers`` gives it the rule's layers by ONNX node name, which is the
layer name TensorRT's ONNX parser gives.
"""

from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Sequence

#: the rule ``head_rule`` applies (part of a calibrated engine's cache key)
HEAD_RULE = ("ultralytics head: sigmoid fp32, output convolutions and dfl fp16; "
             "its decoding and the layers writing the outputs fp32")
_MODULE = re.compile(r"/model\.(\d+)/")


class Layer(NamedTuple):
    """What the rule reads of one layer."""

    name: str
    kind: str  # "convolution", "sigmoid" (an activation named so), "constant" or "other"
    float_out: bool  # every output is a float tensor (not shape arithmetic)
    writes_output: bool  # one of its outputs is a network output


def _decodes(name: str, head: str) -> bool:
    """A layer of the head's decoding: directly in the head module (``/model.22/Concat_3``)
    or in its DFL (``/model.22/dfl/Softmax``), not in a convolution branch
    (``/model.22/cv3.0/...``, ``/model.22/proto/...``) nor the DFL's convolution."""
    rest = name[name.index(head) + len(head):]
    if rest.startswith("dfl/"):
        rest = rest[len("dfl/"):]
    return "/" not in rest


def head_rule(layers: Sequence[Layer], ultralytics_only: bool = False) -> Dict[str, str]:
    """``{layer name: "fp32" | "fp16"}`` of the layers kept out of INT8, in network order;
    empty for a network without ``/model.N/`` names. ``ultralytics_only``: Ultralytics'
    part alone (the benchmarks compare the two)."""
    found = [int(m.group(1)) for m in (_MODULE.search(x.name) for x in layers) if m]
    if not found:
        return {}
    head = f"/model.{max(found)}/"
    kept: Dict[str, str] = {}
    for x in layers:
        if x.kind == "constant" or not x.float_out or (head not in x.name and not x.writes_output):
            continue
        inside = head in x.name
        if inside and x.kind == "sigmoid":
            kept[x.name] = "fp32"
        elif inside and x.kind == "convolution" and (x.name.endswith(".2/Conv") or "/dfl/" in x.name):
            kept[x.name] = "fp16"  # Ultralytics' FP16, an output convolution writing the output too
        elif ultralytics_only:
            continue
        elif x.writes_output or (inside and x.kind != "convolution" and _decodes(x.name, head)):
            kept[x.name] = "fp32"
    return kept


_ONNX_FLOAT = (1, 10, 16)  # float, float16, bfloat16
_ONNX_KIND = {"Conv": "convolution", "Sigmoid": "sigmoid", "Constant": "constant"}


def onnx_layers(model) -> List[Layer]:
    """The rule's view of an ONNX model's nodes (an ``onnx.ModelProto``): each node as the
    layer TensorRT's parser makes of it, its output types from ONNX's shape inference."""
    import onnx

    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
    types.update((v.name, v.type.tensor_type.elem_type)
                 for v in onnx.shape_inference.infer_shapes(model).graph.value_info)
    outputs = {o.name for o in g.output}
    return [Layer(n.name, _ONNX_KIND.get(n.op_type, "other"),
                  all(types.get(o, 1) in _ONNX_FLOAT for o in n.output), bool(outputs & set(n.output)))
            for n in g.node]
