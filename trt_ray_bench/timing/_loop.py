"""The timed loop: one function over a runner, with nothing else inside it.

Clock: ``time.perf_counter_ns`` is CLOCK_MONOTONIC on Linux, the same clock in every
process of a node, so sample times, the coordinator's start instant and telemetry
timestamps can be compared directly.
"""

from __future__ import annotations

import threading
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from statistics import median
from typing import Callable, Dict, List, Optional, Sequence, Tuple

try:  # Protocol is 3.8+
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore

from ._arrivals import ARRIVALS, BACKLOGS, ArrivalClock
from ._events import EVENT_RING, EVENT_RING_MAX

SYNC_MODES = ("device", "stream", "none")
GAP_MODES = ("sleep", "spin")
PREWARMS = ("none", "poke", "dummy")
#: the loop reads the runner's GPU times this often (outside the timed span): half the
#: event ring, so no event is recorded again before its time is read. Not with ``sync:
#: none`` at gap 0: there the times are read only after the phase's final synchronisation
FLUSH_EVERY = EVENT_RING // 2
#: ``sync: none``: the one wait where a stretch of unsynchronised inferences ends (the
#: warm-up, the measured phase): for everything the runner launched, on any stream
DRAIN = "device"
#: ``sync: none`` at gap 0, a duration-based phase: the ring is sized for this many times
#: the warm-up's rate (a margin for a warm-up slower than the phase)
RATE_MARGIN = 1.5
_NEVER = 1 << 62  # "read when this many calls are unread": not inside this stretch


class Runner(Protocol):
    """What a backend's runner is (``trt_ray_bench.engines``): the loop calls ``infer``,
    ``synchronize`` and ``gpu_times_ms`` inside or around the timed span, the rest before
    or after it. ``BaseRunner`` gives the optional ones their do-nothing defaults."""

    n_inputs: int

    def prepare(self, inputs: Sequence) -> None:
        """Take the inputs to cycle through (arrays of the model's input shape), copied to
        where ``infer`` reads them; sets ``n_inputs``. Not timed."""

    def reserve(self, n: int) -> Optional[int]:
        """Make now whatever ``n`` inferences will need (CUDA events), so nothing is
        created inside a timed span; called by ``run_loop`` before timing (and, for a
        duration-based ``sync: none`` phase, after the warm-up). Returns the capacity: how
        many ``infer`` calls' GPU times the runner holds between two ``gpu_times_ms``
        calls (``None``: no limit, or no GPU timer). A call past it gets no GPU time (NaN),
        never a wait inside its span."""

    def infer(self, index: int) -> None:
        """Launch one inference on prepared input ``index``; may return before it finishes."""

    def run_array(self, x) -> list:
        """One inference on a new input array, outputs readable after ``synchronize`` (the
        predict pipeline's call)."""

    def synchronize(self, how: str) -> None:
        """Wait for the launched work: ``device`` (whole device), ``stream``, or ``none``."""

    def gpu_times_ms(self) -> Optional[Sequence[float]]:
        """GPU times of the ``infer`` calls since the last call, in order (NaN for a call
        past the capacity), and forget them; ``None`` if the runner has no GPU timer. May
        wait for the device: ``run_loop`` calls it only outside the timed spans, and with
        ``sync: none`` only in a gap or after its final synchronisation, so that an
        unsynchronised stretch is not synchronised by reading its timer."""

    def stage_times_ms(self) -> Dict[str, List[float]]:
        """Per-stage times (``h2d_ms``, ``pre_ms``, ...) of the calls the last
        ``gpu_times_ms`` reported; empty where the runner has no stages."""

    def poke(self) -> None:
        """A tiny GPU operation on the runner's stream, waited for (``timing.prewarm: poke``:
        wakes the GPU without running the engine); a no-op where there is no GPU."""

    def begin_measured(self) -> None:
        """Called once between warm-up and the measured iterations."""

    def describe(self) -> dict:
        """What ran: device, providers / library versions, engine path (result columns)."""

    def close(self) -> None:
        """Release the engine, buffers and events."""


class BaseRunner:
    """Defaults of ``Runner``'s optional methods; backends override what they have."""

    n_inputs = 0

    def reserve(self, n: int) -> Optional[int]:
        return None

    def poke(self) -> None:
        pass

    def run_array(self, x) -> list:
        raise NotImplementedError(f"{type(self).__name__} cannot run a new input per inference")

    def gpu_times_ms(self) -> Optional[Sequence[float]]:
        return None

    def stage_times_ms(self) -> Dict[str, List[float]]:
        return {}

    def begin_measured(self) -> None:
        pass

    def describe(self) -> dict:
        return {}

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class LoopPlan:
    """How one model is timed. ``iterations`` xor ``duration_s``; warm-up by count and/or time."""

    iterations: Optional[int] = 100
    duration_s: Optional[float] = None
    warmup: int = 10
    warmup_s: float = 0.0
    gap_s: float = 0.0
    sync: str = "device"
    #: how long before the start instant to stop sleeping and spin; 0 when more models
    #: than cores wait at once (spinners would only take the CPU from each other)
    spin_s: float = 0.002
    #: how the gap is waited out: ``sleep`` (the OS wakes the thread) or ``spin`` (busy-wait)
    gap_mode: str = "sleep"
    #: untimed, just before each timed inference: ``none``, ``poke`` (``runner.poke()``) or
    #: ``dummy`` (one inference on the same input, waited for)
    prewarm: str = "none"
    #: together: while waiting at the barrier, keep running untimed (warm-up) inferences
    #: until just before the start instant, so the warm-up does not wear off
    keep_warm: bool = True
    #: together: the coordinator's start instant comes this long after the last arrival; a
    #: model whose one iteration takes more than half of it could not stop keeping warm in
    #: time (it would start late by up to an inference), so it waits idle instead
    start_lead_s: float = 0.05
    #: open loop: frames arrive on a clock (``periodic``, ``poisson``) at ``rate_hz``, each
    #: served when it has arrived and the model is free; ``closed``: the next inference
    #: starts when the previous one ended (plus ``gap_s``)
    arrivals: str = "closed"
    rate_hz: Optional[float] = None
    #: periodic: each arrival moved by a draw of U(-jitter_ms, +jitter_ms)
    jitter_ms: float = 0.0
    #: the arrival clock's seed (``random.Random``: an integer or a string)
    seed: Optional[object] = None
    #: a frame that arrives while the model is busy: ``queue`` (served in turn, late) or
    #: ``drop`` (when the model is free it serves the newest frame arrived; the older
    #: waiting ones are skipped, counted, and get no sample)
    backlog: str = "queue"

    def __post_init__(self):
        if (self.iterations is None) == (self.duration_s is None):
            raise ValueError("exactly one of iterations and duration_s is needed")
        if self.sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}")
        if self.gap_mode not in GAP_MODES:
            raise ValueError(f"gap_mode must be one of {GAP_MODES}")
        if self.prewarm not in PREWARMS:
            raise ValueError(f"prewarm must be one of {PREWARMS}")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals must be one of {ARRIVALS}")
        if self.backlog not in BACKLOGS:
            raise ValueError(f"backlog must be one of {BACKLOGS}")
        if self.arrivals != "closed" and not (self.rate_hz or 0) > 0:
            raise ValueError("an open loop (arrivals periodic or poisson) needs rate_hz above 0")
        if self.arrivals != "closed" and self.gap_s:
            raise ValueError("gap_s is for closed-loop arrivals only")


def _ns() -> array:
    """An empty array of int64 (nanoseconds)."""
    return array("q")


@dataclass
class Samples:
    """Raw per-inference times of one loop, warm-up included (flagged). The times are
    kept in typed arrays (8 bytes an inference each, not a Python object's ~36): a long
    duration or fill run holds every sample until it ends (about 1.25 M in 8 minutes on
    the H200), so that is most of what the model's process grows by."""

    t_start_ns: Sequence[int] = field(default_factory=_ns)
    t_end_ns: Sequence[int] = field(default_factory=_ns)
    enqueue_ns: Sequence[int] = field(default_factory=_ns)
    warmup: List[bool] = field(default_factory=list)
    gpu_ms: Optional[Sequence[float]] = None
    #: per-stage GPU times (e.g. h2d_ms, compute_ms, d2h_ms) where the runner has stages
    stages: Dict[str, Sequence[float]] = field(default_factory=dict)
    #: index of the first measured iteration that the plan did not ask for (together fill)
    n_target: int = 0
    #: the start instant the loop was given (the coordinator's), or when it began
    instant_ns: int = 0
    #: when the loop actually woke up for it (>= instant_ns; the difference is scheduling delay)
    released_ns: int = 0
    #: together with ``keep_warm``: warm-up iterations run while waiting at the barrier
    #: (they are warm-up rows, after the plan's own warm-up)
    barrier_warmup_n: int = 0
    #: ``sync: none``: when the one synchronisation after the last measured inference
    #: returned (every inference launched was done): the measured span ends here
    t_sync_end_ns: Optional[int] = None
    #: ``sync: none``: how long that synchronisation waited (how far the launches ran ahead)
    sync_wait_ns: Optional[int] = None
    #: ``sync: none`` at gap 0: the measured inferences the event ring could hold (its
    #: times are read only after the final synchronisation); ``None``: no limit
    gpu_capacity: Optional[int] = None
    #: measured inferences past that capacity: no GPU time (NaN in ``gpu_ms``)
    gpu_missing: int = 0
    #: open loop: per inference, its frame's scheduled arrival, the frame's index on the
    #: arrival clock (frames skipped under ``backlog: drop`` leave gaps) and whether the
    #: model was idle when the frame arrived (its previous inference had ended)
    t_arrival_ns: Sequence[int] = field(default_factory=_ns)
    frame: Sequence[int] = field(default_factory=_ns)
    idle: List[bool] = field(default_factory=list)
    #: open loop: the first measured frame's index, and the index after the last frame of
    #: the measured phase (served or not): ``frame_end - frame_from`` frames arrived in it
    frame_from: int = 0
    frame_end: int = 0
    #: index of the first measured inference, set when measuring begins (-1 before): with
    #: ``len(t_start_ns)`` what another thread reads to tell how far the loop is
    #: (``ModelActor.progress``), never anything the loop waits for
    measured_from: int = -1

    def __len__(self) -> int:
        return len(self.t_start_ns)

    @property
    def host_ns(self) -> List[int]:
        return [e - s for s, e in zip(self.t_start_ns, self.t_end_ns)]


def _iteration_ns(starts: Sequence[int], gpu_ms: Sequence[float], per: int, gap_ns: int, fallback: int) -> int:
    """``sync: none``: how long one iteration of the warm-up took as the device kept up
    with it: the launches' pace (median start to start) or, where slower, the GPU's work
    (median GPU time of the timed inferences, times the calls an iteration makes, plus
    the gap). Medians: the first, cold inferences do not count."""
    step = median([b - a for a, b in zip(starts, starts[1:])]) if len(starts) > 1 else fallback
    work = [g for g in gpu_ms if g == g]
    if work:
        step = max(step, median(work) * 1e6 * per + gap_ns)
    return max(1, int(step))


def wait_until(t_ns: int, spin_ns: int = 2_000_000) -> int:
    """Sleep until ``spin_ns`` before ``t_ns``, then spin; returns the time it woke.
    Spinning absorbs the sleep's wake-up latency (tens of µs) where a core is free."""
    now = time.perf_counter_ns()
    if t_ns - now > spin_ns:
        time.sleep((t_ns - now - spin_ns) / 1e9)
    while True:
        now = time.perf_counter_ns()
        if now >= t_ns:
            return now


def run_loop(
    runner: Runner,
    plan: LoopPlan,
    *,
    release: Optional[Callable[[], int]] = None,
    stop: Optional[threading.Event] = None,
    on_target: Optional[Callable[[], None]] = None,
    max_s: Optional[float] = None,
    on_begin: Optional[Callable[[int], None]] = None,
    window_start: Optional[Callable[[], Optional[int]]] = None,
    out: Optional[Samples] = None,
) -> Samples:
    """Warm up, then ask ``release`` (if given) for the start instant and wait for it,
    then time inferences. ``release`` is the barrier of a "together" run: it blocks
    until every model has warmed up and returns one ``perf_counter_ns`` instant. With
    ``plan.keep_warm`` the barrier is asked from a helper thread while this one keeps
    running warm-up inferences, until just before the instant.

    Each iteration: [the gap: sleep or spin ``gap_s`` after the previous inference ended]
    -> [prewarm: ``runner.poke()``, or one untimed inference + sync] -> t0 infer t1 sync t2.
    Everything of the harness (reading the GPU times, the gap, the prewarm, the barrier)
    is outside t0..t2. The GPU times are read every ``FLUSH_EVERY`` inferences, before
    the gap; with ``sync: none`` at gap 0 never inside the measured stretch (see below).

    ``sync: none``: t2 is when the launch returned, and the launches may run ahead of the
    device. The warm-up ends with one ``synchronize(DRAIN)`` (the measured phase must not
    inherit its queued work), and so does the measured phase: ``t_sync_end_ns`` is when
    that wait returned, the end of the measured span for throughput (inferences completed),
    ``sync_wait_ns`` how long it waited. Reading the GPU times waits for the device, so
    they are read only where the loop is not timing back to back: before a gap, or after
    the final synchronisation. At gap 0 that means the event ring holds the whole phase:
    ``reserve`` is asked for ``iterations`` (times two with a dummy prewarm) before the
    warm-up; for a duration, ``RATE_MARGIN`` times its worth at the warm-up's pace
    (``_iteration_ns``), made after the warm-up, which then runs again as long as making
    them took; with a fill (or no warm-up to estimate from) ``EVENT_RING_MAX``. A warm-up
    at gap 0 is read when the ring is half full. The inferences past the capacity get no
    GPU time (``gpu_capacity``, ``gpu_missing``). While waiting at a together barrier
    (``keep_warm``) each warm-up inference is waited for after t2, so that the device is
    idle at the start instant.

    ``stop``/``on_target`` implement "together" runs with a fill: once it has done its
    ``plan.iterations`` the runner calls ``on_target`` once and keeps loading the
    device until ``stop`` is set (or ``max_s`` passes), so every model is measured
    under contention for its whole count. ``on_begin`` is told the start of the first
    measured inference (after it); ``window_start``, where given, returns the start of
    the common window once known (the latest first measured start of all models) or
    ``None``, and with a fill the count is then of the inferences started in it: a model
    that began a little before the others is not short of its count in the window.

    ``out``: an empty ``Samples`` to record into (returned), for a caller whose other
    thread reads how far the loop is (its lengths, ``measured_from``) while it runs.
    """
    clock = time.perf_counter_ns
    sleep = time.sleep
    sync = runner.synchronize
    infer = runner.infer
    how = plan.sync
    gap_ns = int(plan.gap_s * 1e9)
    spin_gap = plan.gap_mode == "spin"
    prewarm = plan.prewarm
    poke = getattr(runner, "poke", None) or (lambda: None)  # a runner without poke has no GPU of its own
    n_inputs = max(1, runner.n_inputs)
    out = Samples() if out is None else out
    starts, ends, enq, wflags = out.t_start_ns, out.t_end_ns, out.enqueue_ns, out.warmup
    stage_fn = getattr(runner, "stage_times_ms", None)
    timer = runner.gpu_times_ms() is not None  # (drops the times of calls made before this loop)
    if stage_fn is not None:
        stage_fn()
    none = how == "none"
    # sync: none at gap 0: unsynchronised inferences back to back, whose GPU times are read
    # only after the phase's final synchronisation (a read waits for the device)
    open_loop = plan.arrivals != "closed"
    back_to_back = none and not gap_ns and timer and not open_loop
    per = 2 if prewarm == "dummy" else 1  # infer calls (ring slots) an iteration takes
    size = EVENT_RING
    if back_to_back:
        if stop is not None or (plan.iterations is None and not (plan.warmup > 0 or plan.warmup_s > 0)):
            size = EVENT_RING_MAX  # a fill may add any number; no warm-up to estimate a duration's count
        elif plan.iterations is not None:
            size = per * plan.iterations + FLUSH_EVERY  # + what a keep-warm wait may leave unread
    reserve = getattr(runner, "reserve", None)
    # e.g. CUDA events: made here, not inside the timed loop
    cap = reserve(size) if reserve is not None else None
    periodic = FLUSH_EVERY if not cap else max(1, min(FLUSH_EVERY, cap // 2))
    # ``before`` reads the GPU times once this many calls are unread; a back-to-back
    # warm-up as rarely as the ring allows (at its end where there is no limit), the
    # measured stretch never
    flush_at = (cap // 2 if cap else _NEVER) if back_to_back else periodic

    # Per ``infer`` call since the last read: True for a timed one, False for a dummy prewarm.
    calls: List[bool] = []
    gpu_all = array("d")
    stages_all: Dict[str, "array[float]"] = {}
    state = {"gpu": True}

    def read_times() -> None:
        """The runner's GPU (and stage) times of the calls since the last read, the dummy
        prewarms' left out. Outside any timed span."""
        gpu = runner.gpu_times_ms()
        st = stage_fn() if stage_fn is not None else {}
        mask = list(calls)
        calls.clear()
        if gpu is None:
            state["gpu"] = False
        elif len(gpu) != len(mask):
            raise RuntimeError(f"runner reported {len(gpu)} GPU times for {len(mask)} inferences")
        elif state["gpu"]:
            gpu_all.extend(gpu if all(mask) else [g for g, t in zip(gpu, mask) if t])
        for k, v in st.items():
            keep = v if len(v) != len(mask) or all(mask) else [x for x, t in zip(v, mask) if t]
            stages_all.setdefault(k, array("d")).extend(keep)

    def drain() -> Tuple[int, int]:
        """sync: none: wait once for everything launched; (when it began, when it returned)."""
        a = clock()
        sync(DRAIN)
        return a, clock()

    def before(prev_end: int, index: int) -> None:
        """Outside the timed span: read the times when due, wait out the gap, prewarm."""
        if len(calls) >= flush_at:
            read_times()
        if gap_ns and prev_end:
            until = prev_end + gap_ns
            if spin_gap:
                while clock() < until:
                    pass
            else:
                left = until - clock()
                if left > 0:
                    sleep(left / 1e9)
        if prewarm == "poke":
            poke()
        elif prewarm == "dummy":
            infer(index)
            sync(how)
            calls.append(False)

    def timed(index: int, warm: bool) -> Tuple[int, int]:
        """One inference: nothing but it (launch and sync) between t0 and t2; recorded
        after t2. Returns (t0, t2)."""
        t0 = clock()
        infer(index)
        t1 = clock()
        sync(how)
        t2 = clock()
        starts.append(t0)
        enq.append(t1 - t0)
        ends.append(t2)
        wflags.append(warm)
        calls.append(True)
        return t0, t2

    # Open loop: frames arrive on ``arrivals``' clock; ``frame`` holds the index of the
    # frame to serve next, its arrival and (drop) the next one's where already drawn.
    spin_ns = int(plan.spin_s * 1e9)
    arrivals = ArrivalClock(plan.arrivals, plan.rate_hz, plan.jitter_ms, plan.seed) if open_loop else None
    drop = plan.backlog == "drop"
    arr, frames, idles = out.t_arrival_ns, out.frame, out.idle
    # [the frame to serve next, its arrival, the next one's where drawn (drop), when the
    # model's previous inference ended (0: none yet)]
    frame = [0, arrivals.start(clock()) if open_loop else 0, None, 0]
    has_prewarm = prewarm != "none"

    def serve(index: int, warm: bool, last: Optional[int] = None, end: Optional[int] = None) -> Tuple[int, int]:
        """Open loop, the model free: serve the frame due, waiting (sleep, then spin) for
        its arrival where it has not arrived. ``queue``: the oldest frame not served;
        ``drop``: the newest arrived (not past frame ``last`` or arrival ``end``), the
        older ones skipped. Everything but t0..t2 (as ``timed``) is outside the timed span."""
        if len(calls) >= flush_at:
            read_times()
        k, a, nxt, free = frame
        if drop:
            now = clock()
            while True:
                if nxt is None:
                    nxt = arrivals.next()
                if nxt > now or (last is not None and k >= last) or (end is not None and nxt >= end):
                    break
                k, a, nxt = k + 1, nxt, None
        if a > free and a > clock():  # (arrived before the previous inference ended: no clock read)
            wait_until(a, spin_ns)
        if has_prewarm:
            if prewarm == "poke":
                poke()
            else:
                infer(index)
                sync(how)
                calls.append(False)
        t0, t2 = timed(index, warm)
        arr.append(a)
        frames.append(k)
        idles.append(free <= a)
        frame[0], frame[1], frame[2], frame[3] = k + 1, (nxt if nxt is not None else arrivals.next()), None, t2
        return t0, t2

    # Warm-up: by count, then by time, with the same gap and prewarm as the measurement
    # so the device reaches the state the measured iterations will see.
    i = 0
    prev = 0
    warm_deadline = clock() + int(plan.warmup_s * 1e9)
    while (frame[0] if open_loop else i) < plan.warmup or (plan.warmup_s > 0 and clock() < warm_deadline):
        if open_loop:  # the warm-up follows the arrivals too: it warms the queue, a count of frames
            _, prev = serve(i % n_inputs, True)
        else:
            before(prev, i % n_inputs)
            _, prev = timed(i % n_inputs, True)
        i += 1

    one_ns = ends[-1] - starts[-1] + gap_ns if ends else 0  # one iteration, as the warm-up's last took
    if none and i:
        # the warm-up's launches may still be queued: wait for them here, not in the phase
        drain()
        read_times()
        one_ns = _iteration_ns(starts, gpu_all if state["gpu"] else (), per, gap_ns, one_ns)
        if back_to_back and cap and plan.iterations is None and stop is None:
            want = int(plan.duration_s * 1e9 * per / one_ns * RATE_MARGIN) + FLUSH_EVERY
            if min(want, EVENT_RING_MAX) > cap:
                g0 = clock()
                cap = reserve(want)  # type: ignore[misc]  # cap is only set where reserve exists
                g1 = clock()
                periodic = max(1, min(FLUSH_EVERY, cap // 2)) if cap else FLUSH_EVERY
                flush_at = cap // 2 if cap else periodic
                # the device sat idle while the events were made: warm up again as long
                while True:
                    before(prev, i % n_inputs)
                    _, prev = timed(i % n_inputs, True)
                    i += 1
                    if clock() - g1 >= g1 - g0:
                        break
                drain()
                read_times()

    if release is not None and plan.keep_warm and 2 * one_ns <= plan.start_lead_s * 1e9:
        box: dict = {}

        def ask() -> None:
            try:
                box["t"] = release()
            except BaseException as exc:  # noqa: BLE001 - raised again in the timing thread
                box["exc"] = exc

        if none:  # each keep-warm inference is waited for below: a read waits for nothing
            flush_at = periodic
        waiter = threading.Thread(target=ask, name="trb-barrier", daemon=True)
        waiter.start()
        n0, last, done = i, 0, prev
        while True:
            if "exc" in box:
                raise box["exc"]
            # released: go on while one more iteration ends before the instant (less the spin)
            # (open loop: one more frame, from its arrival; ``last`` its service time)
            if "t" in box and max(clock(), frame[1] if open_loop else 0) + 2 * last + gap_ns + spin_ns >= box["t"]:
                break
            if open_loop and "t" not in box and frame[1] - clock() > spin_ns:
                # the next warm-up frame is not due yet: wait for it, or for the release
                # (whichever comes first), so that a slow clock does not carry past the instant
                waiter.join(min(0.01, (frame[1] - clock() - spin_ns) / 1e9))
                continue
            if open_loop:
                t0, t2 = serve(i % n_inputs, True)
            else:
                before(prev, i % n_inputs)
                t0, t2 = timed(i % n_inputs, True)
            end = t2
            if none:  # not ahead of the device: it must have nothing queued at the instant
                sync(DRAIN)
                end = clock()
            i += 1
            last = end - done if done and not open_loop else end - t0
            done, prev = end, t2
        waiter.join()
        out.barrier_warmup_n = i - n0
        out.instant_ns = box["t"]
        out.released_ns = wait_until(out.instant_ns, spin_ns)
    elif release is not None:
        out.instant_ns = release()
        out.released_ns = wait_until(out.instant_ns, spin_ns)
    else:
        out.instant_ns = out.released_ns = clock()
    if release is not None:
        prev = 0  # the first measured inference starts at the instant, not a gap later
    begin = getattr(runner, "begin_measured", None)
    if begin is not None:  # e.g. validation: warm-up predictions do not count
        begin()
    t_begin = out.released_ns
    deadline = t_begin + int(plan.duration_s * 1e9) if plan.duration_s is not None else None
    hard_stop = t_begin + int(max_s * 1e9) if max_s is not None else None
    target = plan.iterations
    first = len(starts)  # index of the first measured inference
    out.measured_from = first
    by_window = stop is not None and window_start is not None
    if back_to_back:  # the measured stretch: no read until its final synchronisation
        flush_at = _NEVER
        if cap:
            out.gpu_capacity = max(0, cap - len(calls))  # less what keep-warm left unread
    else:
        flush_at = periodic

    def enough() -> bool:
        """Done the count: of all measured inferences, or with a fill and a window, of
        those started at or after the window's start (``None`` until every model began)."""
        if not by_window:
            return True
        lo = window_start()
        return lo is not None and len(starts) - bisect_left(starts, lo, first) >= target

    if open_loop:
        _open_measured(serve, frame, arrivals, out, release is not None, deadline, hard_stop, target, stop,
                       on_target, on_begin, window_start, n_inputs, i, first, clock)
        if none:
            a, b = drain()
            out.t_sync_end_ns, out.sync_wait_ns = b, b - a
        return _finish(out, read_times, state, gpu_all, stages_all, starts, back_to_back, first)

    n = 0
    reached = False
    while True:
        now = clock()
        if deadline is not None and now >= deadline:
            break
        if target is not None and n >= target:
            if not reached and enough():
                reached = True
                out.n_target = n
                if on_target is not None:
                    on_target()
            if stop is None or stop.is_set() or (hard_stop is not None and now >= hard_stop):
                break
        before(prev, i % n_inputs)
        _, prev = timed(i % n_inputs, False)
        i += 1
        n += 1
        if n == 1 and on_begin is not None:
            on_begin(starts[first])
    if none:  # the measured span ends when the device has done every inference launched
        a, b = drain()
        out.t_sync_end_ns, out.sync_wait_ns = b, b - a
    if not reached:
        out.n_target = n
        if on_target is not None:
            on_target()
    return _finish(out, read_times, state, gpu_all, stages_all, starts, back_to_back, first)


def _open_measured(serve, frame: list, arrivals: ArrivalClock, out: Samples, together: bool,
                   deadline: Optional[int], hard_stop: Optional[int], target: Optional[int],
                   stop: Optional[threading.Event], on_target, on_begin, window_start, n_inputs: int, i: int,
                   first: int, clock) -> None:
    """The measured stretch of an open loop (``run_loop``'s ``serve`` per inference).

    Together, every model's arrival clock restarts at the common start instant, so their
    frames arrive from one instant on; alone, the clock runs on from the warm-up (its queue
    carries over). ``iterations`` counts frames (served or dropped); ``duration_s`` bounds
    time: the frames that arrive within it, the phase ending at its end; frames still
    waiting then are not served (counted with the dropped ones). With a fill, the count
    is of frames that arrived at or after the window's start."""
    starts = out.t_start_ns
    if together:
        frame[1], frame[2] = arrivals.start(out.instant_ns), None
        if deadline is not None:
            deadline += out.instant_ns - out.released_ns
    k0 = frame[0]
    out.frame_from = k0
    arr, frames = out.t_arrival_ns, out.frame
    by_window = stop is not None and window_start is not None
    last = k0 + target - 1 if target is not None and stop is None else None

    def enough() -> bool:
        if not by_window:
            return True
        lo = window_start()
        if lo is None:
            return False
        j = bisect_left(arr, lo, first)
        return j < len(arr) and frame[0] - frames[j] >= target

    reached = False
    begun = on_begin is None
    while True:
        if deadline is not None and (frame[1] >= deadline or clock() >= deadline):
            break
        if target is not None and frame[0] - k0 >= target:
            if not reached and enough():
                reached = True
                out.n_target = len(starts) - first
                if on_target is not None:
                    on_target()
            if stop is None or stop.is_set() or (hard_stop is not None and clock() >= hard_stop):
                break
        serve(i % n_inputs, False, last, deadline)
        i += 1
        if not begun:
            begun = True
            on_begin(starts[first])
    if deadline is not None:  # frames that arrived within the duration and were still waiting
        while frame[1] < deadline:
            frame[0], frame[1], frame[2] = frame[0] + 1, frame[2] if frame[2] is not None else arrivals.next(), None
    out.frame_end = frame[0]
    if not reached:
        out.n_target = len(starts) - first
        if on_target is not None:
            on_target()


def _finish(out: Samples, read_times, state, gpu_all, stages_all, starts, back_to_back: bool, first: int) -> Samples:
    """After the last measured inference: the GPU and stage times read, checked, kept."""
    read_times()
    if state["gpu"]:
        if len(gpu_all) != len(starts):
            raise RuntimeError(f"runner reported {len(gpu_all)} GPU times for {len(starts)} inferences")
        out.gpu_ms = gpu_all
        if back_to_back:
            out.gpu_missing = sum(1 for j in range(first, len(gpu_all)) if gpu_all[j] != gpu_all[j])
    out.stages = {k: v for k, v in stages_all.items() if len(v) == len(starts)}
    return out
