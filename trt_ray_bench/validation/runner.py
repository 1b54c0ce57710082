"""The validation modes as a runner for the timing loop: the predict pipeline over a
labelled set, with the task's metric work per image timed as its own stage
(``validation``), or the same loop without it (``without_val``)."""

from __future__ import annotations

import time
from typing import Dict, List, Optional

from .datasets import Dataset

#: Ultralytics' val() thresholds: every box counts towards mAP.
VAL_CONF, VAL_IOU = 0.001, 0.7


def as_metric_input(task: str, pred):
    """The pipeline's prediction in the metric accumulator's format."""
    if task == "pose":
        boxes, kpts = pred
        return {"boxes": boxes, "keypoints": kpts}
    if task == "segment":
        boxes, masks = pred
        return {"boxes": boxes, "masks": masks}
    return pred


class ValidationRunner:
    """``pipeline``: a prepared ``engines.pipeline.PipelineRunner`` over ``dataset``'s
    images, in the same order. With ``metrics`` every inference's prediction is compared
    with its labels (``metrics_ms``); the result covers the measured images only, each
    counted once. Passes after the first (a fast model kept running while the others of a
    together window finish) do the same metric work into a spare accumulator that is not
    reported, so every validation sample carries the metric cost it would have."""

    def __init__(self, pipeline, dataset: Dataset, metrics: bool = True):
        self.pipeline = pipeline
        self.dataset = dataset
        self.metrics = metrics
        self.n_inputs = pipeline.n_inputs
        self.backend = pipeline.backend
        self._acc = None
        self._spare = None
        self.metric_updates = 0  # per-image metric computations done (reported or spare)
        self._metric_ms: List[float] = []
        self._reported: Dict[str, List[float]] = {}
        self._seen = set()
        self.begin_measured()

    def begin_measured(self) -> None:
        """Called by the loop after warm-up: warm-up predictions do not count."""
        from .metrics import MetricAccumulator

        self._acc = MetricAccumulator.for_dataset(self.dataset) if self.metrics else None
        self._spare = None
        self._seen = set()

    def infer(self, index: int) -> None:
        self.pipeline.infer(index)
        if self._acc is None:
            return
        i = index % self.n_inputs
        if i not in self._seen:  # the reported metrics: each image counted once
            self._seen.add(i)
            acc = self._acc
        else:  # a further pass: the same work, not reported (a fresh spare per pass)
            if self._spare is None or self._spare.n_images >= self.n_inputs:
                from .metrics import MetricAccumulator

                self._spare = MetricAccumulator.for_dataset(self.dataset)
            acc = self._spare
        t0 = time.perf_counter_ns()
        acc.update(as_metric_input(self.dataset.task, self.pipeline.last_predictions()), self.dataset.items[i].labels)
        self.metric_updates += 1
        self._metric_ms.append((time.perf_counter_ns() - t0) / 1e6)

    def synchronize(self, how: str) -> None:
        pass

    def gpu_times_ms(self):
        gpu = self.pipeline.gpu_times_ms()
        self._reported = dict(self.pipeline.stage_times_ms())
        if self.metrics:
            self._reported["metrics_ms"] = self._metric_ms
        self._metric_ms = []
        return gpu

    def stage_times_ms(self) -> Dict[str, List[float]]:
        out, self._reported = self._reported, {}
        return out

    def result(self) -> Optional[Dict[str, float]]:
        """The metrics of the measured images (``None`` for ``without_val``)."""
        return None if self._acc is None else self._acc.result()

    def describe(self) -> dict:
        return self.pipeline.describe()

    def close(self) -> None:
        pass  # the pipeline and its engine belong to the actor
