"""A background thread that polls samplers at an interval and keeps long-form rows; and
streaming samplers (a command whose output is read line by line) that push their rows
from their own reader thread."""

from __future__ import annotations

import functools
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore

#: metric, value, unit, and optionally avg_s: the period (s) the value averages, ending when
#: it was read (absent or 0: an instantaneous value). Averaged readings are placed over that
#: period when joined (``results.join``): an average over the last second is not the state
#: at the instant it was read.
Reading = Union[Tuple[str, float, str], Tuple[str, float, str, float]]
Emit = Callable[[int, Iterable[Reading]], None]  # (t_ns, readings)


class Sampler(Protocol):
    source: str
    #: (optional) metrics whose value is an average since the previous poll (psutil's CPU
    #: utilisation): the collector gives them ``avg_s`` = the time since that poll
    since_last_poll: Iterable[str]
    #: (optional) metric -> the fixed period (s) its value averages (NVML's power, utilisation)
    avg_s: Dict[str, float]

    def read(self) -> Iterable[Reading]:
        """Current values; called from the collector's thread."""


class StreamingSampler(Protocol):
    source: str

    def start(self, emit: Emit) -> None:
        """Begin pushing ``emit(t_ns, readings)`` from the sampler's own thread, ``t_ns``
        from ``perf_counter_ns``. A missing tool is a warning for ``stop``, not an error."""

    def stop(self) -> Iterable[str]:
        """End the stream and wait for it; the run's warnings (one line each)."""


def _streams(s) -> bool:
    return callable(getattr(s, "start", None)) and not callable(getattr(s, "read", None))


class Collector:
    """Polls every polled sampler each ``interval_s`` until ``stop()``, and runs the
    streaming ones; rows use ``perf_counter_ns`` (CLOCK_MONOTONIC), the clock of the timing
    loop, so they join to samples."""

    def __init__(self, samplers: List[Union[Sampler, StreamingSampler]], interval_s: float = 0.1):
        self.samplers = samplers
        self.polled = [s for s in samplers if not _streams(s)]
        self.streaming = [s for s in samplers if _streams(s)]
        self.interval_s = interval_s
        self.rows: Dict[str, list] = {"t_ns": [], "source": [], "metric": [], "value": [], "unit": [], "avg_s": []}
        self.errors: List[str] = []
        self._lock = threading.Lock()  # the polling thread and the streams append rows
        self._stop = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="trb-telemetry", daemon=True)

    def start(self) -> "Collector":
        for s in self.streaming:
            try:
                s.start(functools.partial(self._append, s.source))
            except Exception as exc:  # noqa: BLE001 - a sampler failing must not stop the run
                self._error(f"{s.source}: {exc.__class__.__name__}: {exc}")
        self._thread.start()
        return self

    def _error(self, msg: str) -> None:
        if msg not in self.errors:
            self.errors.append(msg)

    def _append(self, source: str, t: int, readings: Iterable[Reading], since: Tuple[Iterable[str], float] = ((), 0.0),
                fixed: Optional[Dict[str, float]] = None) -> None:
        r = self.rows
        names, period = since
        fixed = fixed or {}
        with self._lock:
            for reading in readings:
                metric, value, unit = reading[:3]
                if len(reading) > 3:
                    avg = float(reading[3])
                else:
                    avg = period if metric in names else float(fixed.get(metric, 0.0))
                r["t_ns"].append(t)
                r["source"].append(source)
                r["metric"].append(metric)
                r["value"].append(float(value))
                r["unit"].append(unit)
                r["avg_s"].append(avg)

    def _run(self) -> None:
        nxt = time.perf_counter_ns()
        step = int(self.interval_s * 1e9)
        last: Dict[int, int] = {}  # per polled sampler: when it was last read
        while self.polled and not self._stop.is_set():
            t = time.perf_counter_ns()
            for s in self.polled:
                names = frozenset(getattr(s, "since_last_poll", ()))
                period = (t - last[id(s)]) / 1e9 if id(s) in last else self.interval_s
                last[id(s)] = t
                try:
                    self._append(s.source, t, list(s.read()), (names, period), getattr(s, "avg_s", None))
                except Exception as exc:  # a sampler failing must not stop the run
                    self._error(f"{s.source}: {exc.__class__.__name__}: {exc}")
            nxt += step
            delay = (nxt - time.perf_counter_ns()) / 1e9
            if delay < 0:  # fell behind: do not burst to catch up
                nxt = time.perf_counter_ns()
                delay = 0
            self._stop.wait(delay)

    def stop(self) -> Dict[str, list]:
        """Stop polling and every stream (idempotent); the rows."""
        if self._stopped:
            return self.rows
        self._stopped = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for s in self.streaming:
            try:
                for msg in s.stop() or ():
                    self._error(msg)
            except Exception as exc:  # noqa: BLE001
                self._error(f"{s.source}: {exc.__class__.__name__}: {exc}")
        return self.rows
