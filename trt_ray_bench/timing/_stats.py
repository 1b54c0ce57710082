"""Statistics of one latency series, their confidence intervals, and the thresholds of
its warnings (used by results.diagnose).

Intervals, at ``confidence`` (the spec's, 0.95 by default), treat the row's in-window
samples as independent draws (consecutive inferences are correlated in practice, so
they describe the sampling noise of one run, not the noise between runs: for that, use
repeats and :func:`across_interval`):

- the median: the distribution-free order-statistic interval ``[x_(l), x_(n+1-l)]``,
  ``l`` the largest rank with ``P(Binomial(n, 1/2) < l) <= (1 - c) / 2``. It is what a
  percentile bootstrap of the median converges to, exact (coverage >= c for any
  continuous distribution) and O(n) with no resampling, so 100k samples cost a sort.
  Fewer samples than the level allows (n < 6 at 95 %) give no interval (NaN).
- the mean: a percentile bootstrap, ``RESAMPLES`` resamples drawn with numpy's
  generator seeded ``SEED`` (the same samples give the same interval), vectorised in
  chunks; above ``BOOT_MAX_N`` samples the bootstrap distribution of a mean is normal
  to well under a percent (its skewness falls as 1/sqrt(n)), so the normal interval
  ``mean +- z s / sqrt(n)`` is used instead and 100k samples cost one pass.
- across repeats: Student's t interval of the mean of the repeats' values (their p50s),
  ``m +- t(c, k-1) s / sqrt(k)``: the noise between runs, k >= 2 repeats.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Sequence, Tuple

import numpy as np

PERCENTILES = (50, 90, 95, 99)
CV_WARN = 0.10
DRIFT_WARN = 0.10

#: the level of every interval unless the spec says otherwise (``confidence``)
CONFIDENCE = 0.95
#: bootstrap of the mean: resamples, seed, and the sample count above which the normal
#: interval replaces it
RESAMPLES = 1000
SEED = 0
BOOT_MAX_N = 2000
_CHUNK = 2_000_000  # resampled values drawn at once (memory: 16 MB per array)

Interval = Tuple[float, float]
_NAN = (float("nan"), float("nan"))


@dataclass(frozen=True)
class Stats:
    """Summary of one series of latencies in milliseconds (a value; derived, never edited).
    ``fps`` is latency-bound: batch x 1000 / mean latency, the rate if inferences ran back
    to back with nothing between them (achieved throughput is the runs column
    ``throughput_ips``). ``*_ci_lo_ms`` / ``*_ci_hi_ms``: the intervals of the module doc."""

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
    p50_ci_lo_ms: float
    p50_ci_hi_ms: float
    mean_ci_lo_ms: float
    mean_ci_hi_ms: float

    def as_dict(self, prefix: str = "") -> dict:
        return {prefix + k: v for k, v in asdict(self).items()}

    @classmethod
    def empty(cls) -> "Stats":
        nan = float("nan")
        return cls(0, *([nan] * 14))


def median_interval(x: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Order-statistic (binomial) interval of the median of ``x`` at ``confidence``."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return _NAN
    k = np.arange(1, n + 1)
    # P(Binomial(n, 1/2) = 0..n) in logs, by the ratio of consecutive terms (no overflow)
    logpmf = -n * np.log(2.0) + np.concatenate([[0.0], np.cumsum(np.log((n - k + 1) / k))])
    cdf = np.cumsum(np.exp(logpmf))
    lo = int(np.searchsorted(cdf, (1.0 - confidence) / 2.0, side="right"))  # P(X <= lo-1) <= alpha/2
    if lo < 1:
        return _NAN
    part = np.partition(x, (lo - 1, n - lo))
    return float(part[lo - 1]), float(part[n - lo])


def mean_interval(x: Sequence[float], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                  seed: int = SEED) -> Interval:
    """Percentile-bootstrap interval of the mean of ``x`` (normal above ``BOOT_MAX_N``)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 2:
        return _NAN
    alpha = 1.0 - confidence
    if n > BOOT_MAX_N:
        half = NormalDist().inv_cdf(1.0 - alpha / 2.0) * float(x.std(ddof=1)) / np.sqrt(n)
        m = float(x.mean())
        return float(m - half), float(m + half)
    rng = np.random.default_rng(seed)
    per = max(1, _CHUNK // n)
    means = np.concatenate([x[rng.integers(0, n, size=(min(per, resamples - i), n))].mean(axis=1)
                            for i in range(0, resamples, per)])
    lo, hi = np.percentile(means, (100 * alpha / 2, 100 * (1 - alpha / 2)))
    return float(lo), float(hi)


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (no scipy): with t = sqrt(df) tan(theta) the density in theta
    is proportional to cos(theta)^(df-1), integrated numerically on a fine grid."""
    if not 0.0 < p < 1.0 or df < 1:
        return float("nan")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    theta = np.linspace(0.0, np.pi / 2, 200_001)
    dens = np.cos(theta) ** (df - 1)
    cum = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2)])
    th = float(np.interp(2.0 * p - 1.0, cum / cum[-1], theta))
    return float(np.sqrt(df) * np.tan(th))


def across_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """t interval of the mean of ``values`` (one per repeat); NaN below two values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    k = v.size
    if k < 2:
        return _NAN
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, k - 1) * float(v.std(ddof=1)) / np.sqrt(k)
    m = float(v.mean())
    return float(m - half), float(m + half)


def summarize(latencies_ms: Sequence[float], batch: int = 1, confidence: float = CONFIDENCE) -> Stats:
    """n, mean, std (sample), min, p50/p90/p95/p99 (linear), max, FPS (latency-bound:
    batch x 1000 / mean), CV, and the intervals of the median and the mean at ``confidence``."""
    x = np.asarray(latencies_ms, dtype=np.float64)
    if x.size == 0:
        return Stats.empty()
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, PERCENTILES))
    p50_lo, p50_hi = median_interval(x, confidence)
    mean_lo, mean_hi = mean_interval(x, confidence)
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
        p50_ci_lo_ms=p50_lo,
        p50_ci_hi_ms=p50_hi,
        mean_ci_lo_ms=mean_lo,
        mean_ci_hi_ms=mean_hi,
    )
