"""The timed loop over runners written in plain Python (the loop takes any object with
the Runner methods; ONNX Runtime runners are exercised in tests/engines)."""

import threading
import time

import pytest

from trt_ray_bench.timing import LoopPlan, run_loop, wait_until


class SleepRunner:
    """Infers by sleeping: host time is known; an 'enqueue' that returns at once and a
    synchronize that waits, like a GPU stream, when ``async_`` is set."""

    def __init__(self, infer_s=0.002, async_=False, gpu=False):
        self.n_inputs = 3
        self.infer_s = infer_s
        self.async_ = async_
        self.gpu = gpu
        self.indices = []
        self.syncs = []
        self._pending = []

    def infer(self, index):
        self.indices.append(index)
        if self.async_:
            self._pending.append(self.infer_s)
        else:
            time.sleep(self.infer_s)

    def synchronize(self, how):
        self.syncs.append(how)
        if how != "none":
            for s in self._pending:
                time.sleep(s)
            self._pending.clear()

    def gpu_times_ms(self):
        if not self.gpu:
            return None
        out = [self.infer_s * 1e3] * (len(self.indices) - getattr(self, "_read", 0))
        self._read = len(self.indices)
        return out


def test_counts_warmup_flags_and_input_cycling():
    r = SleepRunner(0.001)
    s = run_loop(r, LoopPlan(iterations=7, warmup=3, sync="device"))
    assert len(s) == 10
    assert s.warmup == [True] * 3 + [False] * 7
    assert r.indices == [i % 3 for i in range(10)]
    assert all(h >= 1_000_000 for h in s.host_ns)
    assert all(a < b for a, b in zip(s.t_start_ns, s.t_start_ns[1:]))
    assert s.n_target == 7


def test_unsynchronised_timer_reports_only_the_enqueue():
    """The pitfall of seed 004: without sync the host timer sees only the launch."""
    synced = run_loop(SleepRunner(0.003, async_=True), LoopPlan(iterations=5, warmup=0, sync="device"))
    unsynced = run_loop(SleepRunner(0.003, async_=True), LoopPlan(iterations=5, warmup=0, sync="none"))
    assert min(synced.host_ns) >= 3_000_000
    assert max(unsynced.host_ns) < 1_000_000
    assert all(e <= h for e, h in zip(synced.enqueue_ns, synced.host_ns))


def test_gap_is_slept_between_but_not_timed():
    s = run_loop(SleepRunner(0.001), LoopPlan(iterations=5, warmup=0, gap_s=0.02))
    starts = s.t_start_ns
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 20_000_000
    assert max(s.host_ns) < 15_000_000


def test_duration_mode_stops_on_time():
    t0 = time.perf_counter()
    s = run_loop(SleepRunner(0.002), LoopPlan(iterations=None, duration_s=0.2, warmup=1))
    assert 0.18 < time.perf_counter() - t0 < 0.6
    assert 30 < len(s) < 110


def test_release_waits_for_the_start_instant():
    start = time.perf_counter_ns() + 50_000_000
    s = run_loop(SleepRunner(0.001), LoopPlan(iterations=3, warmup=2), release=lambda: start)
    first = s.t_start_ns[s.warmup.index(False)]
    assert first >= start and first - start < 2_000_000
    assert s.released_ns >= start


def test_fill_keeps_running_until_stopped_and_reports_target_once():
    stop = threading.Event()
    reached = []

    def on_target():
        reached.append(time.perf_counter_ns())
        threading.Timer(0.05, stop.set).start()

    s = run_loop(SleepRunner(0.002), LoopPlan(iterations=5, warmup=0), stop=stop, on_target=on_target)
    assert len(reached) == 1
    assert s.n_target == 5
    assert len(s) > 10  # kept loading the device for ~50 ms after its own 5


def test_fill_has_a_hard_limit():
    s = run_loop(SleepRunner(0.002), LoopPlan(iterations=2, warmup=0), stop=threading.Event(), max_s=0.1)
    assert (s.t_end_ns[-1] - s.t_start_ns[0]) < 400_000_000


def test_gpu_times_are_aligned_and_checked():
    r = SleepRunner(0.001, gpu=True)
    r.infer(0)  # a call before the loop must not leak into it
    s = run_loop(r, LoopPlan(iterations=4, warmup=1))
    assert s.gpu_ms == [1.0] * 5

    class Liar(SleepRunner):
        def gpu_times_ms(self):
            return [1.0]

    with pytest.raises(RuntimeError, match="GPU times"):
        run_loop(Liar(0.0), LoopPlan(iterations=3, warmup=0))


def test_plan_rejects_ambiguous_count_and_bad_sync():
    with pytest.raises(ValueError):
        LoopPlan(iterations=5, duration_s=1.0)
    with pytest.raises(ValueError):
        LoopPlan(iterations=5, sync="cuda")


def test_wait_until_spins_to_the_instant():
    t = time.perf_counter_ns() + 20_000_000
    woke = wait_until(t)
    assert 0 <= woke - t < 1_000_000
