"""Experiment specs: YAML loading, validation, overrides. Every user-facing spec error."""

from ._load import MAX_DEPTH, apply_overrides, load_spec, spec_from_dict, spec_to_yaml
from ._schema import json_schema
from ._sweep import SweepPoint, SweepSpec, expand, load_sweep, slug, sweep_from_dict
from ._model import (
    BACKENDS,
    MODES,
    DataSpec,
    PRECISIONS,
    ClockSpec,
    CooldownSpec,
    DEFAULT_IMGSZ,
    TASK_SUFFIX,
    TASKS,
    ExperimentSpec,
    InputSpec,
    ModelSpec,
    TelemetrySpec,
    TimingSpec,
    VariantSpec,
    split_arch,
)

__all__ = [
    "BACKENDS",
    "MAX_DEPTH",
    "MODES",
    "DataSpec",
    "PRECISIONS",
    "ClockSpec",
    "CooldownSpec",
    "DEFAULT_IMGSZ",
    "TASK_SUFFIX",
    "TASKS",
    "ExperimentSpec",
    "InputSpec",
    "ModelSpec",
    "TelemetrySpec",
    "TimingSpec",
    "VariantSpec",
    "apply_overrides",
    "json_schema",
    "load_spec",
    "spec_from_dict",
    "spec_to_yaml",
    "split_arch",
    "SweepPoint",
    "SweepSpec",
    "expand",
    "load_sweep",
    "slug",
    "sweep_from_dict",
]
