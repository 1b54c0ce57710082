"""A background thread that polls samplers at an interval and keeps long-form rows."""

from __future__ import annotations

import threading
import time
from typing import Dict, Iterable, List, Tuple

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore

Reading = Tuple[str, float, str]  # metric, value, unit


class Sampler(Protocol):
    source: str

    def read(self) -> Iterable[Reading]:
        """Current values; called from the collector's thread."""


class Collector:
    """Polls every sampler each ``interval_s`` until ``stop()``; rows use ``perf_counter_ns``
    (CLOCK_MONOTONIC), the clock of the timing loop, so they join to samples."""

    def __init__(self, samplers: List[Sampler], interval_s: float = 0.1):
        self.samplers = samplers
        self.interval_s = interval_s
        self.rows: Dict[str, list] = {"t_ns": [], "source": [], "metric": [], "value": [], "unit": []}
        self.errors: List[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trb-telemetry", daemon=True)

    def start(self) -> "Collector":
        self._thread.start()
        return self

    def _run(self) -> None:
        nxt = time.perf_counter_ns()
        step = int(self.interval_s * 1e9)
        r = self.rows
        while not self._stop.is_set():
            t = time.perf_counter_ns()
            for s in self.samplers:
                try:
                    for metric, value, unit in s.read():
                        r["t_ns"].append(t)
                        r["source"].append(s.source)
                        r["metric"].append(metric)
                        r["value"].append(float(value))
                        r["unit"].append(unit)
                except Exception as exc:  # a sampler failing must not stop the run
                    msg = f"{s.source}: {exc.__class__.__name__}: {exc}"
                    if msg not in self.errors:
                        self.errors.append(msg)
            nxt += step
            delay = (nxt - time.perf_counter_ns()) / 1e9
            if delay < 0:  # fell behind: do not burst to catch up
                nxt = time.perf_counter_ns()
                delay = 0
            self._stop.wait(delay)

    def stop(self) -> Dict[str, list]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return self.rows
