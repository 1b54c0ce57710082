"""The intervals of one latency series: exact coverage of the median's, a reproducible
bootstrap of the mean, Student's t across repeats, and speed on 100k samples."""

import time

import numpy as np
import pytest

from trt_ray_bench.timing._stats import (BOOT_MAX_N, across_interval, mean_interval, median_interval, summarize,
                                         t_quantile)


def test_median_interval_is_the_binomial_order_statistic_interval():
    x = np.arange(1.0, 11.0)  # n=10 at 95 %: ranks 2 and 9 (P(X <= 1) = 11/1024 <= 0.025 < 56/1024)
    assert median_interval(x) == (2.0, 9.0)
    assert np.isnan(median_interval(x[:5])).all()  # n=5 cannot reach 95 % (min..max covers 93.75 %)
    assert median_interval(x[:6]) == (1.0, 6.0)


def test_median_interval_covers_the_true_median_at_least_as_often_as_asked():
    rng = np.random.default_rng(0)
    hits = [lo <= 1.0 <= hi for lo, hi in (median_interval(rng.lognormal(0, 0.3, 200)) for _ in range(400))]
    assert np.mean(hits) >= 0.93  # >= 95 % in theory; 400 draws


def test_mean_interval_is_seeded_and_switches_to_normal_for_large_n():
    x = np.random.default_rng(1).gamma(3.0, 1.0, 500)
    a, b = mean_interval(x), mean_interval(x)
    assert a == b and a[0] < x.mean() < a[1]
    big = np.random.default_rng(2).gamma(3.0, 1.0, BOOT_MAX_N + 1)
    lo, hi = mean_interval(big)
    half = 1.959964 * big.std(ddof=1) / np.sqrt(big.size)
    assert lo == pytest.approx(big.mean() - half) and hi == pytest.approx(big.mean() + half)


def test_t_quantile_and_across_repeats():
    for df, ref in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(ref, abs=2e-3)
    lo, hi = across_interval([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0) and (hi - lo) / 2 == pytest.approx(4.303 / np.sqrt(3), abs=1e-3)
    assert np.isnan(across_interval([1.0])).all()


def test_summarize_carries_the_intervals_fast_on_100k():
    x = np.random.default_rng(3).lognormal(0, 0.2, 100_000)
    t0 = time.perf_counter()
    s = summarize(x, confidence=0.9)
    assert time.perf_counter() - t0 < 0.5
    assert s.p50_ci_lo_ms < s.p50_ms < s.p50_ci_hi_ms and s.mean_ci_lo_ms < s.mean_ms < s.mean_ci_hi_ms
    wide = summarize(x, confidence=0.99)
    assert wide.p50_ci_hi_ms - wide.p50_ci_lo_ms > s.p50_ci_hi_ms - s.p50_ci_lo_ms
