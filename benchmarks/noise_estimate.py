"""How good is the noise estimate? N process-isolated repeats of one model, and how well
each repeat's own interval of its p50 predicts the other repeats.

One plan: yolov8n-cls (224, FP16 TensorRT by default), ``schedule: alone``, ``--repeats``
repeats with ``repeat_isolation: process`` (a fresh model actor, the engine loaded again,
for every repeat; ``actor`` where the spec has no such field yet). Per timer (host, and
GPU where CUDA events exist) it prints:

- every repeat's p50 and its interval (``p50_ci_lo_ms``..``p50_ci_hi_ms``, the
  order-statistic interval at ``--confidence``);
- the spread of the p50s across repeats (max - min, and their standard deviation) next
  to the median width of one repeat's interval: a ratio far above 1 says the runs differ
  by more than each run's own statistics show;
- coverage of fresh repeats by one repeat's interval: the fraction of pairs (i, j != i)
  where repeat j's p50 lies in repeat i's interval (95 % would mean the interval
  describes the run-to-run noise; far less says it describes only sampling noise);
- leave one out, the interval across repeats: for each i, the t interval of the mean of
  the other repeats' p50s (what ``trb compare`` uses for a condition with repeats) and
  the t prediction interval of one more repeat (``mean +- t s sqrt(1 + 1/k)``): the
  fraction of held-out repeats inside each. The prediction interval should hold ~95 %;
  the interval of the mean less (it is about the mean, not one run).

    python benchmarks/noise_estimate.py                                  # TensorRT fp16, 10 x 1000
    python benchmarks/noise_estimate.py --backend onnxruntime --iterations 200   # on a CPU
    python benchmarks/noise_estimate.py --backend tensorrt --tactics none --opt-level 0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_ray_bench import results  # noqa: E402
from trt_ray_bench.timing._stats import across_interval, t_quantile  # noqa: E402


def _spec(a) -> dict:
    from trt_ray_bench.spec import ExperimentSpec

    model = {"path": a.model} if a.model else {"arch": "yolov8n", "task": "classify", "imgsz": a.imgsz}
    model.update(name="cls", backend=a.backend, precision=a.precision)
    opts = {}
    if a.backend == "tensorrt":
        if a.tactics:
            opts["tactics"] = a.tactics
        if a.opt_level is not None:
            opts["opt_level"] = a.opt_level
    elif a.backend == "onnxruntime" and a.threads:
        opts["threads"] = a.threads
    model["options"] = opts
    spec = {"name": "noise_estimate", "schedule": "alone", "repeats": a.repeats, "confidence": a.confidence,
            "timing": {"iterations": a.iterations, "warmup": a.warmup, "sync": "device"},
            "telemetry": {"interval_s": 0.1}, "output": a.output, "models": [model]}
    if "repeat_isolation" in ExperimentSpec.model_fields:
        spec["repeat_isolation"] = a.isolation
    return spec


def coverage(p50: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Fraction of pairs (i, j != i) with repeat j's p50 inside repeat i's interval."""
    inside = (p50[None, :] >= lo[:, None]) & (p50[None, :] <= hi[:, None])
    off = ~np.eye(len(p50), dtype=bool)
    return float(inside[off].mean())


def leave_one_out(p50: np.ndarray, confidence: float):
    """(fraction inside the interval of the others' mean, fraction inside their prediction interval)."""
    in_ci = in_pi = 0
    for i in range(len(p50)):
        rest = np.delete(p50, i)
        lo, hi = across_interval(rest, confidence)
        in_ci += lo <= p50[i] <= hi
        k = len(rest)
        half = t_quantile(1 - (1 - confidence) / 2, k - 1) * rest.std(ddof=1) * np.sqrt(1 + 1 / k)
        in_pi += abs(p50[i] - rest.mean()) <= half
    return in_ci / len(p50), in_pi / len(p50)


def report(runs, prefix: str, confidence: float) -> None:
    p50 = runs[f"{prefix}p50_ms"].to_numpy(float)
    lo, hi = runs[f"{prefix}p50_ci_lo_ms"].to_numpy(float), runs[f"{prefix}p50_ci_hi_ms"].to_numpy(float)
    if not np.isfinite(p50).all() or not np.isfinite(lo).all():
        return
    name = "GPU (CUDA events)" if prefix else "host"
    print(f"\n## {name} p50, {len(p50)} repeats, {confidence * 100:g} % intervals")
    print("| repeat | pid | p50 ms | interval ms | width % |")
    print("|---|---|---|---|---|")
    pids = runs["actor_pid"].tolist() if "actor_pid" in runs.columns else ["-"] * len(p50)
    for r, pid, p, a, b in zip(runs["repeat"], pids, p50, lo, hi):
        print(f"| {r} | {pid} | {p:.4f} | {a:.4f}-{b:.4f} | {(b - a) / p * 100:.2f} |")
    med = float(np.median(p50))
    width = float(np.median(hi - lo))
    spread = float(p50.max() - p50.min())
    print(f"\nspread of the p50s: {spread:.4f} ms ({spread / med * 100:.1f} % of their median), "
          f"sd {p50.std(ddof=1):.4f} ms")
    print(f"median width of one repeat's interval: {width:.4f} ms ({width / med * 100:.2f} %); "
          f"spread / width = {spread / width:.1f}" if width > 0 else "intervals of zero width")
    cov = coverage(p50, lo, hi)
    in_ci, in_pi = leave_one_out(p50, confidence)
    print(f"coverage of fresh repeats by one repeat's interval: {cov * 100:.0f} % of "
          f"{len(p50) * (len(p50) - 1)} pairs (asked: {confidence * 100:g} %)")
    print(f"leave one out, across the other repeats: inside the interval of their mean {in_ci * 100:.0f} %, "
          f"inside their prediction interval {in_pi * 100:.0f} % of {len(p50)}")
    verdict = ("the per-run interval describes the run-to-run noise" if cov >= confidence - 0.1 else
               "the per-run interval is sampling noise only: compare conditions with repeats")
    print(f"verdict: {verdict}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="tensorrt", choices=("tensorrt", "onnxruntime", "torch"))
    ap.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "int8"))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--imgsz", type=int, default=224)
    ap.add_argument("--model", help="an .onnx file instead of yolov8n-cls from the cache")
    ap.add_argument("--tactics", choices=("default", "none"), help="tensorrt: none = no cuBLAS/cuDNN tactics")
    ap.add_argument("--opt-level", type=int, help="tensorrt: builder optimization level")
    ap.add_argument("--threads", type=int, help="onnxruntime: intra-op threads")
    ap.add_argument("--isolation", default="process", choices=("process", "actor"))
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "trb-noise"))
    a = ap.parse_args(argv)
    if a.backend == "onnxruntime" and a.precision == "fp16" and "--precision" not in (argv or sys.argv):
        a.precision = "fp32"  # a CPU trial: the fp32 export as is
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.spec import spec_from_dict

    t0 = time.perf_counter()
    spec = spec_from_dict(_spec(a))
    out = run_plan(make_plan(spec), log=print)
    runs = results.load(out["run_dir"], telemetry=False).runs
    runs = runs[runs["status"] == "ok"].sort_values("repeat").reset_index(drop=True)
    print(f"\n# noise estimate: {a.backend} {a.precision}, {len(runs)} repeats x {a.iterations} iterations, "
          f"isolation {runs['repeat_isolation'].iloc[0] if 'repeat_isolation' in runs.columns else 'actor'}, "
          f"{time.perf_counter() - t0:.0f} s")
    if len(runs) < 3:
        print("fewer than 3 successful repeats: nothing to estimate")
        return 1
    for prefix in ("gpu_", ""):
        report(runs, prefix, a.confidence)
    return 0


if __name__ == "__main__":
    sys.exit(main())
