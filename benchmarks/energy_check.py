"""Energy per inference of a result tree, from each row's source (NVML's total-energy counter
where the GPU has one) against the integral of NVML's power readings over the same windows.

    python benchmarks/energy_check.py RESULTS_DIR [RESULTS_DIR ...]

Prints one line per runs row: model, phase, inferences, window, the source the row got, its
energy, the power integral's energy over the same window and their ratio, mean and idle
power, energy above idle, mJ per inference and inferences per joule. Run it on a tree made
with ``telemetry.idle_s`` and one without, e.g. the five tasks alone and together:

    trb run examples/02_alone_together_gpu/alone_together_gpu.yaml \\
        --set timing.iterations=null --set timing.duration_s=5 --set telemetry.idle_s=3
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", help="result trees (or runs)")
    args = ap.parse_args(argv)

    from trt_ray_bench import results
    from trt_ray_bench.results.energy import window_energy

    r = results.load(args.dirs if len(args.dirs) > 1 else args.dirs[0], samples=False)
    runs = r.runs.reset_index(drop=True)
    tel = r.telemetry
    if tel is None or not len(tel):
        print("no telemetry in these results: nothing to compare")
        return 1
    power = tel[tel.metric != "energy_mj:gpu"]
    integral = window_energy(runs, power)
    t = pd.DataFrame({
        "model": runs.model, "phase": runs.phase, "n": runs.n, "window_s": runs.window_s.round(2),
        "source": runs.energy_source, "energy_j": runs.energy_j.round(3),
        "integral_j": integral.energy_j.astype(float).round(3),
        "ratio": (runs.energy_j / integral.energy_j.astype(float)).round(3),
        "avg_w": runs.avg_power_w.round(1), "idle_w": runs.idle_power_w.round(1),
        "above_idle_j": runs.energy_above_idle_j.round(3), "mJ/inf": runs.energy_mj_per_inf.round(3),
        "inf/J": runs.inf_per_j.round(1), "why": runs.energy_why.fillna(""),
    })
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 60)
    print(t.to_string(index=False))
    ratio = t.ratio.dropna().to_numpy()
    if len(ratio):
        print(f"counter / power integral over {len(ratio)} rows: min {ratio.min():.3f}, median "
              f"{np.median(ratio):.3f}, max {ratio.max():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
