"""Reports: one self-contained HTML page (or markdown) per run, experiment or sweep,
with the environment, the comparison tables, diagnostics, explanations of what else
differed between two conditions, and figures (also written as PNG files).

>>> from trt_ray_bench.report import build_report
>>> build_report("results/quickstart")            # results/quickstart/report.html
"""

from .build import build_report, figures_dir, write_report
from .content import make_report
from .document import Figure, Report

__all__ = ["Figure", "Report", "build_report", "figures_dir", "make_report", "write_report"]
