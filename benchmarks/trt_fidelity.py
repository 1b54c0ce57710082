"""Is the framework's GPU number the engine's GPU number? The same TensorRT engine, in
the same process, timed by (a) a bare loop of CUDA events around ``execute_async_v3``
with ``cudaDeviceSynchronize`` and (b) the framework's TensorRT runner through
``timing.run_loop`` (device buffers only, sync device), alternated in rounds so clock
drift hits both alike; each round's framework p50 is compared with the bare p50 of the
same round and the median of those ratios is reported. Targets: GPU-time p50 within
2 %, host-time overhead <= 3 %.

    python benchmarks/trt_fidelity.py [--model yolov8n-cls:224 --model yolov8n:640] [--rounds 5]
                                      [--cuda cuda-python|pycuda]
Needs a GPU, TensorRT and a CUDA binding: ``--cuda`` picks the framework's facade
(``TRB_CUDA``), and the bare loop is written in that same binding. On a machine whose TensorRT lacks cuBLAS / cuDNN add
--tactics none --opt-level 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


class _RawCudaPython:
    """The bare loop's calls, straight to cuda-python's runtime."""

    def __init__(self, cuda):
        self.rt, self.stream = cuda.rt, cuda.stream()
        self.a, self.b = cuda.event(), cuda.event()

    def handle(self) -> int:
        return self.stream

    def start(self):
        self.rt.cudaEventRecord(self.a, self.stream)

    def stop_and_wait(self):
        self.rt.cudaEventRecord(self.b, self.stream)
        self.rt.cudaDeviceSynchronize()

    def elapsed_ms(self) -> float:
        return self.rt.cudaEventElapsedTime(self.a, self.b)[1]


class _RawPyCuda:
    """The bare loop's calls, straight to pycuda's driver objects."""

    def __init__(self, cuda):
        drv = cuda.drv
        self.drv, self.stream = drv, drv.Stream(1)
        self.a, self.b = drv.Event(), drv.Event()

    def handle(self) -> int:
        return self.stream.handle

    def start(self):
        self.a.record(self.stream)

    def stop_and_wait(self):
        self.b.record(self.stream)
        self.drv.Context.synchronize()

    def elapsed_ms(self) -> float:
        return self.a.time_till(self.b)


def bare_loop(model, n: int, warmup: int):
    """The reference: what a careful user writes by hand, in the same CUDA binding."""
    from trt_ray_bench.engines import _cuda
    from trt_ray_bench.engines._trt_build import CapturingLogger, deserialize, io_tensors, trt_module

    trt = trt_module()
    cuda = _cuda.load()
    raw = _RawPyCuda(cuda) if cuda.name == "pycuda" else _RawCudaPython(cuda)
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
    stream = raw.handle()
    gpu, host = [], []
    for i in range(warmup + n):
        t0 = time.perf_counter_ns()
        raw.start()
        ctx.execute_async_v3(stream)
        raw.stop_and_wait()
        t1 = time.perf_counter_ns()
        if i >= warmup:
            gpu.append(raw.elapsed_ms())
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
    ap.add_argument("--cuda", choices=("auto", "cuda-python", "pycuda"), default=None,
                    help="the CUDA binding of the facade and of the bare loop (sets TRB_CUDA)")
    args = ap.parse_args(argv)
    if args.cuda:
        os.environ["TRB_CUDA"] = args.cuda  # before anything loads a facade
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        print("no TensorRT here: this benchmark needs a GPU with TensorRT; nothing measured")
        return 0
    from trt_ray_bench.engines import _cuda, prepare_model
    from trt_ray_bench.engines import resolve_model
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
        binding = _cuda.load(None)
        print(f"{ref} {args.precision} ({m.engine['gpu']}, TensorRT {m.engine['trt_version']}, "
              f"via {binding.name} {binding.version}), {args.rounds} rounds x {args.iterations} iterations:")
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
