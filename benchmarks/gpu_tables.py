"""The GPU proof's tables from a results folder (``gpu_proof.sh`` writes it): the gap
study with the NVML telemetry each inference ran at, and the alone/together runs with
their start skew.

    python benchmarks/gpu_tables.py /tmp/trb-results
"""

import sys
from pathlib import Path

import pandas as pd

from trt_ray_bench import results


def gap_table(root: Path) -> pd.DataFrame:
    r = results.load(root / "gap_study")
    j = results.samples_with_telemetry(r.samples[r.samples.in_window], r.telemetry,
                                       ["gpu_freq_mhz", "pstate", "power_mw:gpu", "gpu_util_pct"])
    j = j.merge(r.runs[["run_id", "model", "clocks_mode"]], on=["run_id", "model"])
    cols = [c for c in ["gpu_ms", "host_ms", "gpu_freq_mhz", "pstate", "power_mw:gpu", "gpu_util_pct"] if c in j]
    return j.groupby(["clocks_mode", "model"], sort=False)[cols].median().round(3)


def together_table(root: Path) -> pd.DataFrame:
    t = results.load(root / "gpu_alone_together").runs
    return t[["run_id", "mps", "model", "phase", "gpu_p50_ms", "p50_ms", "p99_ms", "start_skew_us", "start_late_us"]]


if __name__ == "__main__":
    root = Path(sys.argv[1])
    pd.set_option("display.width", 200)
    for name, fn in (("gap study: medians of the telemetry at each inference", gap_table),
                     ("alone / together", together_table)):
        try:
            print(f"\n## {name}\n{fn(root).to_string()}")
        except Exception as e:  # noqa: BLE001 - one table missing must not hide the other
            print(f"\n## {name}: not available ({type(e).__name__}: {e})")
