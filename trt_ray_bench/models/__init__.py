"""Models: from an Ultralytics yaml, ``.pt`` or an ``.onnx`` file to a checked ONNX file.

What a backend needs of the file is the backend's to say: ``engines.resolve_model``
asks it and calls ``resolve_onnx`` (this layer never imports ``engines``)."""

from ._convert import calib_set_sha256, convert_model, onnx_precision
from ._export import cache_dir, export_onnx, yaml_name
from ._resolve import ResolvedModel, inspect_onnx, resolve_onnx

__all__ = ["ResolvedModel", "cache_dir", "calib_set_sha256", "convert_model", "export_onnx", "inspect_onnx",
           "onnx_precision", "resolve_onnx", "yaml_name"]
