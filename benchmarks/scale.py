"""How the results tools scale: time and peak RSS of ``results.load``, ``trb compare`` (every
``--by``), ``trb report`` and of writing a run's tables, on synthetic results trees of 1 M
and 10 M inferences.

The trees are written by the project's own code: each run's raw outcomes (what the model
actors return to the driver) are simulated, and ``cluster.node_run.build_tables`` turns
them into the runs / samples / telemetry tables (statistics by ``timing._stats.summarize``,
windows, diagnostics, every column a real run fills), which ``results.write_run`` writes.
The experiment (``scale_synthetic``) is a realistic one:

- the five YOLO tasks (yolov8n-cls, yolov8n, yolov8n-pose, yolov8n-seg, yolov8n-obb; TensorRT
  FP16 on an H100: levels from tests/data/h100), ``schedule: both`` (alone, then together),
  modes inference and validation (the validation rows carry the pipeline's stage times:
  load, pre, infer, post, metrics), three timing variants (back-to-back, a 2 ms gap
  slept, the same gap with an untimed dummy inference first), 3 repeats interleaved and
  process-isolated (a fresh pid per model and repeat, a process factor on its level), and
  ``--runs`` runs of it (default 4): 180 rows per run;
- per row an AR(1) series (rho 0.5 inference, 0.3 validation; ``scipy.signal.lfilter``)
  made lognormal around the row's level, a few spikes, a cold warm-up, ``gpu_ms`` (CUDA
  events) below the host time, enqueue times; start / end times consistent over the
  whole run (phases one after another, together phases released at one instant after
  their warm-ups and kept-warm barrier inferences, filled until the slowest model has its
  count), warm-up and in-window flags as the driver sets them;
- telemetry at 10 Hz over the run's span: NVML-like metrics (clocks, utilisation with
  ``avg_s`` 1/6 s, power averaged over 1 s, temperature, P-state, throttle reasons, memory),
  host CPU / RAM, and the foreign-load scan at 1 Hz.

The inferences are split over the rows as a real run splits them: every inference-mode
row counts ``iterations`` measured ones (together: the slowest model its count, the others
filling), every validation row one pass over a data set a fifth that size; ``iterations`` is
chosen so that the whole tree holds about ``N`` samples (warm-ups included).

Each measurement runs in a fresh child process, one at a time; its peak RSS is exact: the
``ru_maxrss`` that ``os.wait4`` returns for that child (its largest process, children
included), started from a small launcher (``LAUNCHER``: Linux counts in ``ru_maxrss`` the
image a process replaced at ``exec``, so a child started straight from this script would
report at least this script's RSS). A watchdog polls the child's RSS (with its children) every 50 ms and kills it
above ``--rss-limit-gb`` (default 12), or after ``--timeout`` seconds (default 300); the row
then says so. The writing row runs the driver's writing path in a child: it simulates one
run of ``N`` inferences (the raw outcomes held in memory, as the driver holds them after
``ray.get``; the telemetry as the Monitor's lists), then times what the code offers to
write it: ``build_tables`` + ``write_run``, or the streaming writer where the code has one.

Targets (for 10 M samples on a 2-core machine; applied at every size): ``trb
compare`` <= 10 s and <= 1 GB peak, ``trb report`` <= 30 s and <= 1.5 GB, the driver writing
a run's tables <= 1 GB. MB = 10^6 bytes, GB = 10^9 bytes.

The code measured is whatever ``trt_ray_bench`` this Python imports (``PYTHONPATH`` to
measure another checkout); the children inherit the environment. Trees are kept under
``--out`` and reused by a later call with the same parameters (``tree.json`` says what made
them), so the code before and after a change is measured on the same trees.

    python benchmarks/scale.py                          # 1 M and 10 M, trees in a temporary folder
    python benchmarks/scale.py --samples 1e6 --out /tmp/scale --keep
    PYTHONPATH=/tmp/before python benchmarks/scale.py --out /tmp/scale --keep   # another checkout

(about 3 min for 1 M; 10 M: several minutes to make the tree, then each command's own time)
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: name, task, imgsz, inference p50 alone (ms, TensorRT FP16 on an H100, tests/data/h100),
#: together factor, validation stage p50s alone (load, pre, infer, post, metrics; ms)
MODELS = [
    ("yolov8n-cls", "classify", 224, 0.48, 1.8, (0.28, 0.20, 0.51, 0.10, 0.25)),
    ("yolov8n", "detect", 640, 0.92, 2.2, (1.40, 1.50, 2.40, 1.20, 0.70)),
    ("yolov8n-pose", "pose", 640, 1.14, 2.1, (1.10, 1.80, 2.00, 2.20, 1.20)),
    ("yolov8n-seg", "segment", 640, 1.28, 2.0, (1.00, 1.20, 2.10, 0.70, 0.30)),
    ("yolov8n-obb", "obb", 1024, 1.52, 2.0, (3.30, 3.00, 4.00, 3.50, 1.10)),
]
STAGE_KEYS = ("load_ms", "pre_ms", "infer_ms", "post_ms", "metrics_ms")
#: variant -> (gap s, prewarm, level factor alone, level factor together): the gap's cold start
VARIANTS = [("back-to-back", 0.0, "none", 1.0, 1.0), ("gap-sleep", 0.002, "none", 1.35, 1.2),
            ("gap-dummy", 0.002, "dummy", 1.02, 1.01)]
NO_VARIANT = ("", 0.0, "none", 1.0, 1.0)
#: The two experiments of a tree of each size, each of about N samples. ``alone_together``
#: is the common case the targets are about (few conditions, many inferences each);
#: ``study`` adds what ``--by mode / stage / gap / variant / gap_s`` need (a validation mode,
#: timing variants), six times the conditions, so its commands also carry the per-row cost.
DESIGNS = {
    "alone_together": {"experiment": "scale_alone_together", "modes": ("inference",), "variants": ()},
    "study": {"experiment": "scale_study", "modes": ("inference", "validation"),
              "variants": ("back-to-back", "gap-sleep", "gap-dummy")},
}
REPEATS, WARMUP, VAL_SHARE = 3, 20, 0.2
LEAD_S, TEL_HZ = 0.05, 10.0
GPU = "NVIDIA H100 80GB HBM3"
GPU_UUID = "GPU-5c1e4a2e-0000-4000-8000-5ca1e5ca1e00"
#: the tree generator's version: a tree.json of another version is made again
TREE_VERSION = 1

#: (target seconds, target peak MB) per kind of command
TARGETS = {"compare": (10.0, 1000.0), "report": (30.0, 1500.0), "write": (None, 1000.0)}


# --------------------------------------------------------------------------- the synthetic run
def spec_dict(design: dict, n_img: int, iterations: int) -> dict:
    out = dict(
        name=design["experiment"],
        description="synthetic: benchmarks/scale.py",
        schedule="both", repeats=REPEATS, repeat_isolation="process", repeat_order="interleaved",
        modes=list(design["modes"]),
        timing={"warmup": WARMUP, "iterations": iterations, "sync": "device", "start_lead_s": LEAD_S},
        telemetry={"interval_s": 1.0 / TEL_HZ},
        models=[{"arch": "yolov8n", "task": task, "imgsz": imgsz, "backend": "tensorrt", "precision": "fp16"}
                for _, task, imgsz, *_ in MODELS],
    )
    if any(m != "inference" for m in design["modes"]):
        out["data"] = {"synthetic": n_img}
    if design["variants"]:
        out["variants"] = [{"name": v} if gap == 0 else {"name": v, "timing": {"gap_s": gap, "prewarm": pre}}
                           for v, gap, pre, *_ in VARIANTS if v in design["variants"]]
    return out


def _variant(name: str) -> tuple:
    return next((v for v in VARIANTS if v[0] == name), NO_VARIANT)


def ar1_lognormal(rng: np.random.Generator, n: int, rho: float, sigma: float) -> np.ndarray:
    """exp(sigma z - sigma^2 / 2) of a stationary unit-variance AR(1) series z of lag-1
    correlation rho (``scipy.signal.lfilter``), with rare spikes (0.1 %, 2-6x)."""
    from scipy.signal import lfilter

    e = rng.standard_normal(n)
    z = lfilter([math.sqrt(1.0 - rho * rho)], [1.0, -rho], e, zi=[rho * rng.standard_normal()])[0]
    x = np.exp(sigma * z - sigma * sigma / 2.0)
    k = rng.random(n) < 0.001
    x[k] *= rng.uniform(2.0, 6.0, int(k.sum()))
    return x


class RunSim:
    """The raw outcomes of one run of the synthetic experiment, as ``execute`` returns them."""

    def __init__(self, rng: np.random.Generator, iterations: int, n_img: int, run_index: int, t0_ns: int):
        self.rng, self.k, self.n_img, self.run_index = rng, iterations, n_img, run_index
        self.t = int(t0_ns)
        self.busy: List[Tuple[int, int]] = []
        self.run_factor = math.exp(0.02 * rng.standard_normal())
        #: (repeat, model) -> the level factor of that process
        self.proc = {(r, m[0]): math.exp(0.03 * rng.standard_normal()) for r in range(REPEATS) for m in MODELS}

    def level(self, model: tuple, repeat: int, mode: str, variant: str, together: bool) -> np.ndarray:
        """The row's p50 level per stage (validation) or of the inference (ms)."""
        vf = _variant(variant)
        f = self.run_factor * self.proc[(repeat, model[0])] * (vf[4] if together else vf[3])
        if mode == "inference":
            return np.array([model[3] * (model[4] if together else 1.0) * f])
        tf = np.array([1.15, 1.15, 1.4, 1.15, 1.1]) if together else np.ones(5)
        return np.asarray(model[5]) * tf * f

    def step_ms(self, level: np.ndarray, variant: str) -> float:
        """Mean time from one inference's start to the next's (ms)."""
        _, gap, pre, *_ = _variant(variant)
        one = float(level.sum())
        return one + 0.004 + gap * 1e3 + (one if pre == "dummy" else 0.0)

    def series(self, level: np.ndarray, mode: str, n: int, warm: int) -> Dict[str, np.ndarray]:
        """Latencies (ms) of ``n`` inferences, the first ``warm`` of them a cold warm-up."""
        rng = self.rng
        cold = np.ones(n)
        cold[:warm] = 1.0 + 3.0 * np.exp(-np.arange(warm) / 3.0)
        if mode == "inference":
            host = level[0] * ar1_lognormal(rng, n, 0.5, 0.06) * cold
            gpu = np.maximum(host * 0.93 - 0.01, 0.005) * np.exp(0.01 * rng.standard_normal(n))
            return {"host": host, "gpu": gpu, "stages": {}}
        shared = ar1_lognormal(rng, n, 0.3, 0.08) * cold
        st = {k: level[i] * shared * np.exp(0.12 * rng.standard_normal(n) - 0.0072) for i, k in enumerate(STAGE_KEYS)}
        host = sum(st.values()) + 0.02
        return {"host": host, "gpu": st["infer_ms"] * 0.85, "stages": st}

    def times(self, host_ms: np.ndarray, t0: int, variant: str) -> Tuple[np.ndarray, np.ndarray]:
        """Start and end times (ns) of inferences run one after another from ``t0``."""
        _, gap, pre, *_ = _variant(variant)
        lat = np.round(host_ms * 1e6).astype(np.int64)
        step = lat + 4000 + int(gap * 1e9) + (lat if pre == "dummy" else 0)
        ts = t0 + np.concatenate([[0], np.cumsum(step[:-1])])
        return ts, ts + lat

    def raw(self, model: tuple, repeat: int, mode: str, s: Dict[str, np.ndarray], ts, te, warm: int,
            instant: int, barrier: int) -> dict:
        n = len(ts)
        out = {
            "t_start_ns": ts, "t_end_ns": te,
            "enqueue_ns": np.round(np.minimum(s["host"], 0.03 + 0.02 * self.rng.random(n)) * 1e6).astype(np.int64),
            "warmup": np.arange(n) < warm, "instant_ns": int(instant),
            "stages": s["stages"], "released_ns": int(instant), "n_target": None, "barrier_warmup_n": int(barrier),
            "t_sync_end_ns": None, "sync_wait_ns": None, "gpu_capacity": None, "gpu_missing": 0,
            "pid": 10000 + 1000 * self.run_index + 10 * repeat + [m[0] for m in MODELS].index(model[0]),
            "gpu_ms": s["gpu"],
        }
        if mode != "inference":
            out["data"] = {"summary": f"synthetic: {self.n_img} images", "n_images": self.n_img,
                           "n_labels": 3 * self.n_img}
            task = model[1]
            metrics = {"n_images": self.n_img}
            if task == "classify":
                metrics.update(top1=0.0, top5=0.0)
            elif task == "detect" or task == "obb":
                metrics.update(map50=0.0, map50_95=0.0)
            else:
                metrics.update(box_map50=0.0, box_map50_95=0.0)
                metrics.update({f"{'mask' if task == 'segment' else 'pose'}_map50": 0.0,
                                f"{'mask' if task == 'segment' else 'pose'}_map50_95": 0.0})
            out["metrics"] = metrics
        return out

    def phase(self, ph) -> List[dict]:
        models = [m for m in MODELS if m[0] in ph.models]
        together = ph.phase == "together"
        target = self.k if ph.mode == "inference" else self.n_img
        t0 = self.t
        if not together:
            m = models[0]
            lv = self.level(m, ph.repeat, ph.mode, ph.variant, False)
            n = WARMUP + target
            s = self.series(lv, ph.mode, n, WARMUP)
            ts, te = self.times(s["host"], t0, ph.variant)
            outs = [{"phase": ph, "model": m[0], "status": "ok",
                     "raw": self.raw(m, ph.repeat, ph.mode, s, ts, te, WARMUP, int(te[WARMUP - 1]) + 2000, 0)}]
            end = int(te[-1])
        else:
            lvs = [self.level(m, ph.repeat, ph.mode, ph.variant, True) for m in models]
            steps = [self.step_ms(lv, ph.variant) * 1e6 for lv in lvs]
            starts = [t0 + int(self.rng.uniform(2e5, 1e6)) for _ in models]
            warm_end = [st + int(WARMUP * sp * 1.6) for st, sp in zip(starts, steps)]
            instant = max(warm_end) + int(LEAD_S * 1e9)
            span = target * max(steps)  # the slowest model's count; the others fill
            grow = 1.3
            while True:  # each model released at the instant (its own spin's jitter), run until the fill stops
                made = []
                for lv, sp, st, we in zip(lvs, steps, starts, warm_end):
                    barrier = max(0, int((instant - we) / sp) - 2)  # kept warm at the barrier
                    warm = WARMUP + barrier
                    s = self.series(lv, ph.mode, warm + int(span / sp * grow) + 50, WARMUP)
                    ts_w, te_w = self.times(s["host"][:warm], st, ph.variant)
                    ts_m, te_m = self.times(s["host"][warm:], instant + int(self.rng.uniform(1e3, 8e3)), ph.variant)
                    made.append((s, barrier, warm, sp, ts_w, te_w, ts_m, te_m))
                # the fill stops once every model has its count in the common window
                w0 = max(x[6][0] for x in made)
                first = [int(np.searchsorted(x[6], w0)) for x in made]
                if any(f + target > len(x[7]) for f, x in zip(first, made)):
                    grow *= 2
                    continue
                stop = max(int(x[7][f + target - 1]) for f, x in zip(first, made))
                # a model stops before its next inference: the one under way when told ends too
                keeps = [int(np.searchsorted(x[6], stop + x[3])) for x in made]
                if all(k < len(x[6]) for k, x in zip(keeps, made)):
                    break
                grow *= 2
            outs, end = [], 0
            for m, (s, barrier, warm, sp, ts_w, te_w, ts_m, te_m), k in zip(models, made, keeps):
                keep = warm + max(k, 1)
                cut = {"host": s["host"][:keep], "gpu": s["gpu"][:keep],
                       "stages": {key: v[:keep] for key, v in s["stages"].items()}}
                ts, te = np.concatenate([ts_w, ts_m])[:keep], np.concatenate([te_w, te_m])[:keep]
                outs.append({"phase": ph, "model": m[0], "status": "ok",
                             "raw": self.raw(m, ph.repeat, ph.mode, cut, ts, te, warm, instant, barrier)})
                end = max(end, int(te[-1]))
        self.busy.append((t0, end))
        self.t = end + int(0.3e9)  # the driver between phases
        return outs

    def telemetry(self, lists: bool) -> dict:
        """The Monitor's rows over the run's span at 10 Hz (the foreign-load scan at 1 Hz)."""
        rng = self.rng
        lo, hi = self.busy[0][0] - int(1e9), self.busy[-1][1] + int(1e9)
        ticks = np.arange(lo, hi, int(1e9 / TEL_HZ), dtype=np.int64)
        ticks = ticks + rng.integers(0, 2_000_000, len(ticks))
        starts = np.array([b[0] for b in self.busy])
        ends = np.array([b[1] for b in self.busy])
        i = np.searchsorted(starts, ticks, side="right") - 1
        busy = (i >= 0) & (ticks <= ends[np.maximum(i, 0)])
        nt = len(ticks)
        b = busy.astype(float)
        from scipy.signal import lfilter

        temp = 33.0 + 6.0 * lfilter([1.0 / 300], [1.0, -(1.0 - 1.0 / 300)], b)  # warms up over ~30 s
        metrics = [  # source, metric, unit, avg_s, values
            ("nvml", "gpu_freq_mhz", "MHz", 0.0, np.full(nt, 1980.0)),
            ("nvml", "gpu_graphics_mhz", "MHz", 0.0, np.full(nt, 1980.0)),
            ("nvml", "mem_freq_mhz", "MHz", 0.0, np.full(nt, 2619.0)),
            ("nvml", "gpu_util_pct", "%", 1.0 / 6, np.round(b * rng.uniform(40, 95, nt))),
            ("nvml", "mem_util_pct", "%", 1.0 / 6, np.round(b * rng.uniform(1, 8, nt))),
            ("nvml", "power_mw:gpu", "mW", 1.0, 70000.0 + b * rng.uniform(80000, 180000, nt)),
            ("nvml", "temp_c:gpu", "C", 0.0, np.round(temp)),
            ("nvml", "pstate", "", 0.0, np.zeros(nt)),
            ("nvml", "throttle_reasons", "bitmask", 0.0, np.zeros(nt)),
            ("nvml", "mem_used_mib", "MiB", 0.0, 3700.0 + b * 60.0),
            ("host", "cpu_util_pct", "%", 1.0 / TEL_HZ, 5.0 + b * rng.uniform(10, 40, nt)),
            ("host", "cpu0_util_pct", "%", 1.0 / TEL_HZ, 5.0 + b * rng.uniform(10, 60, nt)),
            ("host", "cpu1_util_pct", "%", 1.0 / TEL_HZ, 5.0 + b * rng.uniform(10, 60, nt)),
            ("host", "cpu_freq_mhz", "MHz", 0.0, np.full(nt, 2100.0)),
            ("host", "ram_used_mib", "MiB", 0.0, 4400.0 + rng.normal(0, 20, nt)),
            ("host", "ram_total_mib", "MiB", 0.0, np.full(nt, 128887.7)),
        ]
        k = len(metrics)
        cols = {
            "t_ns": np.repeat(ticks, k),
            "source": np.tile(np.array([m[0] for m in metrics], dtype=object), nt),
            "metric": np.tile(np.array([m[1] for m in metrics], dtype=object), nt),
            "value": np.column_stack([m[4] for m in metrics]).ravel(),
            "unit": np.tile(np.array([m[2] for m in metrics], dtype=object), nt),
            "avg_s": np.tile(np.array([m[3] for m in metrics]), nt),
        }
        scan = ticks[:: int(TEL_HZ)]
        ns = len(scan)
        foreign = {
            "t_ns": np.repeat(scan, 2), "source": np.array(["foreign"] * 2 * ns, dtype=object),
            "metric": np.tile(np.array(["foreign_trb_runs", "scan_ms"], dtype=object), ns),
            "value": np.column_stack([np.zeros(ns), rng.uniform(1.5, 4.0, ns)]).ravel(),
            "unit": np.tile(np.array(["count", "ms"], dtype=object), ns), "avg_s": np.zeros(2 * ns),
        }
        rows = {c: np.concatenate([cols[c], foreign[c]]) for c in cols}
        order = np.argsort(rows["t_ns"], kind="stable")
        rows = {c: v[order] for c, v in rows.items()}
        if lists:  # as the Monitor returns them through Ray: Python lists
            rows = {c: v.tolist() for c, v in rows.items()}
        return {"rows": rows, "errors": []}


def make_plan(spec, run_id: str, run_dir: Path):
    from trt_ray_bench.cluster.plan import Plan, phases_of
    from trt_ray_bench.models import ResolvedModel
    from trt_ray_bench.spec import spec_to_yaml

    models = []
    for name, task, imgsz, *_ in MODELS:
        sha = hashlib.sha256(name.encode()).hexdigest()
        models.append(ResolvedModel(
            name=name, task=task, onnx_path=f"/synthetic/models/{name}-{imgsz}.onnx", sha256=sha, weights="random",
            source=f"{name}.yaml", hw=(imgsz, imgsz), batch=1, backend="tensorrt", precision="fp16",
            input_shape=(1, 3, imgsz, imgsz), exported=True,
            engine_path=f"/synthetic/engines/{name}-{imgsz}-fp16.engine",
            engine={"trt_version": "10.3.0", "typing": "weak", "cached": True, "gpu": GPU}))
    yaml_text = spec_to_yaml(spec)
    return Plan(spec=spec, run_id=run_id, run_dir=run_dir, models=models,
                phases=phases_of(spec, [m.name for m in models]), spec_yaml=yaml_text,
                spec_sha256=hashlib.sha256(yaml_text.encode()).hexdigest())


def phases(plan, sim: "RunSim"):
    """Each phase of the run and its outcomes (raw samples included), one at a time."""
    last_repeat = 0
    for ph in plan.phases:
        if ph.repeat != last_repeat:  # repeat_isolation: process: fresh actors load their engines
            sim.t += int(2e9)
            last_repeat = ph.repeat
        yield ph, sim.phase(ph)


def result_of(sim: "RunSim", outcomes: List[dict], run_index: int, lists: bool) -> dict:
    """The raw result of one run (``node_run.execute``'s) around ``outcomes``."""
    import trt_ray_bench

    info = {m[0]: {"device": "gpu", "providers": "tensorrt 10.3.0 via cuda-python", "n_inputs": 1, "gpu": GPU,
                   "cuda_visible_devices": GPU_UUID, "transfers": True, "cuda_graph": False, "load_s": 1.2}
            for m in MODELS}
    prov = {"host": "synthetic", "node_id": f"{run_index:056x}", "platform": "dgpu", "board": "", "gpu_name": GPU,
            "gpu_driver": "580.159.04", "l4t": "", "jetpack": "", "os": "Linux (synthetic)", "machine": "x86_64",
            "cpu_model": "Intel(R) Xeon(R) Processor", "cpu_count": 16, "python_version": platform.python_version(),
            "trb_version": getattr(trt_ray_bench, "__version__", "?"), "ray_version": "", "onnxruntime_version": "",
            "numpy_version": np.__version__, "ultralytics_version": "", "tensorrt_version": "10.3.0",
            "torch_version": ""}
    started = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(hours=run_index)
    return {"outcomes": outcomes, "info": info, "provenance": prov, "telemetry": sim.telemetry(lists),
            "started_at": started, "controls": {"clocks_mode": "default", "mps": False, "mps_state": "off",
                                                "warnings": []},
            "gpu": {"index": 0, "uuid": GPU_UUID, "name": GPU, "cuda_visible_devices": GPU_UUID},
            "interrupted": None}


def expected_samples(design: dict, iterations: int, n_img: int, runs: int) -> float:
    """About how many samples ``runs`` runs hold (mean levels, no noise)."""
    from trt_ray_bench.cluster.plan import Phase  # noqa: F401 - only the shapes matter here

    sim = RunSim(np.random.default_rng(0), iterations, n_img, 0, 0)
    sim.run_factor = 1.0
    sim.proc = {k: 1.0 for k in sim.proc}
    total = 0.0
    for mode in design["modes"]:
        target = iterations if mode == "inference" else n_img
        for v in [_variant(x) for x in design["variants"]] or [NO_VARIANT]:
            total += len(MODELS) * (WARMUP + target)  # alone
            lvs = [sim.level(m, 0, mode, v[0], True) for m in MODELS]
            steps = [sim.step_ms(lv, v[0]) for lv in lvs]
            warm_end = [WARMUP * sp * 1.6 for sp in steps]
            instant = max(warm_end) + LEAD_S * 1e3
            span = target * max(steps)
            total += sum(WARMUP + max(0, (instant - we) / sp - 2) + span / sp + 1 for sp, we in zip(steps, warm_end))
    return total * REPEATS * runs


def sizes_for(design: dict, n: int, runs: int) -> Tuple[int, int]:
    """``iterations`` (and the validation set, a fifth of it) that make ``runs`` runs hold about ``n`` samples."""
    a = expected_samples(design, 1000, int(1000 * VAL_SHARE), runs)
    b = expected_samples(design, 2000, int(2000 * VAL_SHARE), runs)
    k = max(10, int(round(1000 + (n - a) * 1000 / (b - a))))
    return k, max(5, int(round(k * VAL_SHARE)))


def streaming() -> bool:
    """Whether the code measured writes a run as it goes (a phase's samples at a time:
    ``cluster.node_run.RunTables`` + ``results.RunWriter``), else in one batch at the end
    (``build_tables`` + ``write_run``)."""
    from trt_ray_bench import results
    from trt_ray_bench.cluster import node_run

    return hasattr(node_run, "RunTables") and hasattr(results, "RunWriter")


def write_one(plan, sim: "RunSim", run_index: int, how: str, lists: bool) -> dict:
    """Simulate one run and write it the way the driver does (``how``: ``stream``, as
    ``node_run.run_plan`` with ``RunTables`` and ``RunWriter``: each phase's raw samples
    handed over as the phase ends, then dropped; ``batch``: every phase's held, then
    ``build_tables`` + ``write_run``). Returns the seconds spent in the project's code
    (not simulating), the samples, the telemetry rows and the RSS held before the
    project's code first ran (batch: every raw sample in memory)."""
    import psutil
    from trt_ray_bench.cluster import node_run

    spent, samples, rss, end = 0.0, 0, 0, 0
    if how == "stream":
        from trt_ray_bench.results import RunWriter

        t0 = time.perf_counter()
        writer = RunWriter(plan.run_dir)
        tables = node_run.RunTables(plan, sink=writer.write_samples)
        spent += time.perf_counter() - t0
        kept: List[dict] = []
        try:
            for _, outs in phases(plan, sim):
                samples += sum(len(o["raw"]["t_start_ns"]) for o in outs)
                end = max([end] + [int(o["raw"]["t_end_ns"][-1]) for o in outs])
                rss = max(rss, psutil.Process().memory_info().rss)
                t0 = time.perf_counter()
                tables.add(outs)  # takes the raw samples out of them
                kept.extend({k: v for k, v in o.items() if k != "raw"} for o in outs)
                spent += time.perf_counter() - t0
                del outs
            result = result_of(sim, kept, run_index, lists)
            t0 = time.perf_counter()
            writer.finish(tables.finish(result), plan.spec_yaml)
            spent += time.perf_counter() - t0
        except BaseException:
            writer.abort()
            raise
        what = "cluster.node_run.RunTables (a phase at a time) + results.RunWriter"
    else:
        from trt_ray_bench.results import write_run

        outcomes: List[dict] = []
        for _, outs in phases(plan, sim):
            outcomes.extend(outs)
        samples = sum(len(o["raw"]["t_start_ns"]) for o in outcomes)
        end = max(int(o["raw"]["t_end_ns"][-1]) for o in outcomes)
        result = result_of(sim, outcomes, run_index, lists)
        rss = psutil.Process().memory_info().rss
        t0 = time.perf_counter()
        write_run(plan.run_dir, node_run.build_tables(plan, result), plan.spec_yaml)
        spent = time.perf_counter() - t0
        what = "cluster.node_run.build_tables + results.write_run (every raw sample held)"
    return {"seconds": spent, "samples": samples, "telemetry_rows": len(result["telemetry"]["rows"]["t_ns"]),
            "rss_held_mb": rss / 1e6, "how": what, "end_ns": end}


def child_tree(root: Path, design: dict, n: int, runs: int, seed: int) -> None:
    """Write the tree: ``runs`` runs of the experiment, about ``n`` samples in all, each
    written as the code measured writes a run."""
    from trt_ray_bench.spec import spec_from_dict

    k, n_img = sizes_for(design, n, runs)
    spec = spec_from_dict(spec_dict(design, n_img, k))
    rng = np.random.default_rng(seed)
    t_ns = 1_000_000_000_000
    how = "stream" if streaming() else "batch"
    for r in range(runs):
        run_id = f"20260101-{r:02d}0000-{seed:04x}{r:02x}"
        plan = make_plan(spec, run_id, root / design["experiment"] / run_id)
        w = write_one(plan, RunSim(rng, k, n_img, r, t_ns), r, how, lists=False)
        t_ns = w["end_ns"] + int(60e9)
        print(f"  run {r + 1}/{runs} {run_id}: {w['samples']} samples ({w['seconds']:.1f} s writing)",
              file=sys.stderr, flush=True)
    print(json.dumps({"iterations": k, "n_images": n_img, "how": w["how"]}))


def child_write(n: int, seed: int, out: Path, how: str) -> None:
    """The driver's writing path for one alone_together run of about ``n`` samples: its raw
    outcomes simulated (held as the driver holds them after ``ray.get``; the telemetry as the
    Monitor's lists) and written; the seconds are those of the project's code."""
    import resource

    from trt_ray_bench.spec import spec_from_dict

    t0 = time.perf_counter()
    design = DESIGNS["alone_together"]
    k, n_img = sizes_for(design, n, 1)
    spec = spec_from_dict(spec_dict(design, n_img, k))
    run_id = f"20260102-000000-{seed:04x}ff"
    plan = make_plan(spec, run_id, out / design["experiment"] / run_id)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    w = write_one(plan, RunSim(np.random.default_rng(seed + 1), k, n_img, 0, 1_000_000_000_000), 0,
                  "stream" if how == "auto" and streaming() else ("batch" if how == "auto" else how), lists=True)
    w.update(total_s=time.perf_counter() - t0, baseline_mb=base / 1e6)
    print(json.dumps(w))


# --------------------------------------------------------------------------- measuring a child
def _tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


#: Runs the measured command as its own child and writes that child's ``ru_maxrss`` (KiB)
#: and wait status to a file. Linux records in a process's ``ru_maxrss`` the RSS of the
#: image it replaced at ``exec`` too: a command started straight from this script would
#: report at least this script's RSS (its libraries, a few hundred MB). Started from this
#: launcher (``python -S``, a few MB), it reports its own peak plus at most the launcher's.
LAUNCHER = """import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write("%d %d" % (ru.ru_maxrss, status))
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
"""


def measure(cmd: List[str], log: Path, timeout_s: float, limit_bytes: float) -> dict:
    """Run ``cmd`` in a fresh process group; its wall time, exact peak RSS (the
    ``ru_maxrss`` that ``os.wait4`` gives for it, through ``LAUNCHER``), exit status, and
    whether the watchdog stopped it (time or RSS; then the peak is the one polled). It runs
    in the log's folder: ``python -c`` puts its working folder first on ``sys.path``, and a
    checkout there would shadow the code on ``PYTHONPATH``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    rusage = log.with_suffix(".rusage")
    if rusage.exists():
        rusage.unlink()
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(rusage)] + list(cmd), stdout=out, stderr=err,
                             start_new_session=True, cwd=str(log.parent))
        killed, polled = "", 0
        while True:
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            rss = _tree_rss(p.pid)
            polled = max(polled, rss)
            if not killed and rss > limit_bytes:
                killed = f"killed at {rss / 1e9:.1f} GB"
            elif not killed and time.perf_counter() - t0 > timeout_s:
                killed = f"timeout {timeout_s:.0f} s ({rss / 1e9:.1f} GB)"
            if killed:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                pid, status, _ = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        p.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    peak = float(polled)
    if rusage.is_file():
        maxrss, status = (int(x) for x in rusage.read_text().split())
        peak = maxrss * 1024.0
        p.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return {"seconds": wall, "peak": peak, "polled": polled, "rc": p.returncode, "killed": killed,
            "stdout": log.with_suffix(".out"), "stderr": log.with_suffix(".err")}


# --------------------------------------------------------------------------- the report
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(code: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no", "--",
                                "trt_ray_bench"], capture_output=True, text=True, timeout=30).stdout.splitlines()
    except Exception:  # not a checkout, no git
        return "?"
    if not head:
        return "?"
    return head + (f" + {len(dirty)} file(s) of trt_ray_bench/ changed in the working tree" if dirty else " (clean)")


def header(a, code: Path) -> None:
    import pandas as pd
    import psutil
    import pyarrow
    import scipy
    import trt_ray_bench

    try:
        import matplotlib
        mpl = matplotlib.__version__
    except ImportError:
        mpl = "missing"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in ("PYTHONPATH",) if os.environ.get(k))
    print("scale: time and peak RSS of the results tools on synthetic trees (trt_ray_bench)")
    print(f"date      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"command   {(env + ' ') if env else ''}{shlex.join([os.path.basename(sys.executable)] + sys.argv)}"
          f"   (cwd {os.getcwd()})")
    print(f"machine   {_cpu_model()}; {cores} core(s) usable of {os.cpu_count()}; "
          f"{psutil.virtual_memory().total / 2 ** 30:.1f} GiB RAM ({psutil.virtual_memory().available / 2 ** 30:.1f} "
          f"available at the start); {platform.platform()}")
    print(f"python    {platform.python_version()} ({sys.executable}); numpy {np.__version__}, pandas {pd.__version__}, "
          f"pyarrow {pyarrow.__version__}, scipy {scipy.__version__}, matplotlib {mpl}")
    print(f"code      trt_ray_bench {getattr(trt_ray_bench, '__version__', '?')} from {code}; git {_git(code)}")
    floor = measure(["true"], Path(tempfile.mkdtemp(prefix="scale-floor-")) / "true", 30.0, 1e9)
    shutil.rmtree(floor["stdout"].parent, ignore_errors=True)
    print(f"limits    each child: {a.timeout:.0f} s, {a.rss_limit_gb:g} GB RSS (a watchdog polls every 50 ms)")
    print(f"memory    peak RSS = the child's ru_maxrss (os.wait4), started from a launcher of its own "
          f"({floor['peak'] / 1e6:.0f} MB: `true` measures that); MB = 10^6 bytes")
    print()
    sys.stdout.flush()


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width table, columns right-aligned except the first."""
    cols = list(zip(*([list(head)] + [list(map(str, r)) for r in rows])))
    w = [max(len(c) for c in col) for col in cols]

    def fmt(r):
        return "  ".join(str(v).ljust(w[i]) if i == 0 else str(v).rjust(w[i]) for i, v in enumerate(r)).rstrip()

    return "\n".join([fmt(head), "  ".join("-" * x for x in w)] + [fmt(r) for r in rows])


def _label(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k"


def _tree_info(tree: Path) -> dict:
    import pyarrow.parquet as pq

    out = {"runs": 0, "rows": 0, "samples": 0, "telemetry": 0, "aggregates": 0, "bytes": 0}
    for f in tree.rglob("*.parquet"):
        out["bytes"] += f.stat().st_size
        n = pq.ParquetFile(f).metadata.num_rows
        if f.name == "runs.parquet":
            out["runs"] += 1
            out["rows"] += n
        elif f.name == "samples.parquet":
            out["samples"] += n
        elif f.name == "telemetry.parquet":
            out["telemetry"] += n
        elif f.name == "aggregates.parquet":
            out["aggregates"] += n
    return out


def ensure_tree(out: Path, n: int, name: str, runs: int, a, code: Path) -> Tuple[Path, dict]:
    """The experiment ``name`` of about ``n`` samples under ``out``: reused where its
    ``tree.json`` matches, else made (in a child, by the code measured)."""
    design = DESIGNS[name]
    root = out / f"tree-{_label(n)}" / name
    want = {"version": TREE_VERSION, "design": name, "requested": n, "runs": runs, "seed": a.seed}
    meta = root / "tree.json"
    if meta.is_file():
        got = json.loads(meta.read_text())
        if all(got.get(k) == v for k, v in want.items()) and (root / design["experiment"]).is_dir():
            got["reused"] = True
            return root / design["experiment"], got
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    print(f"making the {_label(n)} {name} tree under {root} ...", flush=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "tree", "--child-design", name,
           "--child-n", str(n), "--child-dir", str(root), "--runs", str(runs), "--seed", str(a.seed)]
    m = measure(cmd, out / "logs" / f"make-{_label(n)}-{name}", 3600.0, a.rss_limit_gb * 1e9)
    sys.stderr.write(m["stderr"].read_text())
    if m["rc"] != 0 or m["killed"]:
        raise SystemExit(f"making the tree failed ({m['killed'] or 'exit ' + str(m['rc'])}): see {m['stderr']}")
    made = json.loads(m["stdout"].read_text().strip().splitlines()[-1])
    info = dict(want, **made, made_s=m["seconds"], made_peak_mb=m["peak"] / 1e6,
                made_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                made_by=f"trt_ray_bench from {code}, git {_git(code)}", reused=False, **_tree_info(root))
    meta.write_text(json.dumps(info, indent=1) + "\n")
    return root / design["experiment"], info


def commands(trees: Dict[str, Path], work: Path, n: int, a) -> List[Tuple[str, str, List[str]]]:
    """(label, kind, argv) of every measurement at one size; TREE is the alone_together
    tree, STUDY the study tree."""
    py = sys.executable
    trb = Path(py).with_name("trb")
    trb_cmd = [str(trb)] if trb.is_file() else [py, "-m", "trt_ray_bench.cli"]
    tree, study = str(trees["alone_together"]), str(trees["study"])
    load = "import sys; from trt_ray_bench import results; r = results.load(sys.argv[1]{}); print(len(r.runs){})"
    whole = ", len(r.samples), len(r.telemetry)"  # read whole where load leaves them on disk
    out = [
        ("python -c 'import trt_ray_bench.results' (baseline)", "", [py, "-c", "import trt_ray_bench.results"]),
        ("results.load(TREE, samples=False, telemetry=False)", "",
         [py, "-c", load.format(", samples=False, telemetry=False", ""), tree]),
        ("results.load(TREE)", "", [py, "-c", load.format("", ""), tree]),
        ("results.load(TREE) + .samples, .telemetry", "", [py, "-c", load.format("", whole), tree]),
        ("trb compare TREE", "compare", trb_cmd + ["compare", tree]),
        ("trb compare TREE --all", "compare", trb_cmd + ["compare", tree, "--all"]),
        ("trb compare TREE --all --baseline yolov8n-cls", "compare",
         trb_cmd + ["compare", tree, "--all", "--baseline", "yolov8n-cls"]),
        ("trb report TREE --out x.html", "report",
         trb_cmd + ["report", tree, "--out", str(work / f"report-{_label(n)}" / "report.html")]),
        ("results.load(STUDY)", "", [py, "-c", load.format("", ""), study]),
        ("trb compare STUDY --all", "compare", trb_cmd + ["compare", study, "--all"]),
    ]
    for by in ("mode", "stage", "gap", "variant", "gap_s"):
        out.append((f"trb compare STUDY --all --by {by}", "compare", trb_cmd + ["compare", study, "--all", "--by", by]))
    out.append(("trb report STUDY --out x.html", "report",
                trb_cmd + ["report", study, "--out", str(work / f"report-study-{_label(n)}" / "report.html")]))
    ways = [("stream", "write a run's tables, streaming (one run)"), ("batch", "write a run's tables, batch (one run)")]
    if not streaming():
        ways = [("batch", "write a run's tables (one run)")]
    for how, label in ways:
        out.append((label, "write", [py, str(Path(__file__).resolve()), "--child", "write", "--child-how", how,
                                     "--child-n", str(n), "--child-dir", str(work / f"write-{how}-{_label(n)}"),
                                     "--seed", str(a.seed)]))
    return out


def _describe(name: str, tree: Path, info: dict) -> str:
    t = _tree_info(tree.parent) if info.get("reused") else info
    design = DESIGNS[name]
    what = (f"5 models x alone/together x {REPEATS} repeats" + (f" x modes {'/'.join(design['modes'])}"
                                                                 if len(design["modes"]) > 1 else "")
            + (f" x variants {'/'.join(design['variants'])}" if design["variants"] else ""))
    agg = f", {t['aggregates']:,} aggregates rows" if t.get("aggregates") else ""
    val = f", validation set {info.get('n_images')} images" if len(design["modes"]) > 1 else ""
    return (f"   {name}: {t['samples']:,} samples, {t['rows']} runs rows in {t['runs']} runs ({what}), "
            f"{t['telemetry']:,} telemetry rows{agg}, {t['bytes'] / 1e6:.0f} MB of Parquet\n"
            f"     {tree}\n"
            f"     {'reused, ' if info.get('reused') else ''}made {info.get('made_at')} "
            f"in {info.get('made_s', 0):.0f} s (peak {info.get('made_peak_mb', 0):.0f} MB) by {info.get('made_by')} "
            f"with {info.get('how')}; iterations {info.get('iterations')}{val}")


def run_size(out: Path, n: int, a, code: Path, save: Optional[Path]) -> None:
    trees, infos = {}, {}
    for name, runs in (("alone_together", a.runs), ("study", a.study_runs)):
        trees[name], infos[name] = ensure_tree(out, n, name, runs, a, code)
    print(f"== {_label(n)} samples per tree")
    for name in trees:
        print(_describe(name, trees[name], infos[name]))
    sys.stdout.flush()
    rows, notes = [], []
    work = Path(tempfile.mkdtemp(prefix="scale-work-", dir=out))
    wanted = [x for x in a.only.split(",") if x.strip()]
    try:
        for label, kind, argv in commands(trees, work, n, a):
            if wanted and not any(x in label for x in wanted):
                continue
            logname = "".join(c if c.isalnum() else "_" for c in label)[:70]
            load1 = os.getloadavg()[0]
            m = measure(argv, work / "logs" / logname, a.timeout, a.rss_limit_gb * 1e9)
            if save is not None:
                dest = save / _label(n)
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(m["stdout"], dest / (logname + ".out"))
                shutil.copyfile(m["stderr"], dest / (logname + ".err"))
                page = Path(argv[argv.index("--out") + 1]) if kind == "report" else None
                if page is not None and page.is_file():
                    shutil.copyfile(page, dest / (logname + page.suffix))
            secs, peak = m["seconds"], m["peak"] / 1e6
            tsec, tmb = TARGETS.get(kind, (None, None))
            if kind == "write" and m["rc"] == 0 and not m["killed"]:
                w = json.loads(m["stdout"].read_text().strip().splitlines()[-1])
                secs = w["seconds"]
                held = ("before each phase's handover" if "RunTables" in w["how"] else "every raw outcome held")
                notes.append(f"{label}: {w['samples']:,} samples, {w['telemetry_rows']:,} telemetry rows in one "
                             f"alone_together run, by {w['how']}; {w['seconds']:.1f} s in the project's code, "
                             f"{w['total_s']:.0f} s with the simulation; RSS {w['baseline_mb']:.0f} MB after the "
                             f"imports, {w['rss_held_mb']:.0f} MB at most {held}")
            if m["killed"]:
                verdict = m["killed"]
            elif m["rc"] != 0:
                err = m["stderr"].read_text().strip().splitlines()
                verdict = f"FAILED (exit {m['rc']})"
                notes.append(f"{label}: exit {m['rc']}: {err[-1] if err else ''}"[:300])
            elif tsec is None and tmb is None:
                verdict = ""
            else:
                ok = (tsec is None or secs <= tsec) and (tmb is None or peak <= tmb)
                verdict = "ok" if ok else "MISSED"
            target = " / ".join(x for x in ((f"<= {tsec:g} s" if tsec else ""), (f"<= {tmb:g} MB" if tmb else "")) if x)
            rows.append([label, f"{secs:.1f}", f"{peak:.0f}", target or "—", verdict or "—", f"{load1:.1f}"])
            print(f"   {label}: {secs:.1f} s, {peak:.0f} MB {verdict}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(["command", "seconds", "peak RSS MB", "target (10 M)", "ok/MISSED", "load"], rows))
    print(f"   TREE = {trees['alone_together']}\n   STUDY = {trees['study']}")
    print("   seconds: the child's wall time (write: in the project's code only); peak RSS: the child's, exact;\n"
          "   load: the machine's 1-min load average as the command started (other work on it slows the seconds)")
    if any("--by gap" in r[0] for r in rows):
        notes.append("--by gap: the study has the attribution's back-to-back, plain gap and dummy-first variants (not "
                     "spin, poke, clocks max) over five models and both phases")
    for note in notes:
        print(f"   note: {note}")
    print()
    sys.stdout.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", default="1e6,1e7", help="tree sizes, comma-separated (default 1e6,1e7)")
    ap.add_argument("--out", help="folder of the trees (default: a temporary one, removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the trees (default: removed at the end)")
    ap.add_argument("--runs", type=int, default=4, help="runs of the alone_together experiment (default 4)")
    ap.add_argument("--study-runs", type=int, default=2, help="runs of the study experiment (default 2)")
    ap.add_argument("--seed", type=int, default=20, help="seed of the synthetic data (default 20)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds a child may run (default 300)")
    ap.add_argument("--rss-limit-gb", type=float, default=12.0, help="kill a child above this RSS (default 12)")
    ap.add_argument("--only", default="", help="comma-separated substrings of the commands to measure")
    ap.add_argument("--save-outputs", metavar="DIR", help="copy every command's stdout / stderr here (to diff runs)")
    ap.add_argument("--child", choices=("tree", "write"), help=argparse.SUPPRESS)
    ap.add_argument("--child-design", choices=tuple(DESIGNS), help=argparse.SUPPRESS)
    ap.add_argument("--child-how", choices=("auto", "stream", "batch"), default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-dir", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child == "tree":
        child_tree(Path(a.child_dir), DESIGNS[a.child_design], a.child_n, a.runs, a.seed)
        return 0
    if a.child == "write":
        d = Path(a.child_dir)
        try:
            child_write(a.child_n, a.seed, d, a.child_how)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return 0

    import trt_ray_bench

    code = Path(trt_ray_bench.__file__).resolve().parent.parent
    sizes = [int(float(x)) for x in a.samples.split(",") if x.strip()]
    t0 = time.perf_counter()
    header(a, code)
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="trb-scale-"))
    out.mkdir(parents=True, exist_ok=True)
    save = Path(a.save_outputs) if a.save_outputs else None
    try:
        for n in sizes:
            run_size(out, n, a, code, save)
    finally:
        if not a.keep:
            for n in sizes:
                shutil.rmtree(out / f"tree-{_label(n)}", ignore_errors=True)
            shutil.rmtree(out / "logs", ignore_errors=True)
            if not a.out:
                shutil.rmtree(out, ignore_errors=True)
    wall = time.perf_counter() - t0
    print(f"runtime   {int(wall // 60)} min {int(wall % 60)} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
