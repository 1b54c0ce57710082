"""Significance in comparisons: controlled synthetic runs (a real 5 % shift is flagged,
no shift is not, and the false-positive rate over many seeds), repeats judged by their
spread, conditions never averaged together, repeats pooled (not percentiles averaged),
and ``trb compare`` showing each Δ with its interval and ``significant``.

Measured false-positive rate of the rule (two 95 % order-statistic intervals of the
median, "significant" when they do not overlap), 400 seeds of two lognormal rows of
2000 samples each, no shift: 0.25 % (1 of 400; the normal theory of two disjoint equal
95 % intervals gives 0.56 %); the same 5 % shift: flagged in 400 of 400 seeds.
"""

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench import results
from trt_ray_bench.results.compare import difference_interval, significance
from trt_ray_bench.timing._stats import median_interval, summarize

SEEDS = 400


def _latency(rng, n, median=1.0, sigma=0.15):
    """Lognormal-ish host latencies in ms: a body plus a 2 % slow tail."""
    x = median * rng.lognormal(0.0, sigma, n)
    slow = rng.random(n) < 0.02
    x[slow] *= 1.0 + rng.exponential(2.0, slow.sum())
    return x


def _row(x, model="m", phase="alone", repeat=0, run_id="r", **extra):
    s = summarize(x).as_dict()
    return {"run_id": run_id, "experiment": "e", "model": model, "phase": phase, "repeat": repeat, "mode": "inference",
            "status": "ok", "batch": 1, "confidence": 0.95, **s, **extra}


def _samples(x, model="m", phase="alone", repeat=0, run_id="r"):
    return pd.DataFrame({"run_id": run_id, "model": model, "phase": phase, "repeat": repeat, "mode": "inference",
                         "warmup": False, "in_window": True, "host_ms": x, "gpu_ms": np.nan})


def test_rule_helpers():
    assert significance(1.0, 2.0, 2.5, 3.0) == "yes"
    assert significance(1.0, 2.0, 1.9, 3.0) == "no"
    assert significance(1.0, np.nan, 2.5, 3.0) == "—" and significance(None, 2.0, 2.5, 3.0) == "—"
    assert difference_interval(1.0, 2.0, 2.5, 3.0) == (0.5, 2.0)
    lo, hi = difference_interval(1.0, 2.0, 1.9, 3.0, relative=True)
    assert lo == pytest.approx(-5.0) and hi == pytest.approx(200.0)  # contains 0: within noise


def test_a_5_percent_shift_is_flagged_no_shift_is_not_and_the_false_positive_rate():
    fp = tp = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        a, same, shifted = _latency(rng, 2000), _latency(rng, 2000), _latency(rng, 2000, median=1.05)
        ia, isame, ishift = median_interval(a), median_interval(same), median_interval(shifted)
        fp += significance(*ia, *isame) == "yes"
        tp += significance(*ia, *ishift) == "yes"
    rate = fp / SEEDS
    print(f"false-positive rate {rate:.2%} ({fp} of {SEEDS}), 5 % shift flagged in {tp} of {SEEDS}")
    assert rate <= 0.02 and tp / SEEDS >= 0.95


def test_through_the_table_the_shift_is_significant_and_equal_rows_are_not():
    rng = np.random.default_rng(7)
    a, b, c = _latency(rng, 2000), _latency(rng, 2000, median=1.05), _latency(rng, 2000)
    shifted = results.alone_vs_together(pd.DataFrame([_row(a), _row(b, phase="together")]))
    assert shifted.loc[0, "significant"] == "yes"
    assert 0 < shifted.loc[0, "increase_p50_lo_pct"] < 5 < shifted.loc[0, "increase_p50_hi_pct"]
    same = results.alone_vs_together(pd.DataFrame([_row(a), _row(c, phase="together")]))
    assert same.loc[0, "significant"] == "no"
    assert same.loc[0, "increase_p50_lo_pct"] < 0 < same.loc[0, "increase_p50_hi_pct"]
    md = results.render(shifted)
    assert "| significant |" in md and "[+" in md


def test_repeats_are_judged_by_their_spread_not_by_each_rows_interval():
    """Seed 002's trap: every row's own interval is narrow, the runs differ by 20 %.
    With three repeats of each side the difference of one pair is within noise."""
    rng = np.random.default_rng(3)
    rows = []
    for rep, (ma, mt) in enumerate(((1.0, 1.2), (1.2, 1.0), (1.1, 1.15))):
        rows += [_row(_latency(rng, 3000, ma), repeat=rep), _row(_latency(rng, 3000, mt), phase="together", repeat=rep)]
    runs = pd.DataFrame(rows)
    one = results.alone_vs_together(runs[runs.repeat == 0])
    assert one.loc[0, "significant"] == "yes"  # one repeat each: "+20 %", beyond its rows' noise
    every = results.alone_vs_together(runs)
    assert every.loc[0, "significant"] == "no"


def test_conditions_are_never_averaged_together():
    """``--all`` over an MPS-off and an MPS-on run: two rows, not one average (the review's finding)."""
    rng = np.random.default_rng(1)
    rows = []
    for mps, (ma, mt) in ((False, (1.0, 4.0)), (True, (1.0, 2.0))):
        rid = f"r{int(mps)}"
        rows += [_row(_latency(rng, 500, ma), run_id=rid, mps=mps),
                 _row(_latency(rng, 500, mt), phase="together", run_id=rid, mps=mps)]
    t = results.alone_vs_together(pd.DataFrame(rows))
    assert list(t["mps"]) == [False, True]
    assert t.loc[0, "together_p50_ms"] == pytest.approx(4.0, rel=0.05)
    assert t.loc[1, "together_p50_ms"] == pytest.approx(2.0, rel=0.05)


def test_repeats_are_pooled_not_their_percentiles_averaged():
    """A 100-inference repeat at 1 ms and a 300-inference one at 3 ms: 400 inferences whose
    median and p99 are 3 ms and mean 2.5 ms (the old table said 2, 2 and 2)."""
    a0, a1 = np.full(100, 1.0), np.full(300, 3.0)
    t0, t1 = np.full(100, 5.0), np.full(300, 5.0)
    runs = pd.DataFrame([_row(a0), _row(a1, repeat=1), _row(t0, phase="together"), _row(t1, phase="together", repeat=1)])
    samples = pd.concat([_samples(a0), _samples(a1, repeat=1), _samples(t0, phase="together"),
                         _samples(t1, phase="together", repeat=1)], ignore_index=True)
    t = results.alone_vs_together(runs, samples=samples).iloc[0]
    assert t["alone_p50_ms"] == 3.0 and t["alone_p99_ms"] == 3.0 and t["alone_mean_ms"] == 2.5
    assert t["alone_n"] == 400
    # without the samples: weighted by n (the mean is then exact)
    assert results.alone_vs_together(runs).iloc[0]["alone_mean_ms"] == pytest.approx(2.5)
    v = results.versus(runs.assign(model=["a", "a", "b", "b"], phase="alone"), "a",
                       samples=samples.assign(model=np.where(samples.phase == "alone", "a", "b"), phase="alone"))
    v = v.set_index("model")
    assert v.loc["a", "p50_ms"] == 3.0 and v.loc["a", "n"] == 400
    # a's two repeats (1 and 3 ms) disagree so much that b's 5 ms is within their noise
    assert v.loc["b", "significant"] == "no" and v.loc["a", "p50_lo_ms"] < 0


def test_by_mode_and_stages_carry_intervals_and_significance():
    rng = np.random.default_rng(5)
    rows = [_row(_latency(rng, 2000, 1.0)),
            _row(_latency(rng, 2000, 1.5), mode="validation", pre_p50_ms=0.2, infer_p50_ms=1.0),
            _row(_latency(rng, 2000, 1.52), mode="without_val", pre_p50_ms=0.2, infer_p50_ms=1.0)]
    runs = pd.DataFrame(rows)
    runs.loc[0, "mode"] = "inference"
    t = results.by_mode(runs, stat="p50_ms").iloc[0]
    assert t["validation_alone_significant"] == "yes"
    assert t["validation_alone_vs_inference_lo_pct"] < 50 < t["validation_alone_vs_inference_hi_pct"]
    st = results.stages(runs).set_index("mode")
    assert st.loc["validation", "significant"] == "—" and st.loc["without_val", "significant"] == "no"


def test_trb_compare_shows_intervals_and_significance(tmp_path, trb):
    rng = np.random.default_rng(11)
    a, b = _latency(rng, 1000), _latency(rng, 1000, 1.3)
    runs = pd.DataFrame([_row(a, warnings=[]), _row(b, phase="together", warnings=[])])
    samples = pd.concat([_samples(a), _samples(b, phase="together")], ignore_index=True)
    samples = samples.assign(iteration=np.arange(len(samples)), t_start_ns=np.arange(len(samples)) * 10,
                             t_end_ns=np.arange(len(samples)) * 10 + 5)
    results.write_run(tmp_path / "e" / "r", {"runs": runs, "samples": samples}, "name: e\n")
    code, out, _ = trb("compare", tmp_path / "e")
    assert code == 0
    assert "significant: yes when the two sides' intervals do not overlap" in out
    line = next(x for x in out.splitlines() if x.startswith("| m |"))
    assert "| yes |" in line and "[+" in line
