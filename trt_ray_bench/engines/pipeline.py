"""The users' "predict in a loop", measured: per image, load -> preprocess -> inference
-> postprocess, each stage timed on the host clock, the pre- and postprocessing being
Ultralytics' own functions (LetterBox / classify_transforms, non_max_suppression,
scale_boxes, process_mask, scale_coords), on any backend runner.

A ``PipelineRunner`` wraps a backend runner and is itself a runner for
``timing.run_loop``: ``infer(i)`` runs the whole pipeline for image ``i`` and waits for
its outputs (postprocessing reads them), so the loop's ``synchronize`` has nothing left
to wait for. Stage times come back through ``stage_times_ms()``:

  load_ms   decode the file (Ultralytics' ``imread``: BGR uint8), as its predictor does
  pre_ms    letterbox (detect, pose, segment, obb) or resize + centre crop (classify),
            BGR -> RGB, HWC -> NCHW, 0..255 -> 0..1, on the host
  infer_ms  the backend: input to the device, inference, outputs back, synchronised
  post_ms   NMS with the task's arguments and scaling back to the original image

The backend needs one method more than the timing loop does (``run_array``, see
``run_array`` below); the ONNX Runtime runner is served through its session until it
has its own.
"""

from __future__ import annotations

import ast
import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UserError, lazy_import
from ..models import inspect_onnx
from . import load_runner

STAGES = ("load_ms", "pre_ms", "infer_ms", "post_ms")
#: Ultralytics' predict defaults
CONF, IOU, MAX_DET = 0.25, 0.7, 300

Image = Union[str, Path, np.ndarray]


# --------------------------------------------------------------------------- backend seam
def run_array(runner, x: np.ndarray) -> list:
    """One inference of ``runner`` on a new input ``x`` (N, 3, H, W); returns its outputs
    in the ONNX graph's order (``output0``, ``output1``) as host arrays (NumPy, or CPU
    torch tensors) that are valid once ``runner.synchronize(how)`` has returned.

    A runner provides this as ``run_array(x)``. The ONNX Runtime runner, until it has
    one, is run through its session (``run()`` is synchronous and returns the outputs).
    """
    method = getattr(runner, "run_array", None)
    if method is not None:
        return method(x)
    sess = getattr(runner, "_sess", None)
    if sess is not None and getattr(runner, "backend", None) == "onnxruntime":
        return sess.run(None, {runner._input: x})
    raise UserError(f"backend {getattr(runner, 'backend', type(runner).__name__)}",
                    "cannot run a pipeline: the runner has no run_array(x) (a new input per inference)")


def module_outputs(y) -> list:
    """An Ultralytics ``nn.Module``'s eval-mode output as the exported graph's outputs:
    ``(pred, extras)`` -> ``[pred]``, segment's ``((pred, protos), extras)`` ->
    ``[pred, protos]``, classify's ``(probs, logits)`` -> ``[probs]``. For the torch runner."""
    head = y[0] if isinstance(y, (list, tuple)) else y
    return list(head) if isinstance(head, (list, tuple)) else [head]


# --------------------------------------------------------------------------- model head facts
@dataclass(frozen=True)
class Head:
    """What postprocessing needs to know about the model, from its export metadata."""

    names: Optional[Dict[int, str]] = None
    kpt_shape: Optional[Tuple[int, int]] = None
    end2end: bool = False


def _literal(v):
    if isinstance(v, str):
        try:
            return ast.literal_eval(v)
        except (ValueError, SyntaxError):
            return v
    return v


def head_info(model, inner=None) -> Head:
    """Read names, keypoint shape and end-to-end NMS from the ONNX metadata Ultralytics
    writes (as its AutoBackend does), or from the torch runner's module (``inner.net``)."""
    meta: dict = {}
    if getattr(model, "onnx_path", ""):
        meta = inspect_onnx(Path(model.onnx_path), f"models.{model.name}.path")["meta"]
    elif getattr(inner, "net", None) is not None:
        net = inner.net
        meta = {"names": getattr(net, "names", None), "kpt_shape": getattr(net, "kpt_shape", None)
                or (getattr(net, "yaml", None) or {}).get("kpt_shape"), "end2end": getattr(net, "end2end", False)}
    names = _literal(meta.get("names"))
    kpt = _literal(meta.get("kpt_shape"))
    args = _literal(meta.get("args")) or {}
    end2end = bool(_literal(meta.get("end2end", False)) or (isinstance(args, dict) and args.get("nms")))
    return Head(names=dict(names) if isinstance(names, dict) else None,
                kpt_shape=tuple(int(k) for k in kpt) if kpt else None, end2end=end2end)


# --------------------------------------------------------------------------- stages
def load_image(src: Image) -> np.ndarray:
    """Decode like Ultralytics' image loader: BGR uint8 (H, W, 3). An array is taken as is."""
    if isinstance(src, np.ndarray):
        return src
    from ultralytics.utils.patches import imread

    im = imread(str(src))
    if im is None:
        raise UserError(str(src), "cannot decode the image")
    if im.ndim == 2:
        im = im[..., None].repeat(3, axis=2)
    return im


def _to_input(hwc_bgr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """BGR HWC uint8 -> RGB NCHW in ``dtype``, 0..1 (uint8 inputs stay 0..255), as
    ``BasePredictor.preprocess`` does on the device."""
    x = hwc_bgr[None, :, :, ::-1].transpose(0, 3, 1, 2)
    if dtype == np.uint8:
        return np.ascontiguousarray(x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x /= np.float32(255.0)
    return x if dtype == np.float32 else x.astype(dtype)


class LetterboxPre:
    """Detect, pose, segment, obb: Ultralytics' ``LetterBox`` to the model's fixed size
    (``auto=False``, as its predictor does for an exported model), grey 114 padding."""

    def __init__(self, hw: Tuple[int, int], dtype: np.dtype):
        from ultralytics.data.augment import LetterBox

        self._letterbox = LetterBox(tuple(hw), auto=False)
        self._dtype = dtype

    def __call__(self, im: np.ndarray) -> np.ndarray:
        return _to_input(self._letterbox(image=im), self._dtype)


class ClassifyPre:
    """Classify: ``classify_transforms(imgsz)`` split as Ultralytics' predictor splits it
    (Resize + CenterCrop on the host, then the tensor conversion and Normalize)."""

    def __init__(self, hw: Tuple[int, int], dtype: np.dtype):
        import torchvision.transforms as T
        from ultralytics.data.augment import classify_transforms

        tfl = classify_transforms(list(hw)).transforms
        self._host = T.Compose([t for t in tfl if isinstance(t, (T.Resize, T.CenterCrop))])
        norm = next((t for t in tfl if isinstance(t, T.Normalize)), None)
        mean = np.asarray(norm.mean if norm is not None else 0.0, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(norm.std if norm is not None else 1.0, dtype=np.float32).reshape(1, -1, 1, 1)
        self._norm = None if (np.all(mean == 0) and np.all(std == 1)) else (mean, std)
        self._dtype = dtype

    def __call__(self, im: np.ndarray) -> np.ndarray:
        from PIL import Image as PILImage

        # PIL sees BGR as RGB: resizing is per channel, so the order is kept, as in Ultralytics.
        x = _to_input(np.asarray(self._host(PILImage.fromarray(im))), np.dtype(np.float32))
        if self._norm is not None:
            x = (x - self._norm[0]) / self._norm[1]
        return x if self._dtype == np.float32 else x.astype(self._dtype)


# --------------------------------------------------------------------------- postprocess
@dataclass(frozen=True)
class _Ctx:
    in_hw: Tuple[int, int]  # the network input (letterboxed) size
    orig_hw: Tuple[int, int]  # the decoded image
    head: Head


def _nms_fn():
    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:  # Ultralytics < 8.3.x keeps it in ops
        from ultralytics.utils.ops import non_max_suppression
    return non_max_suppression


def _boxes(det, outs, c: _Ctx):
    from ultralytics.utils import ops

    det[:, :4] = ops.scale_boxes(c.in_hw, det[:, :4], c.orig_hw)
    return det[:, :6].numpy()


def _keypoints(det, outs, c: _Ctx):
    from ultralytics.utils import ops

    kpts = det[:, 6:].reshape(det.shape[0], *c.head.kpt_shape)
    kpts = ops.scale_coords(c.in_hw, kpts, c.orig_hw)
    return _boxes(det, outs, c), kpts.numpy()


def _masks(det, outs, c: _Ctx):
    # SegmentationPredictor.construct_result (retina_masks=False): masks at the input
    # size, then boxes scaled; boxes whose mask is empty dropped. Masks are then taken
    # to the image's pixels with scale_masks (what Results.masks.xy amounts to).
    import torch
    from ultralytics.utils import ops

    h, w = c.orig_hw
    if det.shape[0] == 0:
        return np.zeros((0, 6), np.float32), np.zeros((0, h, w), bool)
    protos = torch.as_tensor(next(o for o in outs if o.ndim == 4))[0].float()
    masks = ops.process_mask(protos, det[:, 6:], det[:, :4], c.in_hw, upsample=True)
    det[:, :4] = ops.scale_boxes(c.in_hw, det[:, :4], c.orig_hw)
    keep = masks.amax((-2, -1)) > 0
    if not keep.all():
        det, masks = det[keep], masks[keep]
    full = ops.scale_masks(masks[None].float(), c.orig_hw)[0] > 0.5
    return det[:, :6].numpy(), full.numpy()


def _rboxes(det, outs, c: _Ctx):
    # OBBPredictor.construct_result: xywh + angle (last column), scaled as xywh.
    import torch
    from ultralytics.utils import ops

    rb = torch.cat([det[:, :4], det[:, -1:]], dim=-1)
    rb[:, :4] = ops.scale_boxes(c.in_hw, rb[:, :4], c.orig_hw, xywh=True)
    return torch.cat([rb, det[:, 4:6]], dim=-1).numpy()


@dataclass(frozen=True)
class _TaskPost:
    """One task's postprocess: whether (and how) NMS runs, then how its kept rows become
    the prediction in the image's pixels."""

    nms: bool
    rotated: bool = False
    #: DetectionPredictor passes nc=0 (inferred from the output) for detect only
    nc_from_names: bool = True
    finish: Optional[Callable] = None


POSTPROCESS: Dict[str, _TaskPost] = {
    "classify": _TaskPost(nms=False),
    "detect": _TaskPost(nms=True, nc_from_names=False, finish=_boxes),
    "pose": _TaskPost(nms=True, finish=_keypoints),
    "segment": _TaskPost(nms=True, finish=_masks),
    "obb": _TaskPost(nms=True, rotated=True, finish=_rboxes),
}


def _nc(task: str, head: Head, pred_channels: int, outs) -> int:
    """Number of classes for NMS: from the names where known, else from the shapes."""
    if head.names:
        return len(head.names)
    extra = {"segment": next((o.shape[1] for o in outs if o.ndim == 4), 32),
             "pose": int(np.prod(head.kpt_shape or (17, 3))), "obb": 1}.get(task, 0)
    return pred_channels - 4 - extra


class Postprocess:
    """The task's Ultralytics postprocessing with the predictor's arguments."""

    def __init__(self, task: str, head: Head, conf: float, iou: float, max_det: int,
                 classes: Optional[Sequence[int]] = None, agnostic_nms: bool = False):
        import torch

        try:  # Ultralytics' NMS uses torchvision's kernel where it is imported, as its predictor does
            import torchvision  # noqa: F401
        except ImportError:  # pragma: no cover - Ultralytics falls back to its own NMS
            pass
        if task == "pose" and head.kpt_shape is None:
            head = Head(names=head.names, kpt_shape=(17, 3), end2end=head.end2end)
        self.task, self.head, self._torch = task, head, torch
        self.spec = POSTPROCESS[task]
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.classes, self.agnostic = (list(classes) if classes is not None else None), agnostic_nms
        self._nms = _nms_fn() if self.spec.nms else None

    def __call__(self, outs: list, in_hw: Tuple[int, int], orig_hw: Tuple[int, int]):
        torch = self._torch
        if not self.spec.nms:  # classify: the head's softmax output is the probabilities
            # a copy: a backend may reuse its output buffer for the next inference
            return np.array(torch.as_tensor(outs[0])[0].float().numpy())
        pred = torch.as_tensor(next(o for o in outs if o.ndim == 3)).float()
        nc = _nc(self.task, self.head, pred.shape[1], outs) if self.spec.nc_from_names else 0
        det = self._nms(pred, self.conf, self.iou, self.classes, self.agnostic, max_det=self.max_det, nc=nc,
                        end2end=self.head.end2end, rotated=self.spec.rotated)[0]
        return self.spec.finish(det, outs, _Ctx(tuple(in_hw), tuple(orig_hw[:2]), self.head))


#: what ``preload`` imports: the pre/postprocessing's and the metrics' libraries
PRELOADED = ("torch", "torchvision", "ultralytics", "ultralytics.data.augment", "ultralytics.utils.ops",
             "ultralytics.utils.metrics", "ultralytics.engine.validator")


def preload() -> None:
    """Import what the pipeline and its metrics use (Ultralytics, torch, torchvision: seconds
    on a board's CPU), so that a model's first pipeline or validation phase does not pay for
    it and the models of a run import at once, each in its own process. Where one does not
    import, nothing happens here: the phase that needs it says why, in one line."""
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed, or broken: left to the phase that needs it
            pass


# --------------------------------------------------------------------------- the runner
class PipelineRunner:
    """A backend runner wrapped into the whole per-image pipeline (see the module doc).

    ``inner_runner``: a loaded backend runner; ``model``: its ``models.ResolvedModel``;
    ``task``: classify | detect | pose | segment | obb (default: the model's);
    ``names``: class names (default: from the export metadata). ``conf``, ``iou``,
    ``max_det``, ``classes``, ``agnostic_nms`` as Ultralytics' predict. ``sync``: how
    ``infer`` waits for the backend (device | stream; ``none`` cannot be: the
    postprocess reads the outputs).
    """

    def __init__(self, inner_runner, model, task: Optional[str] = None, names: Optional[Dict[int, str]] = None, *,
                 conf: float = CONF, iou: float = IOU, max_det: int = MAX_DET,
                 classes: Optional[Sequence[int]] = None, agnostic_nms: bool = False, sync: str = "device"):
        lazy_import("ultralytics", "ultralytics", "the predict pipeline (Ultralytics pre/postprocessing)")
        where = f"models.{getattr(model, 'name', '?')}"
        task = task or getattr(model, "task", None)
        if task not in POSTPROCESS:
            raise UserError(f"{where}.task", f"{task!r}: the pipeline needs one of {', '.join(POSTPROCESS)}")
        if getattr(model, "batch", 1) != 1:
            raise UserError(f"{where}.batch", "the pipeline runs one image per inference: batch must be 1")
        if sync not in ("device", "stream"):
            raise UserError("timing.sync", f"{sync!r}: a pipeline reads its outputs, so it waits (device or stream)")
        if not 0 <= conf <= 1 or not 0 <= iou <= 1 or max_det < 1:
            raise UserError(f"{where}.pipeline", f"conf and iou must be in 0..1 and max_det >= 1 "
                            f"(got conf={conf}, iou={iou}, max_det={max_det})")
        self.inner = inner_runner
        self.model = model
        self.task = task
        head = head_info(model, inner_runner)
        if names is not None:
            head = Head(names=dict(names), kpt_shape=head.kpt_shape, end2end=head.end2end)
        self.names = head.names
        self.sync = sync
        self.backend = getattr(inner_runner, "backend", "")
        hw = tuple(model.hw)
        dtype = np.dtype(getattr(model, "input_dtype", "float32") or "float32")
        self._input_shape = (1, 3, hw[0], hw[1])
        self._input_dtype = dtype
        self._pre = ClassifyPre(hw, dtype) if task == "classify" else LetterboxPre(hw, dtype)
        self._post = Postprocess(task, head, conf, iou, max_det, classes, agnostic_nms)
        self._images: List[Image] = []
        self.n_inputs = 0
        self._times: Dict[str, List[float]] = {k: [] for k in STAGES}
        self._reported: Dict[str, List[float]] = {}
        self._last = None

    # ------------------------------------------------------------------ inputs
    def prepare(self, images: Sequence[Image]) -> None:
        """The images the loop cycles through (files, or decoded BGR arrays). Each file is
        decoded once here so that a bad one fails before timing; the backend is prepared
        with a blank input (engines allocate, capture graphs)."""
        images = list(images)
        if not images:
            raise UserError("input", "the pipeline needs at least one image")
        for src in images:
            load_image(src)
        self._images = images
        self.n_inputs = len(images)
        blank = np.zeros(self._input_shape, dtype=self._input_dtype)
        if hasattr(self.inner, "prepare") and not getattr(self.inner, "n_inputs", 0):
            self.inner.prepare([blank])  # an inner runner already prepared keeps its inputs

    def preprocess(self, im: np.ndarray) -> np.ndarray:
        """The pre stage alone: a decoded BGR image -> the network input (1, 3, H, W)."""
        return self._pre(im)

    def postprocess(self, outs: list, in_hw: Tuple[int, int], orig_hw: Tuple[int, int]):
        """The post stage alone: the backend's outputs -> the prediction in image pixels."""
        return self._post(outs, in_hw, orig_hw)

    # ------------------------------------------------------------------ timing
    def infer(self, index: int) -> None:
        clock = time.perf_counter_ns
        src = self._images[index % self.n_inputs]
        t0 = clock()
        im0 = load_image(src)
        t1 = clock()
        x = self._pre(im0)
        t2 = clock()
        outs = run_array(self.inner, x)
        self.inner.synchronize(self.sync)
        t3 = clock()
        self._last = self._post(outs, x.shape[2:], im0.shape[:2])
        t4 = clock()
        tm = self._times
        tm["load_ms"].append((t1 - t0) / 1e6)
        tm["pre_ms"].append((t2 - t1) / 1e6)
        tm["infer_ms"].append((t3 - t2) / 1e6)
        tm["post_ms"].append((t4 - t3) / 1e6)

    def synchronize(self, how: str) -> None:
        pass  # infer waited for its outputs: the postprocess needs them

    def gpu_times_ms(self) -> Optional[List[float]]:
        """The backend's GPU times of the calls since the last call (``None`` without a GPU
        timer); the stage times of the same calls are kept for ``stage_times_ms``."""
        gpu = self.inner.gpu_times_ms()
        inner_stages = {}
        if gpu is not None and hasattr(self.inner, "stage_times_ms"):
            inner_stages = dict(self.inner.stage_times_ms())
        self._reported = {**inner_stages, **self._times}
        self._times = {k: [] for k in STAGES}
        return gpu

    def stage_times_ms(self) -> Dict[str, List[float]]:
        """Host stage times (``load_ms``, ``pre_ms``, ``infer_ms``, ``post_ms``) of the calls
        reported by the last ``gpu_times_ms``, with the backend's GPU stages where it has them."""
        out, self._reported = self._reported, {}
        return out

    def last_predictions(self):
        """The last image's prediction, in the original image's pixels: classify ->
        probabilities (C,); detect -> (N, 6) xyxy conf cls; pose -> ((N, 6), (N, K, 3));
        segment -> ((N, 6), (N, H, W) bool); obb -> (N, 7) xywhr conf cls."""
        return self._last

    def describe(self) -> dict:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


def load_pipeline(model, images: Sequence[Image], **options) -> PipelineRunner:
    """Load ``model``'s backend runner, wrap it in a pipeline and prepare ``images``."""
    runner = PipelineRunner(load_runner(model), model, **options)
    runner.prepare(images)
    return runner
