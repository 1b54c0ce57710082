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


def test_fill_counts_from_the_window_start_once_known():
    """A model that began before the others loses its first inferences from the together
    window: with a fill it is done only when it has its count among those started at or
    after the window's start, which it is told once every model has begun (``None``
    before). Here the window opens 20 ms after this model's first inference."""
    stop = threading.Event()
    began, reached = [], []
    box = {"lo": None}

    def on_begin(t_ns):
        began.append(t_ns)
        threading.Timer(0.03, lambda: box.update(lo=t_ns + 20_000_000)).start()

    def on_target():
        reached.append(time.perf_counter_ns())
        stop.set()

    s = run_loop(SleepRunner(0.002), LoopPlan(iterations=5, warmup=2), stop=stop, on_target=on_target,
                 on_begin=on_begin, window_start=lambda: box["lo"])
    measured = [t for t, w in zip(s.t_start_ns, s.warmup) if not w]
    assert began == [measured[0]]  # told once, the first measured start
    assert len(reached) == 1
    assert sum(t >= box["lo"] for t in measured) >= 5  # the count, inside the window
    assert s.n_target > 5  # it did more than its count to get there
    # without a fill the window is not waited for: the count alone
    s2 = run_loop(SleepRunner(0.002), LoopPlan(iterations=5, warmup=0), window_start=lambda: None)
    assert len(s2) == 5 and s2.n_target == 5


def test_fill_has_a_hard_limit():
    s = run_loop(SleepRunner(0.002), LoopPlan(iterations=2, warmup=0), stop=threading.Event(), max_s=0.1)
    assert (s.t_end_ns[-1] - s.t_start_ns[0]) < 400_000_000


def test_gpu_times_are_aligned_and_checked():
    r = SleepRunner(0.001, gpu=True)
    r.infer(0)  # a call before the loop must not leak into it
    s = run_loop(r, LoopPlan(iterations=4, warmup=1))
    assert list(s.gpu_ms) == [1.0] * 5

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


# ----------------------------------------------------------------- issue 14: the loop's order
class Recorder:
    """Infers by sleeping, like SleepRunner, and logs every call with its time, so a test
    can see what ran where: ``("infer"|"sync"|"poke", t_ns)``. GPU times are the call's
    number, so a test can tell which calls' times were reported."""

    def __init__(self, infer_s=0.0005):
        self.n_inputs = 2
        self.infer_s = infer_s
        self.log = []
        self._calls = 0
        self._unread = []

    def infer(self, index):
        self.log.append(("infer", time.perf_counter_ns()))
        self._unread.append(float(self._calls))
        self._calls += 1
        time.sleep(self.infer_s)

    def synchronize(self, how):
        self.log.append(("sync", time.perf_counter_ns()))

    def poke(self):
        self.log.append(("poke", time.perf_counter_ns()))

    def gpu_times_ms(self):
        out, self._unread = self._unread, []
        return out


def _inside(t, s):
    return any(a <= t <= b for a, b in zip(s.t_start_ns, s.t_end_ns))


@pytest.mark.parametrize("prewarm", ["poke", "dummy"])
def test_prewarm_runs_after_the_gap_and_outside_the_timed_span(prewarm):
    r = Recorder()
    s = run_loop(r, LoopPlan(iterations=6, warmup=2, gap_s=0.01, prewarm=prewarm))
    starts = s.t_start_ns
    kind = "poke" if prewarm == "poke" else "infer"
    pre = [t for k, t in r.log if k == kind and not any(t == a for a in starts) and not _inside(t, s)]
    assert len(pre) == len(s) == 8  # one before every iteration, none inside a timed span
    for i, t0 in enumerate(starts):
        before = [t for t in pre if t < t0]
        assert before and t0 - before[-1] < 5_000_000  # just before its inference
        if i:  # ... and after the gap that followed the previous one
            assert before[-1] - s.t_end_ns[i - 1] >= 10_000_000 * 0.95
    if prewarm == "dummy":  # the dummies' GPU times are left out, the timed ones kept in order
        assert list(s.gpu_ms) == [float(2 * i + 1) for i in range(8)]
    else:
        assert list(s.gpu_ms) == [float(i) for i in range(8)]


@pytest.mark.parametrize("mode", ["sleep", "spin"])
def test_gap_is_slept_or_spun(mode, monkeypatch):
    slept = []
    real = time.sleep
    monkeypatch.setattr(time, "sleep", lambda x: (x > 0 and slept.append(x), real(x)))  # the runner's are 0
    r = Recorder(infer_s=0)
    s = run_loop(r, LoopPlan(iterations=5, warmup=0, gap_s=0.005, gap_mode=mode))
    gaps = [b - a for a, b in zip(s.t_end_ns, s.t_start_ns[1:])]
    assert all(g >= 5_000_000 for g in gaps)
    assert (len(slept) >= 4) == (mode == "sleep")


def test_plan_rejects_bad_gap_mode_and_prewarm():
    with pytest.raises(ValueError, match="gap_mode"):
        LoopPlan(gap_mode="nap")
    with pytest.raises(ValueError, match="prewarm"):
        LoopPlan(prewarm="hot")


def test_gpu_times_are_read_every_half_ring_outside_the_timed_spans():
    """A long run reads its times as it goes (so a GPU runner's event ring is recycled,
    never outgrown), never inside a timed span, and the reads add up to every inference."""
    from trt_ray_bench.timing._loop import FLUSH_EVERY

    class Reads(Recorder):
        def gpu_times_ms(self):
            self.log.append(("read", time.perf_counter_ns()))
            return super().gpu_times_ms()

    r = Reads(infer_s=0)
    s = run_loop(r, LoopPlan(iterations=3 * FLUSH_EVERY, warmup=5, prewarm="dummy"))
    reads = [t for k, t in r.log if k == "read"]
    assert len(reads) >= 4 and not any(_inside(t, s) for t in reads)
    assert list(s.gpu_ms) == [float(2 * i + 1) for i in range(len(s))]


def test_together_keeps_the_device_warm_at_the_barrier():
    """The barrier answers 0.3 s after warm-up: with keep_warm the loop runs warm-up
    inferences all that time, up to just before the start instant; without, it idles."""
    def release():
        time.sleep(0.3)
        return time.perf_counter_ns() + 30_000_000

    def idle_before_start(keep):
        s = run_loop(Recorder(infer_s=0.001), LoopPlan(iterations=5, warmup=3, keep_warm=keep), release=release)
        last_warm = max(e for e, w in zip(s.t_end_ns, s.warmup) if w)
        return s, (s.instant_ns - last_warm) / 1e6

    s, idle_ms = idle_before_start(True)
    assert s.barrier_warmup_n > 50 and sum(s.warmup) == 3 + s.barrier_warmup_n
    assert idle_ms < 10  # the spin before the instant, and at most an iteration or two
    assert min(t for t, w in zip(s.t_start_ns, s.warmup) if not w) >= s.instant_ns
    s, idle_ms = idle_before_start(False)
    assert s.barrier_warmup_n == 0 and sum(s.warmup) == 3 and idle_ms > 300


def test_a_model_slower_than_the_start_lead_waits_idle_at_the_barrier():
    """Seen in the quickstart on 2 cores (5 models, ~1 s inferences): a model that kept
    warm could not stop in time for the start instant (50 ms after the last arrival) and
    started up to an inference late (2.25 s of start skew). One iteration longer than half
    the lead: no keep-warm inferences, it is ready at the instant."""
    def release():
        time.sleep(0.3)
        return time.perf_counter_ns() + 50_000_000

    s = run_loop(Recorder(infer_s=0.04), LoopPlan(iterations=3, warmup=2, start_lead_s=0.05), release=release)
    assert s.barrier_warmup_n == 0 and sum(s.warmup) == 2
    assert min(t for t, w in zip(s.t_start_ns, s.warmup) if not w) - s.instant_ns < 5_000_000
    s = run_loop(Recorder(infer_s=0.001), LoopPlan(iterations=3, warmup=2, start_lead_s=0.05), release=release)
    assert s.barrier_warmup_n > 50


def test_together_window_opens_when_the_last_model_starts():
    """README: the statistics use the window in which all models were running. A model
    that starts 9 ms late: the others' first 9 ms were solo, not together."""
    from trt_ray_bench.timing import common_window

    ms = 1_000_000
    early = ([0, 5 * ms, 10 * ms, 20 * ms], [4 * ms, 9 * ms, 19 * ms, 30 * ms])
    late = ([9 * ms, 15 * ms], [14 * ms, 25 * ms])
    assert common_window([early, late]) == (9 * ms, 25 * ms)
    assert common_window([([0], [5]), ([6], [9])]) is None  # never running at once


def test_samples_are_held_compactly():
    """A long duration or fill run holds every sample until it ends (1.25 M inferences in
    8 minutes on the H200, where the model's process grew by 375 MB with Python lists):
    the times are typed 8-byte arrays, not lists of Python ints and floats."""
    import sys

    s = run_loop(SleepRunner(0.0, gpu=True), LoopPlan(iterations=20_000, warmup=0))
    for times in (s.t_start_ns, s.t_end_ns, s.enqueue_ns, s.gpu_ms):
        assert len(times) == 20_000 and times.itemsize == 8
    held = sum(sys.getsizeof(t) for t in (s.t_start_ns, s.t_end_ns, s.enqueue_ns, s.gpu_ms, s.warmup))
    assert held < 20_000 * 48  # 4 x 8 bytes + a pointer per flag (lists alone: ~4 x 40)
