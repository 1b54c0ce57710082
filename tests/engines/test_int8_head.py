"""Which layers INT8 by TensorRT's calibrator keeps out of INT8 on an Ultralytics network
(``engines._int8_head``), measured on real INT8 inference here: ONNX Runtime's, with every
operator quantized as TensorRT's calibrator may (``quantize_static`` without an operator
list, calibrated by entropy like TensorRT's), on real yolov8n exports whose weights are
LSUV-rescaled so that the outputs depend on the image (``models._convert.lsuv_weights``).
The layers the rule names are the nodes left in float. TensorRT itself runs these layers
on a GPU only (``tests/gpu/test_tensorrt.py``); ``tests/engines/test_trt_api.py`` checks
that the TensorRT network gets the same layers, by name."""

from pathlib import Path

import numpy as np
import pytest

from trt_ray_bench.engines._int8_head import head_rule, onnx_layers
from trt_ray_bench.models._convert import agreement
from trt_ray_bench.models._inputs import list_images, load_images

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from trt_ray_bench.validation import make_synthetic

    folder = tmp_path_factory.mktemp("int8_head")
    make_synthetic("detect", folder / "calib", n=16, imgsz=(120, 160), seed=0)
    make_synthetic("detect", folder / "eval", n=4, imgsz=(120, 160), seed=1)
    return folder


def _int8(onnx_path: Path, folder: Path, task: str, hw, tmp_path: Path):
    """The LSUV model's outputs in float and in ONNX Runtime's INT8: every operator
    quantized, then again with the rule's layers left in float; and the rule."""
    import onnx
    import onnxruntime as ort

    from trt_ray_bench.models._convert import lsuv_weights, quantize_every_op

    calib = load_images(list_images(str(folder / "calib")), hw, task)
    x = load_images(list_images(str(folder / "eval")), hw, task)
    lively = tmp_path / "lively.onnx"
    model = lsuv_weights(onnx.load(str(onnx_path)), calib[:8])
    onnx.save(model, str(lively))
    rule = head_rule(onnx_layers(model))

    def run(path):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])

    outs = {}
    for label, keep in (("all", []), ("rule", sorted(rule))):
        out = tmp_path / f"{label}.onnx"
        quantize_every_op(lively, out, (calib[i:i + 1] for i in range(len(calib))), model.graph.input[0].name, keep)
        outs[label] = run(out)
    return run(lively), outs, rule


def _cos(a, b) -> float:
    return agreement(a, b)[0]


def test_the_rule_keeps_a_detectors_class_scores(det_onnx, images, tmp_path):
    """Every operator in INT8 rounds the class scores to zero: the output concatenation's
    scale is the boxes' (pixels). With the rule's layers in float the scores stay close to
    float's (0.90 measured), and the boxes closer than all-INT8's. The premise is checked
    too: were all-INT8 to keep the scores, this test would not test the rule."""
    ref, y, rule = _int8(det_onnx, images, "detect", (96, 96), tmp_path)
    assert rule["/model.22/Concat_3"] == "fp32" and rule["/model.22/dfl/conv/Conv"] == "fp16"
    scores = {k: _cos(ref[:, 4:], v[:, 4:]) for k, v in y.items()}
    assert scores["all"] < 0.2, scores
    assert scores["rule"] >= 0.8, scores
    assert _cos(ref[:, :4], y["rule"][:, :4]) >= _cos(ref[:, :4], y["all"][:, :4]), "boxes"


def test_the_rule_keeps_a_classifiers_probabilities(cls_onnx, images, tmp_path):
    """A classifier's head keeps its Softmax (the output) and Flatten in float, and Ultralytics'
    Sigmoid (its SiLU's); the probabilities stay closer to float's than all-INT8's do."""
    ref, y, rule = _int8(cls_onnx, images, "classify", (64, 64), tmp_path)
    assert rule == {"/model.9/conv/act/Sigmoid": "fp32", "/model.9/Flatten": "fp32", "/model.9/Softmax": "fp32"}
    probs = {k: _cos(ref, v) for k, v in y.items()}
    assert probs["rule"] >= 0.95 and probs["rule"] > probs["all"], probs


def test_a_network_without_module_names_keeps_nothing_out():
    from trt_ray_bench.engines._int8_head import Layer

    assert head_rule([Layer("conv", "convolution", True, False), Layer("out", "other", True, True)]) == {}
    # shape arithmetic and constants of the head are left alone; a layer outside it that
    # writes an output is kept in FP32
    layers = [Layer("/model.3/Mul", "other", False, False), Layer("/model.3/Constant", "constant", True, False),
              Layer("/model.3/cv2/Conv", "convolution", True, False), Layer("/model.3/Concat", "other", True, False),
              Layer("/model.1/Softmax", "other", True, True)]
    assert head_rule(layers) == {"/model.3/Concat": "fp32", "/model.1/Softmax": "fp32"}
    # Ultralytics' part alone: the head's Sigmoid and output convolutions, not the decoding
    layers += [Layer("/model.3/Sigmoid", "sigmoid", True, False), Layer("/model.3/cv3.0.2/Conv", "convolution", True,
                                                                        False)]
    assert head_rule(layers, ultralytics_only=True) == {"/model.3/Sigmoid": "fp32", "/model.3/cv3.0.2/Conv": "fp16"}
