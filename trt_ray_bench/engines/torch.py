"""PyTorch backend: the Ultralytics model's ``nn.Module`` run eagerly (or replayed from a
captured CUDA graph), on the GPU when there is one, timed with CUDA events on its own
stream. The baseline of the users' "TensorRT vs X" study.

Options: ``device`` (auto | cuda | cpu), ``cuda_graph`` (false)."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..errors import UserError, lazy_import
from ..timing import BaseRunner, EventRing
from .pipeline import module_outputs

_KNOWN = {"device", "cuda_graph"}

NAME = "torch"
USES_ONNX = False  # runs the Ultralytics module itself


def available() -> None:
    lazy_import("torch", "torch", "the torch backend")
    lazy_import("ultralytics", "ultralytics", "building the model for the torch backend")


def needs_gpu(model) -> bool:
    return model.options.get("device", "auto") != "cpu"


def has_build_step(model) -> bool:
    return False


def exports_dynamic(spec) -> bool:
    return False


def made_files(model) -> list:
    return []


def check(model, where: str = "") -> None:
    where = where or f"models.{model.name}"
    unknown = set(model.options) - _KNOWN
    if unknown:
        raise UserError(f"{where}.options", f"unknown torch option(s) {sorted(unknown)}; known: {sorted(_KNOWN)}")
    if model.options.get("device", "auto") not in ("auto", "cuda", "cpu"):
        raise UserError(f"{where}.options.device", f"{model.options['device']!r}, expected auto, cuda or cpu")
    if str(model.source).endswith((".onnx", ".engine", ".plan")):
        raise UserError(f"{where}.path", "the torch backend runs an Ultralytics .pt or .yaml (or arch), not "
                        f"{model.source}")
    if model.precision == "int8":
        raise UserError(f"{where}.precision", "the torch backend runs fp32 or fp16")
    if model.options.get("cuda_graph") and model.options.get("device") == "cpu":
        raise UserError(f"{where}.options.cuda_graph", "CUDA graphs need device cuda")


def prepare(model, where: str = ""):
    return model


class TorchRunner(BaseRunner):
    backend = "torch"

    def __init__(self, model):
        torch = lazy_import("torch", "torch", "the torch backend")
        ul = lazy_import("ultralytics", "ultralytics", "building the model for the torch backend")
        self.torch = torch
        want = model.options.get("device", "auto")
        if want == "cuda" and not torch.cuda.is_available():
            raise UserError(f"models.{model.name}.options.device", "cuda requested but torch sees no GPU")
        self.device = torch.device("cuda" if (want != "cpu" and torch.cuda.is_available()) else "cpu")
        self.dtype = torch.float16 if model.precision == "fp16" else torch.float32
        if self.dtype == torch.float16 and self.device.type == "cpu":
            raise UserError(f"models.{model.name}.precision", "fp16 needs a GPU for the torch backend")
        net = ul.YOLO(model.source, task=model.task).model
        net = net.fuse() if hasattr(net, "fuse") else net
        self.net = net.eval().to(self.device, self.dtype)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream() if self.cuda else None
        self.graph_wanted = bool(model.options.get("cuda_graph", False))
        self._graph = None
        self._events = None  # the EventRing, made by reserve()
        self._recorded = 0  # ring slots whose events reserve() recorded once (torch makes them then)
        self._poke = None  # poke()'s one-element tensor, made by reserve()
        self.n_inputs = 0
        self.model = model

    def prepare(self, inputs: Sequence[np.ndarray]) -> None:
        t = self.torch
        self._inputs = [t.from_numpy(np.ascontiguousarray(x)).to(self.device, self.dtype) for x in inputs]
        self.n_inputs = len(self._inputs)
        with t.inference_mode():
            self.net(self._inputs[0])
        if self.graph_wanted:
            self._static = self._inputs[0].clone()
            side = t.cuda.Stream()
            side.wait_stream(t.cuda.current_stream())
            with t.cuda.stream(side), t.inference_mode():
                for _ in range(3):
                    self.net(self._static)
            t.cuda.current_stream().wait_stream(side)
            self._graph = t.cuda.CUDAGraph()
            with t.cuda.graph(self._graph, stream=self.stream), t.inference_mode():
                self._static_out = self.net(self._static)
        if self.cuda:
            t.cuda.synchronize()

    def reserve(self, n: int) -> Optional[int]:
        """The ring of CUDA events (``n`` slots, at least ``EVENT_RING``, at most
        ``EVENT_RING_MAX``), made before timing (``run_loop`` calls it) and recycled:
        nothing is created inside a timed inference, and a long run holds no more events
        than its largest phase asked for. torch creates a CUDA event at its first
        ``record``, so every new one is recorded once here. Returns the capacity (None
        without a GPU); an inference past it records no events (NaN GPU time)."""
        if not self.cuda:
            return None
        ring = self._ring()
        cap = ring.reserve(n)
        if self._recorded < len(ring.slots):
            for slot in ring.slots[self._recorded:]:
                for e in slot:
                    e.record(self.stream)
            self._recorded = len(ring.slots)
            self.stream.synchronize()
        if self._poke is None:
            self._poke = self.torch.zeros(1, device=self.device)
        return cap

    def _ring(self):
        if self._events is None:
            E = self.torch.cuda.Event
            self._events = EventRing(lambda: E(enable_timing=True), lambda e: (e[0].elapsed_time(e[1]),), 2)
            self._recorded = 0
        return self._events

    def _next_events(self) -> Optional[tuple]:
        """The next slot of the ring; None past a reserved ring's capacity (no GPU time)."""
        return self._ring().next()

    def poke(self) -> None:
        """A one-element fill on this runner's stream, waited for (nothing without a GPU)."""
        if not self.cuda:
            return
        if self._poke is None:
            self._poke = self.torch.zeros(1, device=self.device)
        with self.torch.cuda.stream(self.stream):
            self._poke.fill_(0)
        self.stream.synchronize()

    def infer(self, index: int) -> None:
        t = self.torch
        if not self.cuda:
            with t.inference_mode():
                self.net(self._inputs[index])
            return
        ev = self._next_events()
        with t.cuda.stream(self.stream), t.inference_mode():
            if ev is not None:
                ev[0].record(self.stream)
            if self._graph is not None:
                self._static.copy_(self._inputs[index], non_blocking=True)
                self._graph.replay()
            else:
                self.net(self._inputs[index])
            if ev is not None:
                ev[1].record(self.stream)

    def run_array(self, x: np.ndarray) -> list:
        """One inference on a new image (the pipeline's call); outputs as CPU tensors,
        readable after ``synchronize``."""
        t = self.torch
        src = t.from_numpy(np.ascontiguousarray(x))
        if not self.cuda:
            with t.inference_mode():
                return [o.float() for o in module_outputs(self.net(src.to(self.device, self.dtype)))]
        ev = self._next_events()
        with t.cuda.stream(self.stream), t.inference_mode():
            if ev is not None:
                ev[0].record(self.stream)
            xd = src.to(self.device).to(self.dtype)
            if self._graph is not None:
                self._static.copy_(xd)
                self._graph.replay()
                y = self._static_out
            else:
                y = self.net(xd)
            outs = [o.to("cpu", non_blocking=True) for o in module_outputs(y)]
            if ev is not None:
                ev[1].record(self.stream)
        return outs

    def synchronize(self, how: str) -> None:
        if not self.cuda:
            return
        if how == "device":
            self.torch.cuda.synchronize()  # cudaDeviceSynchronize on the current device
        elif how == "stream":
            self.stream.synchronize()

    def gpu_times_ms(self) -> Optional[List[float]]:
        """The GPU times of the calls since the last call (NaN for a call past the ring's
        capacity); waits for the last one, so ``run_loop`` calls it only where a wait
        changes nothing it measures."""
        if not self.cuda:
            return None
        ring = self._ring()
        last = ring.last()
        if last is not None:
            last[1].synchronize()
        return [v[0] for v in ring.take()]

    def describe(self) -> dict:
        return {"device": "gpu" if self.cuda else "cpu",
                "providers": f"torch {self.torch.__version__} {self.device.type}"
                             + (" cuda_graph" if self._graph is not None else "")}

    def close(self) -> None:
        self.net = None


def load(model, **_):
    check(model)
    return TorchRunner(model)
