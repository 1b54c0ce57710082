"""Results: Arrow schemas, atomic Parquet writes, loading a tree into pandas, comparisons.

>>> from trt_ray_bench import results
>>> r = results.load("results/quickstart")      # every run under the folder
>>> r.runs[["model", "phase", "p50_ms", "p99_ms"]]
>>> results.alone_vs_together(r.latest().runs, samples=r.latest().samples)   # Δ, interval, significant
>>> results.diagnose(r.runs, r.samples, r.telemetry)   # warnings per row, as values
>>> results.explain(r.runs, r.telemetry, "phase")       # what else differed, in sentences
"""

from .compare import (STAGES, alone_vs_together, by_mode, condition_interval, confidence_of, difference_interval, pct,
                      pooled, render, significance, stages, versus)
from .diagnose import diagnose
from .explain import explain, window_telemetry
from .join import samples_with_telemetry
from .load import Results, load, run_dirs
from .write import check_writable, write_run

__all__ = [
    "STAGES",
    "Results",
    "alone_vs_together",
    "by_mode",
    "condition_interval",
    "confidence_of",
    "difference_interval",
    "check_writable",
    "diagnose",
    "explain",
    "load",
    "pct",
    "pooled",
    "render",
    "run_dirs",
    "samples_with_telemetry",
    "significance",
    "stages",
    "versus",
    "window_telemetry",
    "write_run",
]
