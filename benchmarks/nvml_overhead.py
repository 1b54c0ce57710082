"""What NVML telemetry costs: one ``NvmlSampler.read()``, and how much it disturbs a timed
GPU workload when a Collector polls it in another process, as the Monitor actor does.

read cost   median µs of ``read()`` over ``--polls`` calls in this process, and of each
            NVML call in it (what to drop first if polls are too slow)
disturbance a fixed workload timed per iteration (host clock, launch + synchronize),
            in interleaved rounds of: no sampler, a sampler process at 100 Hz, one at
            1000 Hz. Reports the median and p99 latency change against no sampler, the
            polls the sampler actually made, and the round-to-round spread of the
            no-sampler medians (the noise floor: changes below it are not resolved).

Workload (``--workload``, default the first that works): ``torch`` matmul on the GPU
(``--size`` square, fp16); ``cuda``: cuda-python, which has no kernels of its own, so
device-to-device copies of ``--mbytes`` MiB; ``cpu``: a numpy matmul (NVML is still
sampled; the figure is then CPU interference only).

    python benchmarks/nvml_overhead.py [--gpu 0] [--workload auto] [--rounds 7] [--iterations 2000]

Exits 0 with one line saying so where no NVIDIA GPU answers through NVML.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import sys
import time

import numpy as np

TARGET_PCT = 1.0  # "without disturbing the measured latency by more than 1%"
RATES_HZ = (100, 1000)


# -------------------------------------------------------------------------- workloads
def _torch(gpu: int, size: int, mbytes: int):
    import torch

    if not torch.cuda.is_available():
        raise ImportError("torch without CUDA")
    dev = torch.device("cuda", gpu)
    a = torch.randn(size, size, device=dev, dtype=torch.float16)
    b = torch.randn(size, size, device=dev, dtype=torch.float16)

    def step():
        torch.matmul(a, b)
        torch.cuda.synchronize(dev)

    return f"torch {torch.__version__}: {size}x{size} fp16 matmul on cuda:{gpu} + synchronize", step


def _cuda_python(gpu: int, size: int, mbytes: int):
    try:
        from cuda.bindings import runtime as rt  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart as rt

    def ok(ret):
        if int(ret[0]) != 0:
            raise RuntimeError(f"CUDA error {ret[0]}")
        return ret[1] if len(ret) > 1 else None

    ok(rt.cudaSetDevice(gpu))
    n = mbytes * 2**20
    src, dst = ok(rt.cudaMalloc(n)), ok(rt.cudaMalloc(n))
    ok(rt.cudaMemset(src, 1, n))
    stream = ok(rt.cudaStreamCreate())
    d2d = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice

    def step():
        rt.cudaMemcpyAsync(dst, src, n, d2d, stream)
        rt.cudaStreamSynchronize(stream)

    return f"cuda-python: {mbytes} MiB device-to-device copy on GPU {gpu} + stream synchronize", step


def _numpy_cpu(gpu: int, size: int, mbytes: int):
    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)

    def step():
        a @ a

    return "numpy: 256x256 fp32 matmul on the CPU (no GPU workload could be made)", step


WORKLOADS = {"torch": _torch, "cuda": _cuda_python, "cpu": _numpy_cpu}


def workload(kind: str, gpu: int, size: int, mbytes: int):
    """The named workload, or with ``auto`` the first of torch, cuda-python, CPU that works."""
    if kind != "auto":
        return WORKLOADS[kind](gpu, size, mbytes)
    for make in WORKLOADS.values():
        try:
            return make(gpu, size, mbytes)
        except Exception:  # noqa: BLE001 - try the next one
            continue
    raise RuntimeError("no workload")


def timed(step, n: int) -> np.ndarray:
    clock = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        step()
        out[i] = clock() - t0
    return out


# ---------------------------------------------------------------- the sampler process
def _sampler_process(gpu: int, interval_s: float, ready, stop, result) -> None:
    from trt_ray_bench.telemetry import Collector, NvmlSampler

    c = Collector([NvmlSampler(gpu)], interval_s).start()
    ready.set()
    stop.wait()
    rows = c.stop()
    stamps = sorted(set(rows["t_ns"]))
    span = (stamps[-1] - stamps[0]) / 1e9 if len(stamps) > 1 else 0.0
    result.put((len(stamps) - 1, span, c.errors))  # intervals between polls


class SamplerProcess:
    """A Collector polling one NvmlSampler in a spawned process, for the ``with`` body."""

    def __init__(self, ctx, gpu: int, hz: float):
        self.ctx, self.gpu, self.hz = ctx, gpu, hz
        self.polls = self.span = 0
        self.errors = []

    def __enter__(self):
        c = self.ctx
        self.ready, self.stop, self.result = c.Event(), c.Event(), c.Queue()
        self.p = c.Process(target=_sampler_process, args=(self.gpu, 1.0 / self.hz, self.ready, self.stop, self.result))
        self.p.start()
        if not self.ready.wait(60):
            raise RuntimeError("sampler process did not start")
        time.sleep(0.1)  # past its first polls
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.polls, self.span, self.errors = self.result.get(timeout=60)
        self.p.join(10)


# ------------------------------------------------------------------------------- main
def nvml_ready(gpu: int):
    """None where NVML answers for ``gpu``, else why not."""
    try:
        import pynvml
    except ImportError:
        return "pynvml (nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
        n = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        return f"NVML does not answer ({exc})"
    if gpu >= n:
        return f"NVML sees {n} GPU(s), no GPU {gpu}"
    return None


def read_cost(gpu: int, polls: int):
    from trt_ray_bench.telemetry import NvmlSampler

    s = NvmlSampler(gpu)
    s.read()  # settles the reader table (drops what this GPU does not support)
    clock = time.perf_counter_ns
    t = np.empty(polls, dtype=np.int64)
    for i in range(polls):
        t0 = clock()
        s.read()
        t[i] = clock() - t0
    per_call = []
    for r in s._readers:  # each NVML call alone, same order as in a poll
        call = r.calls[0]
        c = np.empty(min(polls, 500), dtype=np.int64)
        for i in range(len(c)):
            t0 = clock()
            call()
            c[i] = clock() - t0
        per_call.append(("+".join(m for m, _ in r.outputs), float(np.median(c)) / 1e3))
    return s, float(np.median(t)) / 1e3, float(np.percentile(t, 99)) / 1e3, per_call


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--polls", type=int, default=2000, help="read() calls for its cost (default 2000)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds of every variant (default 7)")
    ap.add_argument("--iterations", type=int, default=2000, help="timed iterations per variant per round")
    ap.add_argument("--workload", choices=["auto", *WORKLOADS], default="auto",
                    help="auto: torch on the GPU, else cuda-python, else the CPU")
    ap.add_argument("--size", type=int, default=4096, help="torch matmul size (default 4096)")
    ap.add_argument("--mbytes", type=int, default=256, help="cuda-python copy size in MiB (default 256)")
    args = ap.parse_args(argv)

    why = nvml_ready(args.gpu)
    if why:
        print(f"nvml_overhead: cannot run here: {why}; it needs an NVIDIA GPU with its driver. Nothing measured.")
        return 0

    from trt_ray_bench.telemetry import gpu_info

    info = gpu_info(args.gpu)
    print(f"NVML telemetry overhead  (python {platform.python_version()}, {platform.machine()}, "
          f"GPU {args.gpu}: {info['name']}, driver {info['driver_version']}, CUDA {info['cuda_driver_version']})")

    s, med_us, p99_us, per_call = read_cost(args.gpu, args.polls)
    print()
    print(f"one read(): median {med_us:.1f} us, p99 {p99_us:.1f} us over {args.polls} polls "
          f"({len(s.metrics)} metrics; at 100 Hz that is {med_us * 100 / 1e4:.2f}% of a core, "
          f"at 1000 Hz {med_us * 1000 / 1e4:.1f}%)")
    for name, us in per_call:
        print(f"  {us:8.1f} us  {name}")
    for metric, reason in s.unavailable.items():
        print(f"  not read: {metric} ({reason})")
    s.close()

    desc, step = workload(args.workload, args.gpu, args.size, args.mbytes)
    t_end = time.perf_counter() + 2.0  # warm-up: GPU clocks up, caches, allocator
    while time.perf_counter() < t_end:
        timed(step, 50)
    ctx = mp.get_context("spawn")  # the sampler process must not inherit a CUDA context
    lat = {k: [] for k in (0,) + RATES_HZ}
    polls = {hz: [] for hz in RATES_HZ}
    errors = set()
    for rnd in range(args.rounds):
        order = [0, *RATES_HZ]
        order = order[rnd % len(order):] + order[:rnd % len(order)]  # drift hits all alike
        for hz in order:
            if hz == 0:
                lat[0].append(timed(step, args.iterations))
                continue
            with SamplerProcess(ctx, args.gpu, hz) as sp:
                lat[hz].append(timed(step, args.iterations))
            polls[hz].append(sp.polls / sp.span if sp.span else 0.0)
            errors.update(sp.errors)

    base_rounds = np.array([np.median(x) for x in lat[0]])
    noise = (base_rounds.max() - base_rounds.min()) / np.median(base_rounds) * 100
    base = np.concatenate(lat[0])
    b_med, b_p99 = np.median(base), np.percentile(base, 99)
    print()
    print(f"workload: {desc}")
    print(f"{args.rounds} rounds x {args.iterations} iterations per variant, interleaved; "
          f"latency = host time of one iteration")
    print(f"{'sampler':<22} {'median us':>10} {'p99 us':>10} {'median':>9} {'p99':>9} {'polls/s':>9}")
    print(f"{'none':<22} {b_med / 1e3:10.1f} {b_p99 / 1e3:10.1f} {'':>9} {'':>9} {'':>9}")
    verdicts = []
    for hz in RATES_HZ:
        x = np.concatenate(lat[hz])
        med, p99 = np.median(x), np.percentile(x, 99)
        d_med, d_p99 = (med / b_med - 1) * 100, (p99 / b_p99 - 1) * 100
        print(f"{f'NVML at {hz} Hz':<22} {med / 1e3:10.1f} {p99 / 1e3:10.1f} {d_med:+8.2f}% {d_p99:+8.2f}% "
              f"{np.median(polls[hz]):9.0f}")
        verdicts.append((hz, d_med))
    print(f"noise floor: the no-sampler round medians span {noise:.2f}% of their median"
          f"{'' if noise <= TARGET_PCT else f' (more than the {TARGET_PCT:.0f}% target: a PASS is less certain)'}")
    for e in sorted(errors):
        print(f"sampler error: {e}")
    print()
    for hz, d in verdicts:
        if abs(d) <= TARGET_PCT:
            v = "PASS"
        elif abs(d) <= noise:
            v = "UNRESOLVED (within the noise floor)"
        else:
            v = "FAIL"
        print(f"{v}  {hz} Hz: median latency {d:+.2f}% vs the {TARGET_PCT:.0f}% target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
