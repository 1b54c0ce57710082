"""Per-iteration overhead that ``trt_ray_bench.timing.run_loop`` adds to a timed call.

Compares, over a no-op "engine" (the Runner protocol with empty methods):

  bare          t0 = perf_counter_ns(); fn(0); t1 = perf_counter_ns(); out.append(t1 - t0)
                (fn is the no-op runner's own bound ``infer``, so both sides call the
                same no-op and the difference is what the harness adds around it)
  run_loop      run_loop(runner, LoopPlan(iterations=N, warmup=0, sync="device"))
  sync=none     the same with sync="none" (no read of the GPU times inside the stretch,
                one synchronisation after it)
  + stop        the same with gap_s=0, a stop Event and on_target given (a together
                run with fill, count phase); on_target sets the Event, so the loop
                ends after its N like the last model to reach its count
  fill phase    iterations=0, stop Event never set, ended by max_s: every iteration
                goes through the fill branch (stop.is_set(), hard-stop check, extra
                clock read); ns/iteration = elapsed / iterations done
  arrivals      an open loop (timing.arrivals) whose frames have always arrived already
                (rate 1e9 Hz: the model is never idle, nothing is waited for), so every
                iteration pays the arrival clock's bookkeeping and no wait: periodic and
                poisson, backlog queue (drop would skip most frames of such a rate)

ns/iteration = wall time of the whole loop / iterations, median over repeats; the
variants are interleaved within each repeat so that drift affects all alike.

    python benchmarks/harness_overhead.py [--iterations 200000] [--repeats 11]
"""

from __future__ import annotations

import argparse
import platform
import sys
import threading
import time

import numpy as np

from trt_ray_bench.timing import LoopPlan, run_loop

TARGET_NS = 1000.0  # "at most 1 us per iteration of added overhead"


class NoopRunner:
    """Satisfies ``trt_ray_bench.timing.Runner`` and does nothing."""

    n_inputs = 1

    def infer(self, index: int) -> None:
        pass

    def synchronize(self, how: str) -> None:
        pass

    def gpu_times_ms(self):
        return None


def _span(s) -> float:
    """Median recorded host time (t_end - t_start) of the measured iterations, ns."""
    return float(np.median(np.asarray(s.t_end_ns, dtype=np.int64) - np.asarray(s.t_start_ns, dtype=np.int64)))


def bare(n: int) -> tuple:
    runner = NoopRunner()
    fn = runner.infer
    clock = time.perf_counter_ns
    out = []
    append = out.append
    w0 = clock()
    for _ in range(n):
        t0 = clock()
        fn(0)
        t1 = clock()
        append(t1 - t0)
    w1 = clock()
    assert len(out) == n
    return (w1 - w0) / n, float(np.median(out))


def with_run_loop(n: int) -> tuple:
    runner = NoopRunner()
    plan = LoopPlan(iterations=n, warmup=0, sync="device")
    w0 = time.perf_counter_ns()
    s = run_loop(runner, plan)
    w1 = time.perf_counter_ns()
    assert len(s) == n
    return (w1 - w0) / n, _span(s)


def with_sync_none(n: int) -> tuple:
    runner = NoopRunner()
    plan = LoopPlan(iterations=n, warmup=0, sync="none")
    w0 = time.perf_counter_ns()
    s = run_loop(runner, plan)
    w1 = time.perf_counter_ns()
    assert len(s) == n and s.t_sync_end_ns is not None
    return (w1 - w0) / n, _span(s)


def with_stop(n: int) -> tuple:
    runner = NoopRunner()
    plan = LoopPlan(iterations=n, warmup=0, gap_s=0.0, sync="device")
    stop = threading.Event()
    w0 = time.perf_counter_ns()
    s = run_loop(runner, plan, stop=stop, on_target=stop.set, max_s=600.0)
    w1 = time.perf_counter_ns()
    assert len(s) == n and s.n_target == n
    return (w1 - w0) / n, _span(s)


def fill_phase(max_s: float) -> tuple:
    runner = NoopRunner()
    plan = LoopPlan(iterations=0, warmup=0, gap_s=0.0, sync="device")
    stop = threading.Event()  # never set: the loop ends at max_s
    w0 = time.perf_counter_ns()
    s = run_loop(runner, plan, stop=stop, on_target=lambda: None, max_s=max_s)
    w1 = time.perf_counter_ns()
    n = len(s)
    assert n > 0 and s.n_target == 0
    return (w1 - w0) / n, _span(s), n


def with_arrivals(n: int, kind: str) -> tuple:
    runner = NoopRunner()
    plan = LoopPlan(iterations=n, warmup=0, sync="device", arrivals=kind, rate_hz=1e9, seed=1)
    w0 = time.perf_counter_ns()
    s = run_loop(runner, plan)
    w1 = time.perf_counter_ns()
    assert len(s) == n and len(s.t_arrival_ns) == n
    return (w1 - w0) / n, _span(s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=200_000, help="iterations per loop (default 200000)")
    ap.add_argument("--repeats", type=int, default=11, help="repeats of every variant (default 11)")
    args = ap.parse_args(argv)
    n, r = args.iterations, args.repeats

    # Untimed warm-up of every path (allocator, caches).
    bare(min(n, 20_000)); with_run_loop(min(n, 20_000)); with_sync_none(min(n, 20_000)); with_stop(min(n, 20_000))
    with_arrivals(min(n, 20_000), "periodic"); with_arrivals(min(n, 20_000), "poisson")
    fill_s = with_run_loop(n)[0] * n / 1e9  # fill phase runs about as long as N iterations
    fill_phase(min(fill_s, 0.05))

    res = {"bare": [], "run_loop": [], "none": [], "stop": [], "fill": [], "periodic": [], "poisson": []}
    spans = {k: [] for k in res}
    fill_n = []
    for _ in range(r):
        for k, f in (("bare", bare), ("run_loop", with_run_loop), ("none", with_sync_none), ("stop", with_stop)):
            ns, sp = f(n)
            res[k].append(ns)
            spans[k].append(sp)
        for k, f in (("periodic", lambda m: with_arrivals(m, "periodic")),
                     ("poisson", lambda m: with_arrivals(m, "poisson"))):
            ns, sp = f(n)
            res[k].append(ns)
            spans[k].append(sp)
        ns, sp, k = fill_phase(fill_s)
        res["fill"].append(ns)
        spans["fill"].append(sp)
        fill_n.append(k)
    a = {k: np.asarray(v) for k, v in res.items()}
    med = {k: float(np.median(v)) for k, v in a.items()}
    span = {k: float(np.median(v)) for k, v in spans.items()}

    print(f"harness overhead of trt_ray_bench.timing.run_loop  "
          f"(python {platform.python_version()}, {platform.machine()}, no-op runner)")
    print(f"{n} iterations per loop, {r} repeats; ns/iteration = loop wall time / iterations; "
          f"fill phase ran {int(np.median(fill_n))} iterations (median) in {fill_s * 1e3:.0f} ms")
    print()
    rows = [
        ("bare loop (2 clock reads, 1 append)", "bare"),
        ("run_loop sync=device", "run_loop"),
        ("run_loop sync=none", "none"),
        ("run_loop gap_s=0 + stop Event (count)", "stop"),
        ("run_loop fill phase (stop not set)", "fill"),
        ("run_loop arrivals periodic (saturated)", "periodic"),
        ("run_loop arrivals poisson (saturated)", "poisson"),
    ]
    print(f"{'variant':<40} {'median':>9} {'min':>9} {'max':>9}   {'added vs bare':>13}   {'recorded span':>13}")
    for label, k in rows:
        added = med[k] - med["bare"]
        add = "" if k == "bare" else f"{added:+10.1f} ns"
        print(f"{label:<40} {med[k]:9.1f} {a[k].min():9.1f} {a[k].max():9.1f}   {add:>13}   {span[k]:10.0f} ns")
    print("(ns per iteration; 'recorded span' = median t_end - t_start that the loop stores for a no-op,")
    print(" i.e. the part of the overhead that lands inside every reported latency)")
    print()
    print(f"target: at most {TARGET_NS:.0f} ns (1 us) per iteration added by the harness")
    ok_all = True
    for label, k in rows[1:]:
        added = med[k] - med["bare"]
        ok = added <= TARGET_NS
        ok_all &= ok
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {added:+.1f} ns/iteration added "
              f"({added / TARGET_NS:.0%} of the budget)")
    print(f"overall: {'PASS' if ok_all else 'FAIL'}")
    for label, k in rows[-2:]:  # what the arrival clock adds to the closed loop, whatever the machine's load
        print(f"open loop vs closed: {label}: {med[k] - med['run_loop']:+.1f} ns/iteration over run_loop sync=device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
