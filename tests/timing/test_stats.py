import math

import numpy as np
import pytest

from trt_ray_bench.timing import common_window, summarize


def test_summary_matches_numpy():
    x = np.random.default_rng(1).gamma(4.0, 2.0, size=1000)
    s = summarize(x, batch=2)
    assert s.n == 1000
    assert s.mean_ms == pytest.approx(x.mean())
    assert s.std_ms == pytest.approx(x.std(ddof=1))
    assert s.p50_ms == pytest.approx(np.median(x))
    assert s.p99_ms == pytest.approx(np.percentile(x, 99))
    assert s.min_ms == x.min() and s.max_ms == x.max()
    assert s.fps == pytest.approx(2 * 1000 / x.mean())
    assert s.cv == pytest.approx(x.std(ddof=1) / x.mean())
    assert s.min_ms <= s.p50_ms <= s.p90_ms <= s.p95_ms <= s.p99_ms <= s.max_ms


def test_empty_and_single():
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean_ms)
    one = summarize([2.0])
    assert one.n == 1 and one.std_ms == 0.0 and one.fps == 500.0


def test_common_window():
    a = ([100, 200, 300], [150, 250, 350])
    b = ([105, 400], [390, 800])
    assert common_window([a, b]) == (105, 350)  # from the latest first start (issue 14)
    assert common_window([a, ([], [])]) == (100, 350)
    assert common_window([([0], [10]), ([20], [30])]) is None
    assert common_window([]) is None
