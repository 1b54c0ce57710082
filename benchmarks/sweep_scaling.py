"""Wall time of one fixed sweep on 1, 2 and 4 simulated nodes (a ``ray.cluster_utils``
Cluster on this machine, each node with one ``trb_slot``), and the per-point
orchestration overhead: wall time per point minus the time the point itself measured.

The points are dominated by a gap between inferences (sleep), not by compute, so that
several simulated nodes on a 2-core machine can overlap as real boards would.
Targets: per-point overhead under 2 s, near-linear speed-up.

    TRB_CACHE_DIR=/tmp/trbcache python benchmarks/sweep_scaling.py [--points 8] [--nodes 1 2 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time


def one(n_nodes: int, n_points: int, out: str) -> tuple:
    import ray
    from ray.cluster_utils import Cluster

    from trt_ray_bench.cluster.sweep import run_sweep
    from trt_ray_bench.spec import sweep_from_dict

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"trb_node_n0": 1, "trb_slot": 1},
                                                            "include_dashboard": False})
    for i in range(1, n_nodes):
        cluster.add_node(num_cpus=1, resources={f"trb_node_n{i}": 1, "trb_slot": 1})
    cluster.wait_for_nodes()
    try:
        sweep = sweep_from_dict({
            "name": f"scale{n_nodes}", "output": out,
            "base": {"name": "b", "schedule": "alone", "telemetry": {"host": False},
                     "timing": {"iterations": 20, "warmup": 1, "gap_s": 0.1},
                     "models": [{"arch": "yolov8n", "task": "classify", "imgsz": 64}]},
            "axes": {"input.seed": list(range(n_points))},  # equal points
        })
        t0 = time.perf_counter()
        run_sweep(sweep, address=cluster.address, log=lambda s: None)
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()
        cluster.shutdown()
    return wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args(argv)
    import math

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for n in args.nodes:
            wall = one(n, args.points, out)
            rows.append((n, wall))
            print(f"{n} node(s): {args.points} points in {wall:.1f} s")
    point_s = 21 * 0.1  # what one point measures: 21 inferences, each followed by a 0.1 s gap
    base = rows[0][1]
    ok = True
    for n, wall in rows:
        waves = math.ceil(args.points / n)
        overhead = (wall - waves * point_s) / waves
        ok &= overhead < 2
        print(f"  {n} node(s): speed-up {base / wall:.2f}x (ideal {args.points / waves:.1f}x), "
              f"orchestration per point {overhead:.2f} s (target < 2 s)")
    print("PASS" if ok else "FAIL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
