"""The arrival clock of an open loop: when each frame of a camera (or a request stream)
is due, on the loop's own clock (``perf_counter_ns``).

- ``periodic``: frame ``k`` at ``t0 + k / rate_hz``, plus a draw of ``U(-jitter, +jitter)``
  where ``jitter_ms`` is given (a camera's clock is not perfect); the jitter is below half
  the period (the spec refuses more), so the frames stay in order.
- ``poisson``: independent exponential gaps of mean ``1 / rate_hz`` from ``t0`` (the
  first frame one gap after it): MLPerf LoadGen's Server scenario.

The draws come from numpy's generator seeded from ``seed`` (any string or integer): a
seed gives the same arrivals again. Drawing one arrival costs about 0.1-0.2 µs, outside every timed span.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
from typing import Iterator, List, Optional, Union

ARRIVALS = ("closed", "periodic", "poisson")
BACKLOGS = ("queue", "drop")


#: arrivals are drawn this many at a time (numpy), and handed out one by one from a list:
#: tens of ns a frame
CHUNK = 1024


class ArrivalClock:
    """Frame arrivals of one model: ``start(t0)`` returns the first one, each ``next()``
    the one after it (integer nanoseconds, non-decreasing)."""

    def __init__(self, kind: str, rate_hz: float, jitter_ms: float = 0.0,
                 seed: Optional[Union[int, str]] = None):
        if kind not in ("periodic", "poisson"):
            raise ValueError(f"arrivals must be periodic or poisson for a clock, not {kind!r}")
        if not rate_hz or rate_hz <= 0:
            raise ValueError("rate_hz must be above 0")
        self.kind = kind
        self.period_ns = 1e9 / rate_hz
        self.jitter_ns = float(jitter_ms or 0.0) * 1e6
        if kind == "periodic" and self.jitter_ns * 2 >= self.period_ns:
            raise ValueError("jitter_ms must be below half the period")
        # any seed (a string too) -> numpy's generator, the same for the same seed
        self.rng = np.random.default_rng(random.Random(seed).getrandbits(128))
        self.next = iter(()).__next__

    def start(self, t0: int) -> int:
        """Restart the clock at ``t0`` (the phase's start instant); the first arrival.
        ``next`` then gives the ones after it."""
        # chain: each frame from the current chunk's list at C speed, the generator woken per chunk
        self.next = itertools.chain.from_iterable(self._chunks(int(t0))).__next__
        return self.next()

    def _chunks(self, t0: int) -> Iterator[List[int]]:
        period, jitter, rng = self.period_ns, self.jitter_ns, self.rng
        k = 0
        t = 0.0  # poisson: since t0, ns
        while True:
            if self.kind == "poisson":
                rel = t + np.cumsum(rng.exponential(period, CHUNK))
                t = float(rel[-1])
            else:
                rel = np.arange(k, k + CHUNK, dtype=np.float64) * period
                if jitter:
                    rel = np.maximum(rel + rng.uniform(-jitter, jitter, CHUNK), 0.0)
            k += CHUNK
            yield (t0 + rel.astype(np.int64)).tolist()
