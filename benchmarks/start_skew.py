"""How simultaneously "together" models start: the framework's Coordinator barrier vs
the users' own start signal (processes polling for a file).

framework  one real plan: 5 ModelActors of the same tiny model (yolov8n-cls, 64x64,
           ONNX Runtime CPU), schedule "together", ``--repeats`` repeats in one plan
           inside one Ray session; each repeat's ``runs.start_skew_us`` is
           max - min of the 5 actors' first measured inference start.
baseline   5 spawned Python processes each poll ``os.path.exists("start/1")`` with
           ``time.sleep(0.001)`` and record ``perf_counter_ns()`` when they see it; the
           parent creates the file once all are polling; skew = max - min.

Both on the same machine, Ray up in both cases. Also prints a plain Ray actor method
round trip, for context.

    TRB_CACHE_DIR=/tmp/trbcache python benchmarks/start_skew.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

TARGET_US = 1000.0  # "below 1 ms on this 2-core machine"
N_MODELS = 5


# --------------------------------------------------------------------------- baseline
def _poll_worker(idx, cmd_q, ready_q, res_q, onnx, warmup, iterations) -> None:
    """One user process: per repeat, wait for a path, say ready, poll until it exists.
    With ``onnx`` it also loads the model like a ModelActor (ONNX Runtime, default
    options), warms up before saying ready and runs ``iterations`` inferences once it
    has seen the file, so that the 5 processes load the CPU after the start as the
    framework's actors do."""
    exists, sleep, clock = os.path.exists, time.sleep, time.perf_counter_ns
    run = None
    if onnx:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(onnx, opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        feed = {inp.name: np.random.default_rng(idx).random(shape, dtype=np.float32)}

        def run():
            sess.run(None, feed)
    while True:
        path = cmd_q.get()
        if path is None:
            return
        if run is not None:
            for _ in range(warmup):
                run()
        ready_q.put(idx)
        while not exists(path):
            sleep(0.001)
        t = clock()
        if run is not None:
            for _ in range(iterations):
                run()
        res_q.put((idx, t))


def baseline_skews(repeats: int, n: int, settle_s: float, onnx=None, warmup: int = 0, iterations: int = 0) -> tuple:
    """Skews (us) and mean touch-to-seen delays (us) of ``repeats`` file-poll starts."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    cmd_qs = [ctx.Queue() for _ in range(n)]
    ready_q, res_q = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_poll_worker, args=(i, cmd_qs[i], ready_q, res_q, onnx, warmup, iterations),
                         daemon=True) for i in range(n)]
    for p in procs:
        p.start()
    skews, delays = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="trb-poll-") as root:
            for r in range(repeats):
                d = os.path.join(root, f"r{r}", "start")
                os.makedirs(d)
                path = os.path.join(d, "1")
                for q in cmd_qs:
                    q.put(path)
                for _ in range(n):
                    ready_q.get(timeout=120)
                time.sleep(settle_s)  # every process is in its poll loop
                t_touch = time.perf_counter_ns()
                open(path, "w").close()
                seen = [res_q.get(timeout=120)[1] for _ in range(n)]
                skews.append((max(seen) - min(seen)) / 1e3)
                delays.append((np.mean(seen) - t_touch) / 1e3)
    finally:
        for q in cmd_qs:
            q.put(None)
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    return np.asarray(skews), np.asarray(delays)


# --------------------------------------------------------------------------- framework
def framework_skews(repeats: int, iterations: int, warmup: int, imgsz: int, out_dir: str, threads=None) -> tuple:
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.models import export_onnx, yaml_name
    from trt_ray_bench.spec import spec_from_dict

    onnx, _ = export_onnx(yaml_name("yolov8n", "classify"), "classify", (imgsz, imgsz), 1)
    spec = spec_from_dict({
        "name": "start-skew",
        "models": [{"path": str(onnx), "name": f"m{i}", **({"options": {"threads": threads}} if threads else {})}
                   for i in range(N_MODELS)],
        "schedule": "together",
        "repeats": repeats,
        "timing": {"iterations": iterations, "warmup": warmup},
        "telemetry": {"host": False},
        "output": out_dir,
    })
    plan = make_plan(spec)
    t0 = time.perf_counter()
    res = run_plan(plan, log=lambda s: None)
    wall = time.perf_counter() - t0
    runs = res["tables"]["runs"]
    tog = runs[runs["phase"] == "together"]
    bad = tog[tog["status"] != "ok"]
    if len(bad):
        raise RuntimeError(f"{len(bad)} model runs failed: {bad['error'].tolist()}")
    per_rep = tog.groupby("repeat")["start_skew_us"].first().sort_index()
    if len(per_rep) != repeats or per_rep.isna().any():
        raise RuntimeError(f"expected {repeats} skew values, got {per_rep.tolist()}")
    return per_rep.to_numpy(dtype=float), wall, onnx


def ray_round_trip_us(calls: int) -> np.ndarray:
    import ray

    class Ping:
        def ping(self):
            return None

    a = ray.remote(num_cpus=0)(Ping).remote()
    for _ in range(20):  # start the worker, warm the path
        ray.get(a.ping.remote())
    out = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        ray.get(a.ping.remote())
        out.append(clock() - t0)
    ray.kill(a)
    return np.asarray(out) / 1e3


# --------------------------------------------------------------------------- report
def _stats(x: np.ndarray) -> dict:
    return {"min": float(np.min(x)), "median": float(np.median(x)), "p90": float(np.percentile(x, 90)),
            "max": float(np.max(x))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5, help="models released together (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads per model (default: ORT's)")
    ap.add_argument("--repeats", type=int, default=10, help="together starts measured by each method (default 10)")
    ap.add_argument("--iterations", type=int, default=20, help="timed iterations per model per repeat (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up iterations per model per repeat (default 2)")
    ap.add_argument("--imgsz", type=int, default=64, help="input size of the tiny model (default 64)")
    ap.add_argument("--rtt-calls", type=int, default=200, help="Ray actor calls timed for the round trip (default 200)")
    ap.add_argument("--no-loaded-baseline", action="store_true",
                    help="skip the second baseline (file poll, then the same inferences as the actors)")
    ap.add_argument("--settle-s", type=float, default=0.05,
                    help="baseline: wait after all processes are ready before creating the file (default 0.05)")
    args = ap.parse_args(argv)
    globals()["N_MODELS"] = args.models
    os.environ.setdefault("TRB_CACHE_DIR", "/tmp/trbcache")

    import ray

    t_init = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, namespace="trb", logging_level="ERROR", log_to_driver=False)
    t_init = time.perf_counter() - t_init
    try:
        with tempfile.TemporaryDirectory(prefix="trb-skew-") as out_dir:
            fw, fw_wall, onnx = framework_skews(args.repeats, args.iterations, args.warmup, args.imgsz, out_dir,
                                                 args.threads)
        rtt = ray_round_trip_us(args.rtt_calls)
        bl, bl_delay = baseline_skews(args.repeats, N_MODELS, args.settle_s)
        bll = None
        if not args.no_loaded_baseline:
            bll, _ = baseline_skews(args.repeats, N_MODELS, args.settle_s, str(onnx), args.warmup, args.iterations)
    finally:
        ray.shutdown()

    print(f"start skew of {N_MODELS} together models  ({os.cpu_count()} CPU cores, "
          f"python {sys.version.split()[0]}, ray {ray.__version__})")
    print(f"framework: {N_MODELS}x {os.path.basename(str(onnx))} on ONNX Runtime CPU, {args.repeats} repeats in one plan, "
          f"{args.warmup} warm-up + {args.iterations} iterations each ({fw_wall:.1f} s; ray.init {t_init:.1f} s)")
    print(f"baseline:  {N_MODELS} spawned processes polling os.path.exists('start/1') with sleep(0.001), "
          f"{args.repeats} starts; 'file poll' records the instant and does nothing else,")
    print(f"           'poll+infer' also loads the model and runs the same {args.warmup} warm-up + "
          f"{args.iterations} inferences (default ONNX Runtime options, like the actors)")
    print()
    cols = [("framework", fw), ("file poll", bl)] + ([("poll+infer", bll)] if bll is not None else [])
    st = {k: _stats(v) for k, v in cols}
    print(f"{'skew (us)':<12} " + " ".join(f"{k:>12}" for k, _ in cols))
    for q in ("min", "median", "p90", "max"):
        print(f"{q:<12} " + " ".join(f"{st[k][q]:12.1f}" for k, _ in cols))
    print()
    for k, v in cols:
        print(f"{k + ' per repeat (us):':<28}" + " ".join(f"{x:.0f}" for x in v))
    sf, sb = st["framework"], st["file poll"]
    print(f"file poll: mean delay from creating the file to a process seeing it, median over starts: "
          f"{np.median(bl_delay):.0f} us")
    print(f"ray actor method round trip (trivial method, {len(rtt)} calls): median {np.median(rtt):.0f} us, "
          f"p90 {np.percentile(rtt, 90):.0f} us, min {np.min(rtt):.0f} us")
    print()
    ok = sf["max"] < TARGET_US
    print(f"target: framework start skew below {TARGET_US:.0f} us on this {os.cpu_count()}-core machine")
    print(f"{'PASS' if ok else 'FAIL'}  framework max skew {sf['max']:.1f} us "
          f"(median {sf['median']:.1f} us, p90 {sf['p90']:.1f} us)")
    for k, _ in cols[1:]:
        b = st[k]
        verdict = "framework better" if sf["median"] < b["median"] else "framework worse"
        print(f"median skew, framework vs {k}: {sf['median']:.0f} us vs {b['median']:.0f} us "
              f"({verdict}, ratio {sf['median'] / b['median']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
