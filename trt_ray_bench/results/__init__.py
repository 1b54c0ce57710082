"""Results: Arrow schemas, atomic Parquet writes, loading a tree into pandas, comparisons.

>>> from trt_ray_bench import results
>>> r = results.load("results/quickstart")      # every run under the folder
>>> r.runs[["model", "phase", "p50_ms", "p99_ms"]]
>>> results.alone_vs_together(r.latest().runs)     # Δ, its interval and verdict, tested on runs
>>> results.diagnose(r.runs, r.samples, r.telemetry, r.aggregates)   # warnings per row, as values
>>> results.explain(r.runs, r.telemetry, "phase")       # what else differed, in sentences
>>> r.runs[["model", "energy_mj_per_inf", "energy_source"]]  # energy per inference (results.energy)
"""

from .compare import (CONDITION_COLUMNS, STAGES, alone_vs_together, by_condition, by_mode, by_precision,
                      condition_interval, confidence_of, conditions_that_vary, pct, pooled, render, stages, versus,
                      with_row_stats)
from .diagnose import diagnose
from .energy import window_energy
from .explain import explain, window_telemetry
from .join import samples_with_telemetry
from .load import Results, complete_runs, format_version, load, run_dirs, run_state
from .schema import FORMAT_VERSION
from .verdict import Verdict, compare_rows, compare_units, unit_keys, unit_values
from .write import RunWriter, check_writable, write_run

__all__ = [
    "CONDITION_COLUMNS",
    "FORMAT_VERSION",
    "STAGES",
    "Results",
    "RunWriter",
    "alone_vs_together",
    "by_condition",
    "by_mode",
    "by_precision",
    "condition_interval",
    "confidence_of",
    "compare_rows",
    "compare_units",
    "complete_runs",
    "conditions_that_vary",
    "check_writable",
    "diagnose",
    "explain",
    "format_version",
    "load",
    "pct",
    "pooled",
    "render",
    "run_dirs",
    "run_state",
    "samples_with_telemetry",
    "stages",
    "unit_keys",
    "unit_values",
    "versus",
    "Verdict",
    "window_energy",
    "window_telemetry",
    "with_row_stats",
    "write_run",
]
