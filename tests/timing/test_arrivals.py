"""Open-loop arrivals: the loop against queues whose answer is known in closed form.

The runner here is a **stand-in**, not a backend: ``SpinRunner`` waits out a fixed
service time S inside ``infer`` (a deterministic delay implementing the loop's Runner
protocol: sleep, then spin), so that the queue the loop builds can be checked against queueing theory:
D/D/1 below and above saturation, under ``queue`` and ``drop``, and M/D/1 (Poisson
arrivals) against the Pollaczek-Khinchine mean wait. On a loaded machine the spin may be
preempted, so every check uses the service times the run actually measured and a
tolerance taken from the data (the row's own interval, the scheduling error it saw),
never a fixed wall-clock threshold. Real backends run open loops in tests/cluster.
"""

import math
import threading
import time

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench.timing import ArrivalClock, LoopPlan, run_loop, wait_until
from trt_ray_bench.timing._queueing import miss_interval, open_loop_stats
from trt_ray_bench.timing._stats import mean_ci


class SpinRunner:
    """Stand-in runner: each inference takes ``service_ms``, waited out as the loop waits
    for an arrival (sleep, then spin the last ``spin_ms``). A pure busy-wait would be the
    most deterministic delay on an idle core, but on a shared 2-core machine the other
    processes preempt it: a 2 ms spin took 5.2 ms every fourth inference here, which makes
    a D/D/1 queue a queue of whatever the neighbours did. Sleeping most of the time needs
    the CPU only to wake up."""

    n_inputs = 1

    def __init__(self, service_ms: float, spin_ms: float = 0.3):
        self.ns = int(service_ms * 1e6)
        self.spin_ns = int(spin_ms * 1e6)

    def infer(self, index):
        wait_until(time.perf_counter_ns() + self.ns, self.spin_ns)

    def synchronize(self, how):
        pass

    def gpu_times_ms(self):
        return None


def _measured(s):
    m = slice(s.measured_from, None)
    ts, te = np.asarray(s.t_start_ns)[m], np.asarray(s.t_end_ns)[m]
    ta, fr = np.asarray(s.t_arrival_ns)[m], np.asarray(s.frame)[m]
    return ts, te, ta, fr, np.asarray(s.idle)[m]


# ------------------------------------------------------------------ the arrival clock
def test_periodic_arrivals_are_one_period_apart():
    c = ArrivalClock("periodic", 30.0)
    a = [c.start(1_000)] + [c.next() for _ in range(299)]
    assert a[0] == 1_000
    assert np.allclose(np.diff(a), 1e9 / 30, atol=1)


def test_jitter_stays_within_its_bound_and_keeps_the_frames_in_order():
    c = ArrivalClock("periodic", 100.0, jitter_ms=4.0, seed=3)
    a = np.asarray([c.start(0)] + [c.next() for _ in range(2000)], dtype=np.int64)
    dev = (a - np.arange(a.size) * 1e7)[1:] / 1e6
    assert np.abs(dev).max() <= 4.0 and dev.std() > 1.0  # moved, within +-4 ms
    assert (np.diff(a) > 0).all()
    with pytest.raises(ValueError, match="half the period"):
        ArrivalClock("periodic", 100.0, jitter_ms=5.0)


def test_poisson_gaps_have_the_rate_asked_for_and_a_seed_replays_them():
    c = ArrivalClock("poisson", 200.0, seed="7:cls:0")
    a = np.asarray([c.start(0)] + [c.next() for _ in range(19_999)], dtype=np.float64)
    gaps = np.diff(np.concatenate([[0.0], a])) / 1e9
    # exponential: mean 1/rate, cv 1 (its standard error at n = 20000 is 0.7 %)
    assert gaps.mean() == pytest.approx(1 / 200, rel=4 * gaps.std() / gaps.mean() / math.sqrt(gaps.size))
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)
    again = ArrivalClock("poisson", 200.0, seed="7:cls:0")
    assert [again.start(0)] + [again.next() for _ in range(99)] == list(a[:100].astype(np.int64))
    other = ArrivalClock("poisson", 200.0, seed="7:det:0")
    assert [other.start(0)] + [other.next() for _ in range(99)] != list(a[:100].astype(np.int64))


# ------------------------------------------------------------------ D/D/1
def test_below_saturation_a_frame_waits_for_nothing():
    """D/D/1 at rho = 0.4: a frame finds the model idle (its predecessor ended before it
    arrived), so from-arrival = service and the queue is the harness's scheduling error
    alone. (Lindley's recursion, start = max(arrival, previous end), holds frame by frame;
    on a loaded machine a preempted spin makes the odd frame wait, and only those.)"""
    service, rate = 2.0, 200.0  # S = 2 ms, period 5 ms
    s = run_loop(SpinRunner(service), LoopPlan(iterations=150, warmup=5, arrivals="periodic", rate_hz=rate))
    ts, te, ta, fr, idle = _measured(s)
    assert len(ts) == 150 and list(fr) == list(range(fr[0], fr[0] + 150))  # every frame served, in order
    assert np.allclose(np.diff(ta), 1e9 / rate, atol=1)  # arrivals one period apart
    assert (idle[1:] == (te[:-1] <= ta[1:])).all()  # idle: the previous inference had ended
    queue = (ts - ta) / 1e6
    host = (te - ts) / 1e6
    assert (ts[1:] >= np.maximum(ta[1:], te[:-1])).all()  # Lindley: never before max(arrival, previous end)
    # a frame after a normal inference (not preempted, started on time) finds the model idle
    normal = (host[:-1] <= 1000 / rate - 0.5) & idle[:-1] & (queue[:-1] < 0.5)
    assert idle[1:][normal].mean() >= 0.95
    # no backlog builds up: over the whole run the queue drifts by less than one service
    # (above saturation it grows by S - T every frame), and most frames wait less than
    # half a service (the harness's scheduling error; on a loaded machine, a neighbour's)
    slope = np.polyfit(np.arange(len(queue)), queue, 1)[0]
    assert abs(slope) * len(queue) < service and np.median(queue) < service / 2
    # from arrival = queue + service: for the frames that waited for nothing, the service
    since = (te - ta) / 1e6
    on_time = queue < 0.1 * service
    assert on_time.any() and np.abs(since - host)[on_time].max() < 0.1 * service


def test_above_saturation_the_queue_grows_by_service_minus_period_per_frame():
    """D/D/1 at rho = 1.5 under ``queue``: the model is never idle, frame k waits
    k (S - T) more than the first: a straight line of slope (mean service - period), the
    service being what the frames got (the runner's S and the loop's moment between two
    inferences; on a loaded machine, the odd preemption too)."""
    service, rate = 3.0, 500.0  # S = 3 ms, T = 2 ms
    s = run_loop(SpinRunner(service), LoopPlan(iterations=200, warmup=0, arrivals="periodic", rate_hz=rate))
    ts, te, ta, fr, idle = _measured(s)
    assert len(ts) == 200 and not idle[1:].any()
    queue = (ts - ta) / 1e6
    k = fr - fr[0]
    slope, icpt = np.polyfit(k, queue, 1)
    host = (te - ts) / 1e6
    between = (ts[1:] - te[:-1]) / 1e6  # the loop's own moment between two inferences
    assert between.min() >= 0 and np.median(between) < 0.05
    # frame by frame: each waits (its predecessor's service + the loop's moment - T) more
    per_frame = (queue[-1] - queue[0]) / k[-1]
    assert per_frame == pytest.approx(host[:-1].mean() + between.mean() - 1000 / rate, abs=1e-6)
    assert per_frame > 0.5 * (service - 1000 / rate)  # at least half of S - T = 1 ms a frame
    # a straight line: the fitted slope is the mean growth (a preemption bends it a little)
    assert slope == pytest.approx(per_frame, rel=0.1)
    assert np.corrcoef(k, queue)[0, 1] > 0.99


def test_above_saturation_drop_serves_at_the_service_rate_and_counts_the_rest():
    """D/D/1 at rho = 3 under ``drop``: when the model is free it serves the newest frame
    arrived, so it serves at 1/S, never waits more than a period, and the frames in
    between are dropped: served + dropped = frames."""
    service, rate = 3.0, 1000.0  # S = 3 ms, T = 1 ms
    n = 600
    s = run_loop(SpinRunner(service), LoopPlan(iterations=n, warmup=0, arrivals="periodic", rate_hz=rate,
                                               backlog="drop"))
    ts, te, ta, fr, idle = _measured(s)
    frames = s.frame_end - s.frame_from
    assert frames == n and fr[-1] == s.frame_from + n - 1
    served = len(ts)
    step = np.diff(ts).mean() / 1e6  # a service as the frames got it (S, the loop's moment, preemptions)
    assert step >= service
    assert served == pytest.approx(n * (1000 / rate) / step, rel=0.05)  # 1/S of the frames' time: about a third
    queue = (ts - ta) / 1e6
    # the newest frame arrived at most a period ago (plus the loop's own moment)
    assert np.percentile(queue, 95) <= 1000 / rate + 0.2
    st = open_loop_stats(ts, te, ta, fr, idle, deadline_ms=service + 1000 / rate + 0.5,
                         frames=(s.frame_from, s.frame_end))
    assert st["dropped"] == n - served and st["frames"] == n
    # a dropped frame is a frame without a result: it misses the deadline
    assert st["deadline_miss"] == pytest.approx((n - served + np.sum((te - ta) / 1e6 > service + 1.5)) / n)


# ------------------------------------------------------------------ M/D/1
@pytest.mark.slow
def test_a_rate_search_finds_the_capacity_not_what_a_short_probe_hides():
    """The rate search's bisection (``bisect_rate``) over this loop, D/D/1 with S = 5 ms
    (capacity 200 Hz), criterion ``deadline_miss <= 0.01`` with a 30 ms deadline. Probes of
    the base's 10 frames pass rates up to about twice the capacity: the queue grows by
    1/c - 1/r a frame but has not reached the deadline by the 10th frame. Lengthened as the
    search lengthens them (``probe_frames``), the answer is the capacity to the resolution."""
    from trt_ray_bench.cluster.search import bisect_rate, probe_frames, row_meets
    from trt_ray_bench.spec._model import TimingSpec

    service, deadline, res, base_n = 5.0, 30.0, 20.0, 10
    crit = ("deadline_miss", "<=", 0.01)
    timing = TimingSpec(arrivals="periodic", rate_hz=100, deadline_ms=deadline, iterations=base_n)
    served = []

    def meets(lengthen):
        def probe(rate):
            n = max(base_n, probe_frames(crit, timing, rate, rate, res) or 0) if lengthen else base_n
            s = run_loop(SpinRunner(service), LoopPlan(iterations=n, warmup=2, arrivals="periodic", rate_hz=rate))
            ts, te, ta, fr, idle = _measured(s)
            served.extend((te - ts) / 1e6)
            st = open_loop_stats(ts, te, ta, fr, idle, deadline_ms=deadline, frames=(s.frame_from, s.frame_end))
            return row_meets(pd.Series({"status": "ok", **st}), crit)
        return probe

    short, _ = bisect_rate(meets(False), 50, 500, res)
    found, note = bisect_rate(meets(True), 50, 500, res)
    # the capacity the frames saw: 1 / (mean service + the loop's moment between inferences)
    cap = 1000 / (np.mean(served) + 0.05)
    assert note == "" and 0.7 * cap - res <= found <= 1.05 * cap + res, (found, cap)
    # the short probes: 10 (1/c - 1/r) < 30 - 5 ms up to r = 2c (the clamp at 500 Hz included)
    assert short >= 1.4 * cap, (short, cap)
    assert probe_frames(crit, timing, 500, 500, res) == math.ceil(500 * 500 * 0.030 / res / 0.99)


def test_poisson_arrivals_wait_as_pollaczek_khinchine_says():
    """M/D/1 at rho = 0.5: the mean wait in the queue is Wq = lambda E[S^2] / (2 (1 - rho))
    (Pollaczek-Khinchine; rho S / (2 (1 - rho)) = S / 2 for a constant S). The formula
    is taken with the service the frames actually got (the stand-in's S, its wake-up and
    the loop's moment between two inferences), and must lie in the 99.9 % interval of the
    measured mean wait (dependence-aware: waits come in busy periods), widened by the
    harness's own scheduling error, which every wait includes. 20 s."""
    service, rate = 5.0, 100.0  # rho = 0.5, Wq = 2.5 ms
    s = run_loop(SpinRunner(service), LoopPlan(iterations=2000, warmup=50, arrivals="poisson", rate_hz=rate,
                                               seed=11))
    ts, te, ta, fr, idle = _measured(s)
    queue = (ts - ta) / 1e6
    # Lindley's recursion, frame by frame: a frame starts at its arrival or when the one
    # before it ended, whichever is later (plus the loop's moment)
    assert (ts[1:] >= np.maximum(ta[1:], te[:-1])).all()
    busy = ~idle[1:]
    between = (ts[1:][busy] - te[:-1][busy]) / 1e6  # end to next start while a frame waited
    svc = (te - ts) / 1e6 + (float(np.median(between)) if between.size else 0.0)
    lam = rate / 1000.0  # per ms
    rho = lam * svc.mean()
    assert 0.4 < rho < 0.8, rho
    wq = lam * np.mean(svc ** 2) / (2 * (1 - rho))
    lo, hi, dep = mean_ci(queue, 0.999)
    assert np.isfinite(lo), f"too short for its dependence (n_eff {dep.n_eff:.0f})"
    sched = float(np.median(queue[idle]))
    assert lo - sched <= wq <= hi + sched, (wq, lo, hi, sched, rho)
    if svc.std() < 0.05 * svc.mean():  # the constant-service form, where the service was about constant
        assert lo - sched <= rho * svc.mean() / (2 * (1 - rho)) <= hi + sched


# ------------------------------------------------------------------ the loop's other duties
def test_duration_bounds_time_and_the_waiting_frames_count_as_dropped():
    service, rate = 4.0, 500.0  # overloaded: the queue grows for the whole duration
    s = run_loop(SpinRunner(service), LoopPlan(iterations=None, duration_s=0.3, warmup=0, arrivals="periodic",
                                               rate_hz=rate))
    ts, te, ta, fr, idle = _measured(s)
    frames = s.frame_end - s.frame_from
    # every frame that arrived before the end of the duration: from the first measured one's
    # arrival (alone, the arrival clock runs on from before the release: a busy machine
    # delays the release by a few frames) to the release plus 0.3 s
    assert frames == pytest.approx((s.released_ns + 0.3e9 - ta[0]) * rate / 1e9, abs=1.5)
    assert frames >= 0.3 * rate - 1
    assert ts[-1] - s.released_ns < 0.3e9 + 1e6  # no inference started after the duration
    assert len(ts) < frames  # the rest were still waiting at the end: not served


def test_a_together_start_restarts_every_arrival_clock_at_the_instant():
    instant = {}

    def release():
        instant["t"] = time.perf_counter_ns() + 30_000_000
        return instant["t"]

    s = run_loop(SpinRunner(1.0), LoopPlan(iterations=20, warmup=3, arrivals="periodic", rate_hz=100.0,
                                           keep_warm=False), release=release)
    ts, te, ta, fr, idle = _measured(s)
    assert ta[0] == instant["t"] and np.allclose(np.diff(ta), 1e7, atol=1)
    assert idle[0] and ts[0] >= instant["t"]


def test_a_fill_counts_frames_from_the_window_start():
    stop = threading.Event()
    s = run_loop(SpinRunner(0.5), LoopPlan(iterations=30, warmup=0, arrivals="periodic", rate_hz=400.0),
                 stop=stop, on_target=stop.set, max_s=10.0, window_start=lambda: 0)
    assert s.n_target == 30 and len(s.t_start_ns) == 30


def test_warmup_follows_the_arrivals_and_is_flagged():
    s = run_loop(SpinRunner(0.5), LoopPlan(iterations=10, warmup=7, arrivals="periodic", rate_hz=500.0))
    assert list(s.warmup) == [True] * 7 + [False] * 10
    ta = np.asarray(s.t_arrival_ns)
    assert np.allclose(np.diff(ta), 2e6, atol=1)  # one clock through the warm-up and the phase (alone)


def test_gap_with_arrivals_is_refused_by_the_plan():
    with pytest.raises(ValueError, match="gap_s"):
        LoopPlan(arrivals="periodic", rate_hz=10.0, gap_s=0.1)
    with pytest.raises(ValueError, match="rate_hz"):
        LoopPlan(arrivals="poisson")


# ------------------------------------------------------------------ the miss rate's interval
def test_bursty_misses_get_a_wider_interval_than_independent_ones():
    rng = np.random.default_rng(0)
    iid = rng.random(4000) < 0.1
    bursts = np.repeat(rng.random(400) < 0.1, 10)  # the same rate, in runs of 10 frames
    p1, lo1, hi1, ne1 = miss_interval(iid)
    p2, lo2, hi2, ne2 = miss_interval(bursts)
    assert lo1 <= p1 <= hi1 and lo2 <= p2 <= hi2
    assert ne2 < ne1 / 4 and (hi2 - lo2) > 2 * (hi1 - lo1)


def test_no_interval_where_the_series_is_too_short_for_its_dependence():
    p, lo, hi, ne = miss_interval(np.repeat([True, False, True], 8))
    assert p == pytest.approx(2 / 3) and math.isnan(lo) and math.isnan(hi)


def test_no_miss_still_has_an_upper_bound():
    p, lo, hi, _ = miss_interval(np.zeros(1000, dtype=bool))
    assert p == 0 and lo == 0 and 0 < hi < 0.01


def test_the_interval_holds_its_rate_exactly_at_none_and_every_frame_missed():
    """The score interval's ends, computed in floating point, came out at 1e-17 above a rate
    of 0 (or below a rate of 1) for some lengths: an interval that leaves out its own point."""
    for n in range(20, 400):
        for missed in (False, True):
            p, lo, hi, _ = miss_interval(np.full(n, missed))
            assert lo <= p <= hi, (n, missed, p, lo, hi)
            assert (lo, p) == (0.0, 0.0) if not missed else (p, hi) == (1.0, 1.0)
    rng = np.random.default_rng(1)
    for _ in range(200):
        x = rng.random(int(rng.integers(20, 300))) < rng.random()
        p, lo, hi, _ = miss_interval(x)
        assert not np.isfinite(lo) or lo <= p <= hi


def test_a_slow_warm_up_clock_does_not_carry_past_the_start_instant():
    """Keeping warm at a together barrier on a slow clock (a frame every 0.4 s): the model
    must not be waiting for its next warm-up frame when the start instant comes."""
    instant = {}

    def release():
        time.sleep(0.05)  # released while the model waits for its next warm-up frame
        instant["t"] = time.perf_counter_ns() + 50_000_000
        return instant["t"]

    s = run_loop(SpinRunner(1.0), LoopPlan(iterations=3, warmup=1, arrivals="periodic", rate_hz=2.5,
                                           keep_warm=True, start_lead_s=0.05), release=release)
    ts, te, ta, fr, idle = _measured(s)
    assert ta[0] == instant["t"] and idle[0]
    assert (ts[0] - ta[0]) / 1e6 < 20  # started at the instant, not a warm-up period later
