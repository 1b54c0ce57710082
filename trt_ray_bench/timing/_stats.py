"""Statistics of one latency series; the thresholds of its warnings (used by results.diagnose)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
CV_WARN = 0.10
DRIFT_WARN = 0.10


@dataclass(frozen=True)
class Stats:
    """Summary of one series of latencies in milliseconds (a value; derived, never edited)."""

    n: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    fps: float
    cv: float

    def as_dict(self, prefix: str = "") -> dict:
        return {prefix + k: v for k, v in asdict(self).items()}

    @classmethod
    def empty(cls) -> "Stats":
        nan = float("nan")
        return cls(0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)


def summarize(latencies_ms: Sequence[float], batch: int = 1) -> Stats:
    """n, mean, std (sample), min, p50/p90/p95/p99 (linear), max, FPS (images/s), CV."""
    x = np.asarray(latencies_ms, dtype=np.float64)
    if x.size == 0:
        return Stats.empty()
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, PERCENTILES))
    return Stats(
        n=int(x.size),
        mean_ms=mean,
        std_ms=std,
        min_ms=float(x.min()),
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=float(x.max()),
        fps=batch * 1000.0 / mean if mean > 0 else float("nan"),
        cv=std / mean if mean > 0 else float("nan"),
    )
