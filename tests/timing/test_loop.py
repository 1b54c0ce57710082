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
    # never early; within 1 ms in the best of five waits (a shared VM may deschedule the
    # process for a few ms in any one of them, which a coarse sleep would do in all five)
    late = []
    for _ in range(5):
        t = time.perf_counter_ns() + 20_000_000
        woke = wait_until(t)
        assert woke >= t
        late.append(woke - t)
    assert min(late) < 1_000_000, late


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


# ----------------------------------------------------------------- sync: none done right
class StreamRunner:
    """A GPU runner in Python with a stand-in stream: ``infer`` is the launch (it returns
    at once) and queues ``work_s`` of work, done one inference after another in real time;
    ``synchronize`` waits until all of it is done (``none``: for nothing), and so does a
    read of the GPU times, as a real event read does. ``depth``: inferences the launch
    queue holds (a launch waits while it is full; None: no limit). ``ring``: the most
    calls ``reserve`` grants (making them takes ``reserve_s``); a call past the capacity
    since the last read has no GPU time (NaN). Logs every call with its time."""

    def __init__(self, work_s=0.001, ring=100_000, depth=None, reserve_s=0.0):
        self.n_inputs = 2
        self.work_ns = int(work_s * 1e9)
        self.ring, self.depth, self.reserve_s = ring, depth, reserve_s
        self.cap = 0
        self.busy_until = 0
        self.unread = 0
        self.log = []
        self.reserved = []

    def reserve(self, n):
        self.reserved.append(n)
        if min(n, self.ring) > self.cap:
            self.cap = min(n, self.ring)
            time.sleep(self.reserve_s)
        return self.cap

    def _wait_until(self, t):
        while True:
            left = t - time.perf_counter_ns()
            if left <= 0:
                return
            time.sleep(left / 1e9)

    def infer(self, index):
        if self.depth is not None:  # a full launch queue: the launch waits for room
            self._wait_until(self.busy_until - self.depth * self.work_ns)
        now = time.perf_counter_ns()
        self.busy_until = max(self.busy_until, now) + self.work_ns
        self.unread += 1
        self.log.append(("infer", now))

    def synchronize(self, how):
        self.log.append((how, time.perf_counter_ns()))
        if how != "none":
            self._wait_until(self.busy_until)

    def gpu_times_ms(self):
        self.log.append(("read", time.perf_counter_ns()))
        self._wait_until(self.busy_until)
        n, self.unread = self.unread, 0
        kept = min(n, self.cap)
        return [self.work_ns / 1e6] * kept + [float("nan")] * (n - kept)

    def times(self, kind):
        return [t for k, t in self.log if k == kind]


def _measured(s):
    """(index of the first measured inference, its start, the last measured end)."""
    w = s.warmup.index(False)
    return w, s.t_start_ns[w], s.t_end_ns[-1]


def test_sync_none_at_gap_0_reads_no_gpu_time_inside_the_measured_stretch():
    """Reading a GPU timer waits for the device: between back-to-back unsynchronised
    inferences it would be a synchronisation the user did not ask for. With sync: none at
    gap 0 the ring holds the whole phase; the times are read after the warm-up's and the
    phase's one synchronisation each, never between the first and the last measured
    inference, and every inference has its GPU time."""
    from trt_ray_bench.timing._loop import DRAIN, FLUSH_EVERY

    r = StreamRunner(work_s=0.0005)
    s = run_loop(r, LoopPlan(iterations=300, warmup=20, sync="none"))
    w, lo, hi = _measured(s)
    reads = r.times("read")
    assert reads and not any(lo <= t <= hi for t in reads)
    drains = r.times(DRAIN)
    assert len(drains) == 2  # once after the warm-up, once after the phase
    assert s.t_end_ns[w - 1] < drains[0] < lo and hi < drains[1] <= s.t_sync_end_ns
    assert reads[-1] >= s.t_sync_end_ns  # the final read: after the final synchronisation
    assert len(r.times("none")) == 320  # every timed inference: no wait inside its span
    assert r.reserved == [300 + FLUSH_EVERY] and s.gpu_capacity == 300 + FLUSH_EVERY
    assert len(s.gpu_ms) == 320 and all(g == 0.5 for g in s.gpu_ms) and s.gpu_missing == 0
    # the launches ran ahead of the device (150 ms of work): the final synchronisation waited for it
    assert s.sync_wait_ns > 100_000_000


def test_sync_none_throughput_counts_completed_inferences():
    """Launches that return at once, 2 ms of work each: the measured span ends at the
    final synchronisation, so the rate is the device's (~500/s), not the launches'."""
    r = StreamRunner(work_s=0.002)
    s = run_loop(r, LoopPlan(iterations=100, warmup=5, sync="none"))
    w, lo, hi = _measured(s)
    completed = 100 / ((s.t_sync_end_ns - lo) / 1e9)
    launched = 100 / ((hi - lo) / 1e9)
    assert 400 < completed <= 500 * 1.01
    assert launched > 5 * completed
    assert s.t_sync_end_ns - s.sync_wait_ns >= hi  # the wait began after the last launch
    assert len(r.times("device")) == 2  # no other wait than the warm-up's and the phase's


def test_sync_none_past_the_ring_capacity_gpu_times_are_nan_and_counted():
    """The ring cannot hold the phase (64 here, EVENT_RING_MAX on a real runner): the
    inferences past it get no GPU time rather than a read inside the stretch."""
    from trt_ray_bench.timing._loop import FLUSH_EVERY

    r = StreamRunner(work_s=0.0001, ring=64)
    s = run_loop(r, LoopPlan(iterations=100, warmup=5, sync="none"))
    w, lo, hi = _measured(s)
    assert r.reserved == [100 + FLUSH_EVERY]
    assert s.gpu_capacity == 64 and s.gpu_missing == 36
    g = list(s.gpu_ms)
    assert len(g) == 105 and all(x == 0.1 for x in g[:w + 64]) and all(x != x for x in g[w + 64:])
    assert not any(lo <= t <= hi for t in r.times("read"))


def test_other_sync_modes_read_every_half_ring_and_have_no_final_wait():
    """sync: device (each inference waited for): the times are read every half ring, as
    small as the runner's is, outside the spans; no final synchronisation, no NaN."""
    from trt_ray_bench.timing import EVENT_RING

    r = StreamRunner(work_s=0.0001, ring=64)
    s = run_loop(r, LoopPlan(iterations=100, warmup=5, sync="device"))
    assert r.reserved == [EVENT_RING]
    reads = r.times("read")
    assert len(reads) >= 2 + 105 // 32 and not any(_inside(t, s) for t in reads)
    assert len(s.gpu_ms) == 105 and all(g == 0.1 for g in s.gpu_ms)
    assert s.t_sync_end_ns is None and s.sync_wait_ns is None and s.gpu_capacity is None and s.gpu_missing == 0
    assert len(r.times("device")) == 105  # one per inference, inside its span, and no other


def test_sync_none_with_a_gap_reads_in_the_gaps():
    """With a gap the loop is not timing back to back: the times are read as they come
    due, in a gap (before its wait), never inside a span; the ring keeps its usual size."""
    from trt_ray_bench.timing import EVENT_RING

    r = StreamRunner(work_s=0.001, ring=16)
    s = run_loop(r, LoopPlan(iterations=40, warmup=2, gap_s=0.002, sync="none"))
    w, lo, hi = _measured(s)
    assert r.reserved == [EVENT_RING]
    inside = [t for t in r.times("read") if lo <= t <= hi]
    assert len(inside) >= 3  # every 8 calls (half the ring of 16)
    gaps = list(zip(s.t_end_ns[w:], s.t_start_ns[w + 1:]))
    assert all(any(a < t < b for a, b in gaps) for t in inside)
    assert all(b - a >= 2_000_000 for a, b in gaps)  # the read is inside the gap, not added to it
    assert len(s.gpu_ms) == 42 and all(g == 1.0 for g in s.gpu_ms) and s.gpu_capacity is None
    assert s.t_sync_end_ns >= hi


def test_sync_none_duration_sizes_the_ring_from_the_warmup():
    """A duration-based phase: the ring is sized from the warm-up's rate (a 1 s phase at
    ~1 ms an inference: about 1500 + 512 slots, more than the 1024 it had), made after
    the warm-up, which then runs again as long as making them took (50 ms here): the
    device is not idle before the measured phase. Every measured inference has its time."""
    from trt_ray_bench.timing import EVENT_RING

    r = StreamRunner(work_s=0.001, depth=8, reserve_s=0.05)
    s = run_loop(r, LoopPlan(iterations=None, duration_s=1.0, warmup=20, sync="none"))
    w, lo, hi = _measured(s)
    assert r.reserved[0] == EVENT_RING and len(r.reserved) == 2 and r.reserved[1] > EVENT_RING
    assert w > 20 + 30  # warmed up again for about the 50 ms the events took
    drains = r.times("device")
    assert len(drains) == 3 and drains[1] < lo  # after the warm-up, after the warm-up again, after the phase
    assert 700 < len(s) - w <= r.reserved[1]
    assert s.gpu_missing == 0 and all(g == 1.0 for g in s.gpu_ms)
    assert not any(lo <= t <= hi for t in r.times("read"))


def test_sync_none_keep_warm_leaves_nothing_queued_at_the_start_instant():
    """Together with keep_warm: the warm-up inferences run while the model waits at the
    barrier are each waited for (after t2), so at the start instant the device has no
    backlog and the measured phase's work starts at once (launches that never wait would
    have queued 200 ms of work here)."""
    def release():
        time.sleep(0.2)
        return time.perf_counter_ns() + 30_000_000

    r = StreamRunner(work_s=0.001)
    s = run_loop(r, LoopPlan(iterations=50, warmup=5, sync="none"), release=release)
    w, lo, hi = _measured(s)
    assert s.barrier_warmup_n > 50
    assert 0 <= lo - s.instant_ns < 5_000_000
    assert s.t_sync_end_ns - lo < 50 * 1_000_000 * 1.6  # its own 50 ms of work, no backlog
    assert not any(lo <= t <= hi for t in r.times("read"))
    assert len(s.gpu_ms) == len(s) and s.gpu_missing == 0


def test_sync_none_ring_sizes_for_a_fill_and_a_dummy_prewarm():
    """A fill may add any number of inferences: the ring asked for is EVENT_RING_MAX. A
    dummy prewarm takes a slot of its own: twice the iterations."""
    from trt_ray_bench.timing import EVENT_RING_MAX
    from trt_ray_bench.timing._loop import FLUSH_EVERY

    r = StreamRunner(work_s=0.0001)
    stop = threading.Event()
    s = run_loop(r, LoopPlan(iterations=10, warmup=2, sync="none"), stop=stop, on_target=stop.set)
    assert r.reserved == [EVENT_RING_MAX] and s.gpu_capacity == 100_000
    r = StreamRunner(work_s=0.0001)
    s = run_loop(r, LoopPlan(iterations=10, warmup=2, sync="none", prewarm="dummy"))
    assert r.reserved == [2 * 10 + FLUSH_EVERY] and len(s.gpu_ms) == 12 and s.gpu_missing == 0


def test_sync_none_iteration_estimate_is_the_slower_of_launches_and_gpu_work():
    """What the keep-warm decision and a duration's ring size use with sync: none (the
    host span is only the launch): the median launch pace or, where slower, the median
    GPU time per iteration; a cold first inference does not count."""
    from trt_ray_bench.timing._loop import _iteration_ns

    ms = 1_000_000
    launches = [0, 50 * ms, 50 * ms + 10_000, 50 * ms + 20_000, 50 * ms + 30_000]  # then 10 us apart
    assert _iteration_ns(launches, [40.0, 1.0, 1.0, 1.0, 1.0], 1, 0, 0) == 1 * ms  # GPU-bound
    assert _iteration_ns(launches, [40.0, 1.0, 1.0, 1.0, 1.0], 2, 3 * ms, 0) == 5 * ms  # a dummy each, a gap
    assert _iteration_ns(launches, [0.001] * 5, 1, 0, 0) == 10_000  # launch-bound
    assert _iteration_ns(launches[:1], [], 1, 0, 7) == 7  # one warm-up, no GPU timer: the fallback
