"""Is the framework's GPU number the engine's GPU number? The same TensorRT engine, in
the same process, timed by (a) a bare loop of CUDA events around ``execute_async_v3``
with ``cudaDeviceSynchronize`` and (b) the framework's TensorRT runner through
``timing.run_loop`` (device buffers only, sync device), alternated in rounds so clock
drift hits both alike; each round's framework p50 is compared with the bare p50 of the
same round and the median of those ratios is reported. Targets: GPU-time p50 within
2 %, host-time overhead <= 3 %.

    python benchmarks/trt_fidelity.py [--model yolov8n-cls:224 --model yolov8n:640] [--rounds 5]
Needs a GPU, TensorRT and cuda-python. On the lent H100 add --tactics none.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def bare_loop(model, n: int, warmup: int):
    """The reference: what a careful user writes by hand."""
    from trt_ray_bench.engines import _cuda
    from trt_ray_bench.engines._trt_build import CapturingLogger, deserialize, io_tensors, trt_module

    trt = trt_module()
    cuda = _cuda.load()
    rt = cuda.rt
    logger = CapturingLogger(trt)
    runtime = trt.Runtime(logger)
    engine = deserialize(trt, runtime, logger, model.engine_path, "bench")
    ctx = engine.create_execution_context()
    ins, outs = io_tensors(trt, engine)
    name, shape, dt = ins[0]
    shape = [model.batch if d < 0 else d for d in shape]
    ctx.set_input_shape(name, shape)
    ctx.set_tensor_address(name, cuda.malloc(int(np.prod(shape)) * np.dtype(dt).itemsize))
    for name, _, dt in outs:
        shape = list(ctx.get_tensor_shape(name))
        ctx.set_tensor_address(name, cuda.malloc(int(np.prod(shape)) * np.dtype(dt).itemsize))
    stream = cuda.stream()
    a, b = cuda.event(), cuda.event()
    gpu, host = [], []
    for i in range(warmup + n):
        t0 = time.perf_counter_ns()
        rt.cudaEventRecord(a, stream)
        ctx.execute_async_v3(stream)
        rt.cudaEventRecord(b, stream)
        rt.cudaDeviceSynchronize()
        t1 = time.perf_counter_ns()
        if i >= warmup:
            gpu.append(rt.cudaEventElapsedTime(a, b)[1])
            host.append((t1 - t0) / 1e6)
    return np.asarray(gpu), np.asarray(host)


def framework_loop(model, n: int, warmup: int):
    from trt_ray_bench.engines import load_runner, make_inputs
    from trt_ray_bench.timing import LoopPlan, run_loop

    r = load_runner(model)
    r.prepare(make_inputs("dummy", model.hw, model.batch))
    s = run_loop(r, LoopPlan(iterations=n, warmup=warmup, sync="device"))
    r.close()
    w = np.asarray(s.warmup)
    return np.asarray(s.gpu_ms)[~w], (np.asarray(s.host_ns) / 1e6)[~w]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="ARCH[-task]:IMGSZ, e.g. yolov8n-cls:224 (repeatable)")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tactics", default="default", choices=("default", "none"))
    ap.add_argument("--opt-level", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        print("no TensorRT here: this benchmark needs a GPU with TensorRT; nothing measured")
        return 0
    from trt_ray_bench.engines import prepare_model
    from trt_ray_bench.models import resolve_model
    from trt_ray_bench.spec import ModelSpec, split_arch

    ok = True
    for ref in args.model or ["yolov8n-cls:224", "yolov8n:640"]:
        arch, size = ref.split(":")
        a, task = split_arch(arch)
        opts = {"tactics": args.tactics, "transfers": False}
        if args.opt_level is not None:
            opts["opt_level"] = args.opt_level
        m = resolve_model(ModelSpec(arch=a, task=task or "detect", imgsz=int(size), backend="tensorrt",
                                    precision=args.precision, options=opts), ref)
        m = prepare_model(m, ref)
        rows = []
        for _ in range(args.rounds):
            bg, bh = bare_loop(m, args.iterations, args.warmup)
            fg, fh = framework_loop(m, args.iterations, args.warmup)
            rows.append((np.median(bg), np.median(fg), np.median(bh), np.median(fh)))
        r = np.asarray(rows)
        bg, fg, bh, fh = (float(np.median(r[:, i])) for i in range(4))
        # paired: each round's framework p50 over the bare p50 of the round next to it, so
        # the GPU's own drift between rounds (several % on a sub-ms engine) cancels
        dg = float(np.median(r[:, 1] / r[:, 0]) - 1) * 100
        dh = float(np.median(r[:, 3] / r[:, 2]) - 1) * 100
        print(f"{ref} {args.precision} ({m.engine['gpu']}, TensorRT {m.engine['trt_version']}), "
              f"{args.rounds} rounds x {args.iterations} iterations:")
        spread = float(np.percentile(r[:, 0], 90) / np.percentile(r[:, 0], 10) - 1) * 100
        print(f"  GPU time p50   bare {bg:.4f} ms   framework {fg:.4f} ms   paired diff {dg:+.2f}%  (target within 2%)")
        print(f"  host time p50  bare {bh:.4f} ms   framework {fh:.4f} ms   paired overhead {dh:+.2f}%  (target <= 3%)")
        print(f"  the bare loop's own p50 varies {spread:.1f}% between rounds (p90/p10)")
        print(f"  per round (bare gpu, fw gpu, bare host, fw host): "
              + "; ".join(" ".join(f"{v:.4f}" for v in row) for row in rows))
        good = abs(dg) <= 2 and dh <= 3
        ok &= good
        print(f"  {'PASS' if good else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
