"""Will five cameras keep up on this GPU? The five YOLO tasks (yolov8n cls 224, detect /
pose / seg 640, obb 1024) as TensorRT FP16 engines, fed periodic frames with a deadline of
one frame period, alone and together, at 30, 60 and 120 FPS; then the highest rate each
keeps up with, alone and together (a search).

    python benchmarks/keep_up_gpu.py [--rates 30,60,120] [--frames 200] [--no-search]
        [--search-low 60] [--search-high 2000] [--resolution 50] [--until "deadline_miss <= 0.01"]
        [--output results/keep_up_gpu_bench] [--option tactics=none ...]

Prints, per rate: each model's row alone and together (service p50, from-arrival p50 /
p95 / p99, queue, deadline misses with their interval, dropped frames, scheduling error);
then the search's table (model, alone max rate, together max rate). Every run is written
under ``--output``. On an H100 about 2 minutes for the rates and 8 for the search (42
probes, 2026-12-06; first use: plus the five engine builds, cached after). Runs on TensorRT
8.5 and later.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "12_keep_up" / "keep_up_gpu.yaml"
COLS = ["model", "phase", "rate_hz", "n", "p50_ms", "p50_from_arrival_ms", "p95_from_arrival_ms",
        "p99_from_arrival_ms", "queue_mean_ms", "deadline_miss", "deadline_miss_lo", "deadline_miss_hi", "dropped",
        "frames", "sched_error_p50_ms", "sched_error_max_ms"]


def _miss(r) -> str:
    if pd.isna(r.deadline_miss):
        return "—"
    ci = f" [{r.deadline_miss_lo * 100:.1f}, {r.deadline_miss_hi * 100:.1f}]" if pd.notna(r.deadline_miss_lo) else ""
    return f"{r.deadline_miss * 100:.1f}%{ci}"


def _jitter(timing: dict, rate: float):
    """The spec's arrival jitter, at most a quarter of the period at ``rate`` (a jitter of
    half the period or more would put frames out of order, and such a run is refused);
    None where the spec has none."""
    return min(timing.get("jitter_ms") or 0, 250.0 / rate) or None


def search_sweep(base: dict, args) -> dict:
    """The search's sweep: the base spec at ``--search-frames`` frames a row, its jitter
    valid at ``--search-high`` (``_jitter``), as for the rates."""
    d = dict(base, name="keep_up_gpu_search")
    d["timing"] = dict(base["timing"], iterations=args.search_frames,
                       jitter_ms=_jitter(base["timing"], args.search_high))
    return {"name": "keep_up_gpu_search", "base": d,
            "search": {"until": args.until, "low": args.search_low, "high": args.search_high,
                       "resolution": args.resolution, "repeats": 1}}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="30,60,120", help="frames per second, comma-separated (\"\": the search only)")
    ap.add_argument("--frames", type=int, default=200, help="frames per model and phase (a p99 needs 368)")
    ap.add_argument("--no-search", action="store_true", help="the rates only")
    ap.add_argument("--search-low", type=float, default=60.0)
    ap.add_argument("--search-high", type=float, default=2000.0,
                    help="the cls at 224 px serves about 1200 FPS alone on an H100")
    ap.add_argument("--resolution", type=float, default=50.0)
    ap.add_argument("--search-frames", type=int, default=300, help="frames per probe row")
    ap.add_argument("--until", default="deadline_miss <= 0.01", help="the search's criterion")
    ap.add_argument("--output", default="results/keep_up_gpu_bench")
    ap.add_argument("--spec", default=str(SPEC), help="the base spec (default: examples/12_keep_up/keep_up_gpu.yaml;"
                    " keep_up_cpu.yaml checks this script on a CPU)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a TensorRT build option for every model, e.g. tactics=none (repeatable)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    import yaml

    from trt_ray_bench import results
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.cluster.node_run import connect
    from trt_ray_bench.cluster.search import run_search
    from trt_ray_bench.spec import spec_from_dict, sweep_from_dict

    base = yaml.safe_load(Path(args.spec).read_text())
    base["output"] = args.output
    for kv in args.option:
        key, _, value = kv.partition("=")
        for m in base["models"]:
            m.setdefault("options", {})[key] = yaml.safe_load(value)
    t_all = time.perf_counter()
    started = connect(None)
    try:
        pd.set_option("display.width", 250)
        pd.set_option("display.max_columns", 30)
        for rate in [float(r) for r in args.rates.split(",") if r.strip()]:
            t0 = time.perf_counter()
            d = dict(base, name=f"keep_up_gpu_{rate:g}fps")
            d["timing"] = dict(base["timing"], rate_hz=rate, iterations=args.frames, deadline_ms=1000.0 / rate,
                               jitter_ms=_jitter(base["timing"], rate))
            plan = make_plan(spec_from_dict(d, f"{rate:g} FPS"))
            out = run_plan(plan, log=lambda line: None)
            runs = results.load(out["run_dir"], samples=False, telemetry=False).runs
            t = runs.reindex(columns=COLS).copy()
            t["missed"] = [_miss(r) for r in t.itertuples()]
            t = t.drop(columns=["deadline_miss", "deadline_miss_lo", "deadline_miss_hi"])
            print(f"\n== {rate:g} FPS each, deadline {1000 / rate:.1f} ms (one frame period), {args.frames} frames; "
                  f"{out['run_dir']} ({time.perf_counter() - t0:.0f} s)")
            print(t.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
            bad = runs[runs.status != "ok"]
            for _, r in bad.iterrows():
                print(f"FAILED {r.model} {r.phase}: {r.error}")
        if not args.no_search:
            t0 = time.perf_counter()
            sd = search_sweep(base, args)
            sweep = sweep_from_dict(sd, "keep_up_gpu search")
            res = run_search(sweep)
            print(f"\n== the highest rate with {args.until} (deadline {base['timing']['deadline_ms']} ms, "
                  f"jitter ±{sd['base']['timing'].get('jitter_ms') or 0:.3g} ms), "
                  f"{args.search_low:g}-{args.search_high:g} FPS to {args.resolution:g}; {len(res['probes'])} probes "
                  f"({time.perf_counter() - t0:.0f} s); {res['root'] / 'search.csv'}")
            print(res["table"].to_string(index=False, float_format=lambda v: f"{v:.0f}"))
    finally:
        if started:
            import ray

            ray.shutdown()
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
