"""The "Inference time vs validation" study's data side: validation data sets read and
checked before timing (``datasets``), each task's prediction format and the adapters
from labels and from Ultralytics' ``Results`` (``predictions``),
accuracy by Ultralytics' own metric code (``metrics``), and small real data sets for
tests and demos (``synthetic``).

Data sets and the generator need numpy, Pillow and PyYAML only; the metrics import
Ultralytics (and torch) when first used."""

from .datasets import Dataset, Item, Labels, image_shape, load_dataset, read_image, task_name
from .metrics import MetricAccumulator, result_names
from .predictions import FORMATS, from_labels, from_results
from .runner import VAL_CONF, VAL_IOU, ValidationRunner, as_metric_input
from .synthetic import make_synthetic

__all__ = [
    "Dataset",
    "FORMATS",
    "Item",
    "Labels",
    "MetricAccumulator",
    "VAL_CONF",
    "VAL_IOU",
    "ValidationRunner",
    "as_metric_input",
    "from_labels",
    "from_results",
    "image_shape",
    "load_dataset",
    "make_synthetic",
    "read_image",
    "result_names",
    "task_name",
]
