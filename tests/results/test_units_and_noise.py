"""What a table, a sentence or a diagnostic says must hold on noisy data: a pooled
condition's interval is across the processes that measured it (as the verdict counts
them), a sentence about one pair of repeats does not contradict the test over all of
them, and a drift or a short warm-up is claimed only where it exceeds the series' own
noise. Synthetic rows and series with fixed seeds: the rates below are exact for them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench import results
from trt_ray_bench.results.compare import condition_interval, pooled_stage
from trt_ray_bench.results.diagnose import _dependence_note, series_diagnostics
from trt_ray_bench.results.verdict import compare_rows


def _rows(values, run, iso="actor", model="m", phase="alone", col="p50_ms"):
    return pd.DataFrame([{"run_id": run, "model": model, "phase": phase, "repeat": r, "repeat_isolation": iso,
                          "status": "ok", "n": 100, col: v, "mean_ms": v} for r, v in enumerate(values)])


def test_a_pooled_conditions_point_and_interval_are_across_its_processes():
    # run a: three repeats in one process (actor) near 1 ms; run b: one process at 2 ms
    rows = pd.concat([_rows([1.0, 1.01, 0.99], "a"), _rows([2.0], "b")], ignore_index=True)
    point, lo, hi = condition_interval(rows, "p50_ms", 0.95)
    assert point == pytest.approx(np.sqrt(1.0 * 2.0), rel=1e-3)  # two units, not four rows (1.19)
    assert lo < 0.2 and hi > 10  # two processes 2x apart: t with 1 degree of freedom says how little is known
    # one process, several repeats: that process's own p50, its interval across its repeats
    point, lo, hi = condition_interval(_rows([1.0, 1.01, 0.99], "a"), "p50_ms", 0.95)
    assert lo < point < hi and hi / lo < 1.1
    # rows of frames concatenated without a new index (repeated labels) pool the same
    three = pd.concat([_rows([1.0], r, iso="process") for r in "abc"]).assign(p50_ms=[1.0, 2.0, 1.5])
    assert list(three.index) == [0, 0, 0]
    assert condition_interval(three, "p50_ms", 0.95) == condition_interval(three.reset_index(drop=True), "p50_ms",
                                                                          0.95)
    # the stages of pooled rows are pooled as their p50 is, so they do not add up to more than it
    stage = _rows([1.0, 3.0], "a", iso="process", col="infer_p50_ms")
    assert pooled_stage(stage, "infer_p50_ms") == pytest.approx(np.sqrt(3.0))  # the mean would be 2.0


def test_a_sentence_about_one_repeat_does_not_contradict_the_test_over_all():
    rng = np.random.default_rng(4)
    rows = []
    for r in range(5):
        level = float(np.exp(rng.normal(0, 0.05)))
        slow = 1.0 if r == 0 else 1.2  # repeat 0 happens to show no change
        rows += [{"run_id": "x", "model": "m", "phase": "alone", "repeat": r, "repeat_isolation": "process",
                  "status": "ok", "n": 200, "p50_ms": level},
                 {"run_id": "x", "model": "m", "phase": "together", "repeat": r, "repeat_isolation": "process",
                  "status": "ok", "n": 200, "p50_ms": level * slow}]
    lines = results.explain(pd.DataFrame(rows), None, "phase")
    assert len(lines) == 5
    assert lines[0].startswith("m together vs alone, repeat 0: p50 +0.0 % here (")  # not "barely differs"
    assert all("; over all its runs, slower at 95 % over 5 pairs of runs" in x for x in lines)
    assert not any("barely differs" in x for x in lines)


def test_the_reason_for_no_verdict_counts_each_sides_runs():
    a = _rows([1.0], "a", iso="process")
    b = pd.concat([_rows([1.0], f"b{i}", iso="process") for i in range(5)], ignore_index=True)
    v = compare_rows(a, b, "p50_ms")
    assert v.verdict == "—" and v.why.startswith("1 run against 5: a side needs 2 or more")


def _flagged(code: str, n: int, sigma: float, trials: int = 300) -> float:
    rng = np.random.default_rng(11)
    hits = sum(any(d["code"] == code for d in series_diagnostics(np.exp(rng.normal(0, sigma, n))))
               for _ in range(trials))
    return hits / trials


def test_drift_and_a_short_warmup_are_not_claimed_on_noise_alone():
    # independent inferences, cv 20-30 %: a 10 % split between halves happened in one short row of
    # three to six before the halves had to differ beyond their own noise
    assert _flagged("drift", 50, 0.3) <= 0.02 and _flagged("drift", 20, 0.2) <= 0.02
    assert _flagged("warmup_short", 50, 0.1) <= 0.02
    # a real drift and a real warm-up still are
    rng = np.random.default_rng(2)
    x = np.exp(rng.normal(0, 0.05, 200)) * np.r_[np.ones(100), np.full(100, 1.3)]
    assert [d["code"] for d in series_diagnostics(x)] == ["drift"]
    y = np.exp(rng.normal(0, 0.05, 200)) * np.r_[np.full(20, 1.5), np.ones(180)]
    assert "warmup_short" in [d["code"] for d in series_diagnostics(y)]


def test_a_slow_wander_the_intervals_do_not_cover_is_said():
    said = _dependence_note(2000, 800.0, 0.06, 2.9, True)
    assert "not for a slower wander" in said and "may be up to 1.8x too narrow" in said
    assert "the intervals account for it" in _dependence_note(2000, 800.0, 0.06, 1.6, True)
    assert _dependence_note(2000, 1900.0, 0.01, 1.2, True) == ""  # neither
    assert "not for a slower wander" in _dependence_note(2000, 1900.0, 0.01, 2.0, True)  # wander alone
