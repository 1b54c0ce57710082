"""Models: from an Ultralytics yaml, ``.pt`` or an ``.onnx`` file to a checked ONNX file."""

from ._export import cache_dir, export_onnx, yaml_name
from ._resolve import ResolvedModel, inspect_onnx, resolve_model

__all__ = ["ResolvedModel", "cache_dir", "export_onnx", "inspect_onnx", "resolve_model", "yaml_name"]
