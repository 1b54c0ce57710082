"""The open loop's scheduling error on this machine: how late ``run_loop`` starts a frame
that found the model idle, after its scheduled arrival (``timing.arrivals``).

A no-op runner (never busy: every frame finds it idle) runs periodic arrivals at a few
rates; the loop waits for each arrival with ``wait_until`` (sleep until ``spin_s`` before
it, then spin). Printed per rate and spin window: the median, 99th percentile and largest
start minus arrival, over every measured frame (the runs columns ``sched_error_p50_ms``,
``sched_error_p99_ms``, ``sched_error_max_ms``). ``spin_s 0`` is what a model gets where a
together phase has more models than cores (sleep only: the OS's wake-up latency).

    python benchmarks/sched_error.py [--seconds 3] [--rates 30,100,1000]
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

from trt_ray_bench.timing import LoopPlan, run_loop
from trt_ray_bench.timing._stats import percentile_min_n

from harness_overhead import NoopRunner  # the do-nothing runner (this folder)


def measure(rate: float, seconds: float, spin_s: float) -> np.ndarray:
    n = max(10, int(rate * seconds))
    s = run_loop(NoopRunner(), LoopPlan(iterations=n, warmup=5, arrivals="periodic", rate_hz=rate, spin_s=spin_s))
    m = slice(s.measured_from, None)
    ts, ta = np.asarray(s.t_start_ns)[m], np.asarray(s.t_arrival_ns)[m]
    idle = np.asarray(s.idle)[m]
    return (ts - ta)[idle] / 1e3  # µs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per rate and spin window (default 3)")
    ap.add_argument("--rates", default="30,100,1000", help="frames per second, comma-separated")
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    print(f"scheduling error of run_loop's arrival clock (python {platform.python_version()}, {platform.machine()}, "
          f"no-op runner: every frame finds the model idle)")
    print(f"{'rate Hz':>8} {'spin':>8} {'frames':>7} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>9}")
    for rate in rates:
        for spin in (0.002, 0.0):
            e = measure(rate, args.seconds, spin)
            p99 = np.percentile(e, 99) if e.size >= percentile_min_n(99) else float("nan")
            print(f"{rate:8g} {spin * 1e3:6g}ms {e.size:7d} {np.median(e):8.1f} {p99:8.1f} {e.max():9.1f}")
    print("(spin 2 ms: the default, sleep then spin; spin 0: sleep only, as where a together phase has more "
          "models than cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
