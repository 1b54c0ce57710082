"""Peak RSS of a run's driver while it turns the model actors' raw samples into a run's
tables and writes them (target: the driver of a run writing 10 M samples holds at most
1 GB).

No Ray and no model: the raw outcomes each phase's model actors return (``ModelActor.run_phase``:
typed arrays of start / end / enqueue times, warm-up flags, GPU times) are simulated, one
phase at a time, and go through the driver's own code, as ``cluster.node_run.run_plan``
runs it: ``RunTables.add`` per phase (statistics, series diagnostics, per-second
aggregates, the samples ``timing.samples`` keeps, written by ``results.RunWriter`` as the
phase's row groups), then ``RunTables.finish`` and ``RunWriter.finish``. The previous
phase's raw arrays are dropped before the next is made, as ``execute`` drops them. With
``--batch`` every phase's raw arrays are held until the end and written by
``build_tables`` + ``write_run`` (the way a run was written before, and a sweep point's
tables still are) for comparison.

Layouts (``--layout``), ``N`` samples in all (``--samples``, default 10 M):

- ``run``: five models, ``schedule: both``: five alone phases, then one together phase;
  a tenth of the samples per model and phase (10 M: 1 M each; a 10-minute run at 1,700
  inferences/s per model);
- ``soak``: one model, one alone phase of all ``N`` (a soak that waits for throttling:
  10 M is an hour at 2,800 inferences/s); its statistics are of one series of ``N``.

Each configuration runs in a fresh child process; its peak RSS is the ``ru_maxrss`` of
that child (Linux: KiB), which includes the interpreter and the libraries (numpy, pandas,
pyarrow, scipy, pydantic: about 150 MB, printed as ``baseline``). In a real run the raw
arrays come from Ray's object store (shared memory mapped into the driver, counted in its
RSS as they are read) instead of the driver's heap: the same bytes.

    python benchmarks/driver_memory.py                      # both layouts, samples all, 10 M
    python benchmarks/driver_memory.py --samples 1e6 --keep none --layout soak
    python benchmarks/driver_memory.py --batch              # the old path, for comparison
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np

TARGET_MB = 1000.0  # "<= 1 GB", 10^6-byte MB
MODELS = ("yolov8n-cls", "yolov8n", "yolov8n-pose", "yolov8n-seg", "yolov8n-obb")
LEVEL_MS = {"yolov8n-cls": 0.25, "yolov8n": 0.45, "yolov8n-pose": 0.50, "yolov8n-seg": 0.60, "yolov8n-obb": 0.55}
WARMUP = 10


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def make_plan(layout: str, keep: str, root: Path):
    from trt_ray_bench.cluster.plan import Plan, phases_of
    from trt_ray_bench.models import ResolvedModel
    from trt_ray_bench.spec import spec_from_dict, spec_to_yaml

    names = MODELS if layout == "run" else MODELS[:1]
    spec = spec_from_dict({
        "name": f"driver_memory_{layout}", "output": str(root), "schedule": "both" if layout == "run" else "alone",
        "models": [{"path": f"/synthetic/{n}.onnx", "name": n, "backend": "tensorrt", "precision": "fp16"}
                   for n in names],
        "timing": {"iterations": 1000, "warmup": WARMUP, **({} if keep == "all" else {"samples": keep})},
    })
    models = [ResolvedModel(name=n, task="detect", onnx_path=f"/synthetic/{n}.onnx", sha256="0" * 64,
                            weights="random", source=f"{n}.yaml", hw=(640, 640), batch=1, backend="tensorrt",
                            precision="fp16", engine={"trt_version": "10.3.0"}) for n in names]
    yaml_text = spec_to_yaml(spec)
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-bench")
    return Plan(spec=spec, run_id=run_id, run_dir=root / spec.name / run_id, models=models,
                phases=phases_of(spec, list(names)), spec_yaml=yaml_text,
                spec_sha256=hashlib.sha256(yaml_text.encode()).hexdigest())


class Sim:
    """Raw outcomes of one model per phase as ``actors.raw_samples`` makes them."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.t = 1_000_000_000_000  # ns, the node's monotonic clock
        self.pid = 1000

    def loop(self, name: str, n: int, t0: int) -> dict:
        rng = self.rng
        total = WARMUP + n
        lat = rng.lognormal(np.log(LEVEL_MS[name]), 0.08, total)  # ms
        lat[:WARMUP] *= 1.5  # a cold warm-up
        lat *= np.linspace(1.0, 1.06, total)  # a slow drift (warming up)
        dur = (lat * 1e6).astype(np.int64)
        step = dur + 20_000  # 20 us of harness and Python between inferences
        ts = np.empty(total, np.int64)
        ts[0] = t0
        np.cumsum(step[:-1], out=ts[1:])
        ts[1:] += t0
        te = ts + dur
        del step
        gpu = lat * 0.92
        del lat
        enq = dur // 10
        del dur
        warm = np.zeros(total, bool)
        warm[:WARMUP] = True
        self.pid += 1
        return {"t_start_ns": ts, "t_end_ns": te, "enqueue_ns": enq, "warmup": warm, "instant_ns": int(ts[WARMUP]),
                "stages": {}, "released_ns": int(ts[WARMUP]), "n_target": n, "barrier_warmup_n": 0,
                "t_sync_end_ns": None, "sync_wait_ns": None, "gpu_capacity": None, "gpu_missing": 0,
                "pid": self.pid, "gpu_ms": gpu}

    def phase(self, ph, per_model: int) -> List[dict]:
        t0 = self.t + 50_000_000
        out = [{"phase": ph, "model": n, "status": "ok", "raw": self.loop(n, per_model, t0)} for n in ph.models]
        self.t = max(int(o["raw"]["t_end_ns"][-1]) for o in out) + 10_000_000
        return out


def _result(plan, outcomes, t_first: int, t_last: int) -> dict:
    """``execute``'s result around the outcomes: telemetry at 10 Hz over the run (the
    Monitor's columns), provenance, controls."""
    t = np.arange(t_first, t_last, 100_000_000, dtype=np.int64)
    rows: Dict[str, list] = {"t_ns": [], "source": [], "metric": [], "value": [], "unit": [], "avg_s": []}
    for metric, unit, src, avg in (("gpu_freq_mhz", "MHz", "nvml", 0.0), ("gpu_util_pct", "%", "nvml", 1 / 6),
                                   ("power_w", "W", "nvml", 1.0), ("temp_c", "C", "nvml", 0.0),
                                   ("cpu_util_pct", "%", "host", 0.1)):
        rows["t_ns"].extend(t.tolist())
        rows["source"].extend([src] * len(t))
        rows["metric"].extend([metric] * len(t))
        rows["value"].extend(np.full(len(t), 50.0).tolist())
        rows["unit"].extend([unit] * len(t))
        rows["avg_s"].extend([avg] * len(t))
    return {"outcomes": outcomes, "info": {m.name: {"device": "gpu", "n_inputs": 1} for m in plan.models},
            "provenance": {"host": "synthetic", "python_version": platform.python_version()},
            "telemetry": {"rows": rows, "errors": []},
            "started_at": datetime.datetime.now(datetime.timezone.utc),
            "controls": {"clocks_mode": "default", "mps": False, "mps_state": "off", "warnings": []},
            "gpu": None, "interrupted": None}


def _phases(plan, total: int) -> Iterator[tuple]:
    """(phase, inferences per model measured) whose samples add up to about ``total``."""
    per = total // sum(len(ph.models) for ph in plan.phases) - WARMUP
    for ph in plan.phases:
        yield ph, per


def child(layout: str, keep: str, total: int, batch: bool, root: Path) -> dict:
    plan = make_plan(layout, keep, root)
    baseline = _rss_mb()
    sim = Sim(0)
    t_first = sim.t
    t0 = time.perf_counter()
    raw_max = 0.0
    n_samples = 0
    if batch:  # (the code before streaming has only these)
        from trt_ray_bench.cluster.node_run import build_tables
        from trt_ray_bench.results import write_run

        outcomes: List[dict] = []
        for ph, per in _phases(plan, total):
            done = sim.phase(ph, per)
            outcomes.extend(done)
        raw_max = sum(sum(v.nbytes for v in o["raw"].values() if isinstance(v, np.ndarray)) for o in outcomes) / 1e6
        n_samples = sum(len(o["raw"]["t_start_ns"]) for o in outcomes)
        result = _result(plan, outcomes, t_first, sim.t)
        path = write_run(plan.run_dir, build_tables(plan, result), plan.spec_yaml)
        how = "build_tables + write_run (every phase's raw samples held)"
    else:
        from trt_ray_bench.cluster.node_run import RunTables
        from trt_ray_bench.results import RunWriter

        writer = RunWriter(plan.run_dir)
        tables = RunTables(plan, sink=writer.write_samples)
        kept: List[dict] = []
        for ph, per in _phases(plan, total):
            done = sim.phase(ph, per)
            raw_max = max(raw_max, sum(sum(v.nbytes for v in o["raw"].values() if isinstance(v, np.ndarray))
                                       for o in done) / 1e6)
            n_samples += sum(len(o["raw"]["t_start_ns"]) for o in done)
            tables.add(done)
            kept.extend({k: v for k, v in o.items() if k != "raw"} for o in done)
            del done
            gc.collect()
        result = _result(plan, kept, t_first, sim.t)
        path = writer.finish(tables.finish(result), plan.spec_yaml)
        how = "RunTables per phase + RunWriter (run_plan's path)"
    seconds = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in Path(path).iterdir()) / 1e6
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(Path(path) / "samples.parquet").metadata
    return {"layout": layout, "keep": keep, "batch": batch, "samples": n_samples, "how": how,
            "peak_rss_mb": round(_rss_mb(), 1), "baseline_mb": round(baseline, 1),
            "largest_phase_raw_mb": round(raw_max, 1), "seconds": round(seconds, 1), "written_mb": round(size, 1),
            "samples_rows": meta.num_rows, "row_groups": meta.num_row_groups}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=float, default=10e6, help="samples in all (default 10 M)")
    ap.add_argument("--layout", choices=("run", "soak", "both"), default="both")
    ap.add_argument("--keep", choices=("all", "window", "none"), default="all", help="timing.samples")
    ap.add_argument("--batch", action="store_true", help="also the old path: all raw held, build_tables + write_run")
    ap.add_argument("--out", type=Path, default=None, help="where the runs are written (default: a temporary folder)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only-batch", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    total = int(a.samples)
    if a.child:
        print(json.dumps(child(a.layout, a.keep, total, a.only_batch, a.out)))
        return 0
    root = a.out or Path(tempfile.mkdtemp(prefix="trb-driver-memory-"))
    layouts = ("run", "soak") if a.layout == "both" else (a.layout,)
    rows = []
    try:
        for layout in layouts:
            for batch in ((False, True) if a.batch else (False,)):
                cmd = [sys.executable, __file__, "--child", "--layout", layout, "--keep", a.keep, "--samples",
                       str(total), "--out", str(root)] + (["--only-batch"] if batch else [])
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    print(p.stderr[-3000:], file=sys.stderr)
                    rows.append({"layout": layout, "batch": batch, "error": f"exit {p.returncode}"})
                    continue
                rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    finally:
        if a.out is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"# driver memory: {total:,} samples, timing.samples {a.keep}; {platform.python_version()}, "
          f"numpy {np.__version__}; target <= {TARGET_MB:.0f} MB peak RSS")
    print("| layout | path | samples | peak RSS MB | baseline MB | largest phase raw MB | s | written MB | row groups "
          "| target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for r in rows:
        if "error" in r:
            print(f"| {r['layout']} | {'batch' if r['batch'] else 'streaming'} | — | {r['error']} | | | | | | |")
            continue
        ok = r["peak_rss_mb"] <= TARGET_MB
        if not r["batch"]:
            worst = max(worst, r["peak_rss_mb"])
        print(f"| {r['layout']} | {'batch' if r['batch'] else 'streaming'} | {r['samples']:,} | {r['peak_rss_mb']} | "
              f"{r['baseline_mb']} | {r['largest_phase_raw_mb']} | {r['seconds']} | {r['written_mb']} | "
              f"{r['row_groups']} | {'ok' if ok else 'ABOVE'} |")
    return 0 if worst <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
