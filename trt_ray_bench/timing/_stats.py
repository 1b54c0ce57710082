"""Statistics of one latency series and their confidence intervals, honest about the
dependence between consecutive inferences (the thresholds of the warnings built on them
live in ``results.diagnose``).

Consecutive latencies are not independent draws: a GPU clock that wanders, a cache, a
neighbour's load make runs of slow and fast inferences, so an interval that treats ``n``
inferences as ``n`` independent ones is too narrow (for a lag-1 autocorrelation of 0.9,
about 3.6 times). Every interval here is built from the series' **effective sample
size** ``n_eff = n / tau``, ``tau`` its integrated autocorrelation time:

- ``tau`` is Geyer's initial monotone sequence estimator (the one Stan and ArviZ use for
  MCMC chains): the sample autocorrelations summed in pairs ``r(2k) + r(2k+1)`` while the
  pairs stay positive, made non-increasing, ``tau = -1 + 2 * sum``; ``lag`` is the last
  lag summed. On a short series it runs low: the sample mean it subtracts takes about
  ``tau / n`` from every autocorrelation, which is corrected (``tau * (1 - tau/n) /
  (1 - (2 lag + 1)/n)``), and its sum stops where the pairs drown in noise, short of a long
  tail, so ``tau`` is never below the ``(1 + r1) / (1 - r1)`` of an AR(1) series with the
  series' lag-1 autocorrelation ``r1`` (Kendall's bias of ``r1`` corrected). Floored at
  ``1 / log10(n)`` (Stan's floor: a negatively correlated series may have ``n_eff > n``).
- The long-run variance behind it is estimated from ``lag`` autocorrelations; such an
  estimate has few degrees of freedom when ``lag`` is a fair share of ``n``. The
  intervals use Student's t with ``df = min(n_eff - 1, n / (3 * lag))``: a third of the
  equivalent degrees of freedom of a truncated lag window (``n / lag``), the margin that
  keeps 95 % intervals at 93-97 % coverage for AR(1) series with rho 0 to 0.9 at n 200 and
  2000 (``benchmarks/stat_validity.py`` prints the figures).
- the mean: ``mean +- t(df) * s / sqrt(n_eff)``, ``n_eff`` of the latencies;
- the median: the order statistics at the levels ``1/2 -+ t(df) / (2 sqrt(n_eff))`` of
  the series, ``n_eff`` of the indicator ``x <= median`` (the series the median's
  variance depends on); symmetric ranks ``l`` and ``n + 1 - l``, ``l = floor(n * level + 1)``.
  For independent draws (``n_eff = n``) this is the normal approximation of the binomial
  order-statistic interval (:func:`median_interval`).
- no interval (NaN) where ``n_eff < MIN_NEFF`` or ``df < MIN_DF``: the row is too short
  for its own dependence (run it longer), never an interval that pretends independence.

Tail percentiles get no value (NaN) below the count at which a distribution-free interval
of them exists at all (``percentile_min_n``: p90 36, p95 72, p99 368 at 95 %).

Across repeats (runs), the unit of evidence between conditions, see ``results.compare``:
:func:`across_interval` (Student's t of the mean of the repeats' values) and
:func:`geometric_interval` (the same on their logarithms: the point is their geometric
mean, what a comparison of two conditions tests).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

PERCENTILES = (50, 90, 95, 99)
CV_WARN = 0.10
DRIFT_WARN = 0.10

#: the level of every interval unless the spec says otherwise (``confidence``)
CONFIDENCE = 0.95
#: no interval below this many effective samples, or this many degrees of freedom
MIN_NEFF = 10
MIN_DF = 2
#: the intervals' degrees of freedom: at most n / (DF_LAGS * lag) (module doc)
DF_LAGS = 3
#: the block-vs-shuffled spread ratio: this many consecutive blocks, this many shuffles
RATIO_BLOCKS = 10
RATIO_SHUFFLES = 5
SEED = 0

Interval = Tuple[float, float]
_NAN = (float("nan"), float("nan"))


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (scipy's ``stdtrit``: ``stats.t.ppf`` without its per-call
    overhead); NaN outside ``0 < p < 1`` or for ``df <= 0``."""
    if not 0.0 < p < 1.0 or not df > 0:
        return float("nan")
    from scipy import special

    return float(special.stdtrit(df, p))


def t_sf(t: float, df: float) -> float:
    """Upper tail probability of Student's t (scipy's ``stdtr``, as ``stats.t.sf``)."""
    from scipy import special

    return float(special.stdtr(df, -t))


def percentile_min_n(q: float, confidence: float = CONFIDENCE) -> int:
    """The fewest samples for which a distribution-free two-sided interval of the ``q``-th
    percentile exists at ``confidence``: ``[min, max]`` must already cover it, i.e.
    ``(q/100)^n <= (1 - c) / 2`` and ``(1 - q/100)^n <= (1 - c) / 2``."""
    a = (1.0 - confidence) / 2.0
    p = max(q, 100.0 - q) / 100.0
    return int(math.ceil(math.log(a) / math.log(p) - 1e-9))


@dataclass(frozen=True)
class Dependence:
    """How dependent a series is: ``tau`` (integrated autocorrelation time), ``lag`` (the
    last lag Geyer's sequence summed), ``n_eff = n / tau`` and the interval's ``df``."""

    n: int
    tau: float
    lag: int

    @property
    def n_eff(self) -> float:
        return self.n / self.tau if self.tau > 0 else float("nan")

    @property
    def df(self) -> float:
        return min(self.n_eff - 1.0, self.n / (DF_LAGS * max(self.lag, 1)))

    @property
    def usable(self) -> bool:
        return self.n_eff >= MIN_NEFF and self.df >= MIN_DF


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Sample autocorrelations ``r(0..n-1)`` of ``x`` (FFT; zero-padded, biased estimator).

    Lean in memory (a soak's series has tens of millions of values): the centred series is
    written straight into the zero-padded buffer, padded to the next even length scipy
    transforms fast (not the next power of two: up to twice less), and the power spectrum
    is made in place: about 55 bytes a value at the peak instead of 100."""
    from scipy import fft as sfft

    x = np.asarray(x)
    if x.dtype != np.bool_:  # (an indicator series stays one byte a value)
        x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n == 0:
        return np.zeros(0)
    half = sfft.next_fast_len(n, real=True)  # 2 half >= 2n - 1: no lag wraps around
    buf = np.zeros(2 * half)
    np.subtract(x, x.mean(), out=buf[:n])
    f = sfft.rfft(buf, overwrite_x=True)
    del buf
    re, im = f.real, f.imag
    np.square(re, out=re)
    re += np.square(im)
    im[...] = 0.0
    ac = sfft.irfft(f, 2 * half, overwrite_x=True)[:n]
    del f, re, im
    if not ac[0] > 0:
        return np.zeros(n)
    ac /= ac[0]
    return ac


#: Geyer's sum usually ends within a few lags: the autocorrelations up to 2 HEAD_LAGS + 1
#: are first computed directly (a dot product each, nothing allocated but the centred
#: series), all of them by FFT only where the sum runs past those
HEAD_LAGS = 32


def _autocorrelation_for_geyer(x) -> np.ndarray:
    """The autocorrelations ``dependence`` needs: the leading ones where Geyer's sum ends
    among them (a pair ``r(2k) + r(2k+1) <= 0``), else all (``autocorrelation``)."""
    n = len(x)
    if n <= 16 * HEAD_LAGS:  # short: the FFT costs nothing
        return autocorrelation(x)
    x = np.asarray(x)
    d = x - x.mean() if x.dtype == np.bool_ else np.asarray(x, dtype=np.float64) - float(np.mean(x))
    c0 = float(np.dot(d, d))
    if not c0 > 0:
        return np.zeros(2 * HEAD_LAGS + 2)
    r = np.empty(2 * HEAD_LAGS + 2)
    r[0] = 1.0
    for k in range(1, r.size):
        r[k] = float(np.dot(d[:-k], d[k:])) / c0
    del d
    if (r[0::2] + r[1::2] <= 0).any():
        return r
    return autocorrelation(x)


def dependence(x: Sequence[float], r: Optional[np.ndarray] = None) -> Dependence:
    """The autocorrelation time of ``x`` (module doc): Geyer's initial monotone sequence,
    corrected for the mean it subtracts, and never below what the lag-1 autocorrelation
    alone implies. ``r``: ``autocorrelation(x)`` where the caller has it already."""
    n = len(x)
    if n < 4:
        return Dependence(n, 1.0, 1)
    r = _autocorrelation_for_geyer(x) if r is None else r
    if not r[0] > 0:  # constant: nothing varies, nothing is dependent
        return Dependence(n, 1.0, 1)
    m = (n - 1) // 2
    pairs = r[0:2 * m:2] + r[1:2 * m:2]
    neg = np.flatnonzero(pairs <= 0)
    k = max(int(neg[0]) if neg.size else pairs.size, 1)
    pairs = np.minimum.accumulate(pairs[:k])
    lag = 2 * k - 1
    tau = -1.0 + 2.0 * float(pairs.sum())
    # Subtracting the sample mean lowers every autocovariance by about var * tau / n: the
    # sum over 2 lag + 1 lags by (2 lag + 1) / n of itself, the variance by tau / n.
    tau *= (1.0 - tau / n) / max(1.0 - (2 * lag + 1) / n, 0.25)
    # Geyer's sum stops where the pairs drown in noise, short of a long tail: an AR(1)
    # series with the lag-1 autocorrelation seen (Kendall's bias of r1 corrected) is a floor.
    r1 = min(float(r[1]) + (1.0 + 4.0 * float(r[1])) / n, 0.99)
    if r1 > 0:
        tau = max(tau, (1.0 + r1) / (1.0 - r1))
    return Dependence(n, max(tau, 1.0 / math.log10(max(n, 10))), lag)


def median_interval(x: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Order-statistic (binomial) interval of the median of ``x`` at ``confidence``, for
    independent draws (the building block; a row's own interval is :func:`median_ci`)."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return _NAN
    # the largest l with P(Binomial(n, 1/2) <= l - 1) <= (1 - c) / 2
    lo = int(stats.binom.ppf((1.0 - confidence) / 2.0, n, 0.5))
    if stats.binom.cdf(lo, n, 0.5) <= (1.0 - confidence) / 2.0:
        lo += 1
    if lo < 1:
        return _NAN
    part = np.partition(x, (lo - 1, n - lo))
    return float(part[lo - 1]), float(part[n - lo])


def median_ci(x: np.ndarray, confidence: float = CONFIDENCE) -> Tuple[float, float, Dependence]:
    """The median's interval under the dependence of ``x`` (module doc) and the
    dependence of its indicator series; NaN where too short for it."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n == 0:
        return (*_NAN, Dependence(0, float("nan"), 0))
    med = float(np.median(x))
    below = x <= med  # the indicator series (its autocorrelations as of 0.0 / 1.0)
    dep = dependence(below)
    del below
    if not dep.usable:
        return (*_NAN, dep)
    half = t_quantile(0.5 + confidence / 2.0, dep.df) * 0.5 / math.sqrt(dep.n_eff)
    lo = int(math.floor(n * (0.5 - half) + 1.0))
    if lo < 1:
        return (*_NAN, dep)
    part = np.partition(x, (lo - 1, n - lo))
    return float(part[lo - 1]), float(part[n - lo]), dep


def mean_ci(x: np.ndarray, confidence: float = CONFIDENCE,
            r: Optional[np.ndarray] = None) -> Tuple[float, float, Dependence]:
    """The mean's interval under the dependence of ``x`` (module doc); NaN where too short.
    ``r``: ``autocorrelation(x)`` where the caller has it already."""
    x = np.asarray(x, dtype=np.float64)
    dep = dependence(x, r)
    if x.size < 2 or not dep.usable:
        return (*_NAN, dep)
    half = t_quantile(0.5 + confidence / 2.0, dep.df) * float(x.std(ddof=1)) / math.sqrt(dep.n_eff)
    m = float(x.mean())
    return m - half, m + half, dep


def block_ratio(x: np.ndarray, blocks: int = RATIO_BLOCKS, shuffles: int = RATIO_SHUFFLES, seed: int = SEED) -> float:
    """How much more the medians of ``blocks`` consecutive blocks of ``x`` spread than
    those of the same values shuffled (standard deviations; the mean over ``shuffles``
    seeded shuffles): about 1 for independent draws, above it where slow and fast
    inferences come in runs. NaN below 5 values a block."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size - x.size % blocks
    if n < 5 * blocks:
        return float("nan")
    own = float(np.median(x[:n].reshape(blocks, -1), axis=1).std(ddof=1))
    rng = np.random.default_rng(seed)
    ref = float(np.mean([np.median(rng.permutation(x[:n]).reshape(blocks, -1), axis=1).std(ddof=1)
                         for _ in range(shuffles)]))
    return own / ref if ref > 0 else float("nan")


def across_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """t interval of the mean of ``values`` (one per repeat); NaN below two values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    k = v.size
    if k < 2:
        return _NAN
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, k - 1) * float(v.std(ddof=1)) / math.sqrt(k)
    m = float(v.mean())
    return m - half, m + half


def geometric_mean(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if v.size else float("nan")


def geometric_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """t interval of the mean of ``log(values)``, back in their units: the interval of
    their geometric mean (:func:`geometric_mean`); NaN below two positive values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 2:
        return _NAN
    lo, hi = across_interval(np.log(v), confidence)
    return float(np.exp(lo)), float(np.exp(hi))


@dataclass(frozen=True)
class Stats:
    """Summary of one series of latencies in milliseconds (a value; derived, never edited).
    ``fps`` is latency-bound: batch x 1000 / mean latency, the rate if inferences ran back
    to back with nothing between them (achieved throughput is the runs column
    ``throughput_ips``). ``*_ci_lo_ms`` / ``*_ci_hi_ms``: the intervals of the module doc;
    ``n_eff`` the effective sample size of the median's interval (of the indicator
    ``x <= median``), ``n_eff_mean`` the mean's; ``acf1`` the lag-1 autocorrelation and
    ``block_ratio`` the block-vs-shuffled spread ratio (:func:`block_ratio`).
    ``p90_ms``..``p99_ms`` are NaN below :func:`percentile_min_n`."""

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
    n_eff: float
    n_eff_mean: float
    acf1: float
    block_ratio: float

    def as_dict(self, prefix: str = "") -> dict:
        return {prefix + k: v for k, v in asdict(self).items()}

    @classmethod
    def empty(cls) -> "Stats":
        nan = float("nan")
        return cls(0, *([nan] * 18))


def summarize(latencies_ms: Sequence[float], batch: int = 1, confidence: float = CONFIDENCE) -> Stats:
    """n, mean, std (sample), min, p50/p90/p95/p99 (linear; the tails NaN below
    :func:`percentile_min_n`), max, FPS (latency-bound: batch x 1000 / mean), CV, the
    intervals of the median and the mean at ``confidence`` under the series' dependence,
    their effective sample sizes, the lag-1 autocorrelation and the block ratio."""
    x = np.asarray(latencies_ms, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.all():  # (no copy of a long series where every value is a number)
        x = x[finite]
    del finite
    if x.size == 0:
        return Stats.empty()
    n = int(x.size)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    pct = [float(v) for v in np.percentile(x, PERCENTILES)]
    for i, q in enumerate(PERCENTILES):
        if q != 50 and n < percentile_min_n(q, confidence):
            pct[i] = float("nan")
    p50_lo, p50_hi, dmed = median_ci(x, confidence)
    r = _autocorrelation_for_geyer(x) if n > 2 else np.zeros(1)
    mean_lo, mean_hi, dmean = mean_ci(x, confidence, r if n > 2 else None)
    return Stats(
        n=n, mean_ms=mean, std_ms=std, min_ms=float(x.min()),
        p50_ms=pct[0], p90_ms=pct[1], p95_ms=pct[2], p99_ms=pct[3], max_ms=float(x.max()),
        fps=batch * 1000.0 / mean if mean > 0 else float("nan"),
        cv=std / mean if mean > 0 else float("nan"),
        p50_ci_lo_ms=p50_lo, p50_ci_hi_ms=p50_hi, mean_ci_lo_ms=mean_lo, mean_ci_hi_ms=mean_hi,
        n_eff=float(dmed.n_eff), n_eff_mean=float(dmean.n_eff),
        acf1=float(r[1]) if r.size > 1 else float("nan"),
        block_ratio=block_ratio(x),
    )
