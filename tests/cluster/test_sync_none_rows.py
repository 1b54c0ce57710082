"""``sync: none`` in the runs table: a loop over a stand-in GPU runner (launches return
at once, the work takes a known time), its samples as the actor returns them, the row
as ``build_tables`` makes it and as the schema writes it. No Ray is started."""

import datetime as dt
import math
import time

import pytest

from trt_ray_bench.cluster.actors import raw_samples
from trt_ray_bench.cluster.node_run import build_tables
from trt_ray_bench.cluster.plan import make_plan
from trt_ray_bench.results.write import to_table
from trt_ray_bench.spec import spec_from_dict
from trt_ray_bench.timing import LoopPlan, run_loop


class Stream:
    """Launches that return at once; ``work_s`` of work each, one after another;
    ``synchronize`` and a read of the GPU times wait for it. ``ring``: GPU times held."""

    n_inputs = 1

    def __init__(self, work_s, ring=100_000):
        self.work_ns, self.ring, self.cap, self.busy, self.unread = int(work_s * 1e9), ring, 0, 0, 0

    def reserve(self, n):
        self.cap = max(self.cap, min(n, self.ring))
        return self.cap

    def infer(self, index):
        self.busy = max(self.busy, time.perf_counter_ns()) + self.work_ns
        self.unread += 1

    def _wait(self):
        while time.perf_counter_ns() < self.busy:
            time.sleep(max(0, self.busy - time.perf_counter_ns()) / 1e9)

    def synchronize(self, how):
        if how != "none":
            self._wait()

    def gpu_times_ms(self):
        self._wait()
        n, self.unread = self.unread, 0
        return [self.work_ns / 1e6] * min(n, self.cap) + [float("nan")] * max(0, n - self.cap)


def _row(tmp_path, runner, sync, iterations=100):
    spec = spec_from_dict({"name": "x", "output": str(tmp_path / "results"), "schedule": "alone",
                           "models": [{"arch": "yolov8n", "task": "cls", "name": "a"}],
                           "timing": {"iterations": iterations, "warmup": 5, "sync": sync}})
    plan = make_plan(spec, export=False)
    s = run_loop(runner, LoopPlan(iterations=iterations, warmup=5, sync=sync))
    result = {"outcomes": [{"phase": plan.phases[0], "model": "a", "status": "ok", "raw": raw_samples(s)}],
              "info": {}, "provenance": {}, "telemetry": {}, "controls": {}, "gpu": {},
              "started_at": dt.datetime.now(dt.timezone.utc)}
    runs = build_tables(plan, result)["runs"]
    to_table("runs", runs)  # every column is in the schema
    return runs.iloc[0], s


def test_sync_none_throughput_is_inferences_completed(tmp_path):
    """2 ms of work an inference: throughput_ips is ~500 (first start to the final
    synchronisation), not the launch rate; sync_wait_ms is how far the launches ran ahead."""
    row, s = _row(tmp_path, Stream(0.002), "none")
    first = s.warmup.index(False)
    launch_rate = 100 / ((s.t_end_ns[-1] - s.t_start_ns[first]) / 1e9)
    assert 400 < row["throughput_ips"] <= 505
    assert launch_rate > 5 * row["throughput_ips"]
    assert 150 < row["sync_wait_ms"] < 260  # ~200 ms of work queued behind instant launches
    assert row["gpu_n"] == 100 and not any("no GPU time" in w for w in row["warnings"])


def test_sync_none_past_the_ring_says_so(tmp_path):
    row, s = _row(tmp_path, Stream(0.0001, ring=64), "none")
    assert row["gpu_n"] == 64 and row["n"] == 100  # the count without a GPU time: n - gpu_n
    assert any(w.startswith("36 of 100 measured inferences have no GPU time") and "held 64" in w
               for w in row["warnings"])


def test_other_sync_modes_keep_their_span_and_have_no_sync_wait(tmp_path):
    row, s = _row(tmp_path, Stream(0.001), "device")
    first = s.warmup.index(False)
    span = (s.t_end_ns[-1] - s.t_start_ns[first]) / 1e9
    assert row["throughput_ips"] == pytest.approx(100 / span) and math.isnan(row["sync_wait_ms"])
