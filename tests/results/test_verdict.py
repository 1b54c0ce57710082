"""Verdicts between conditions, decided on runs: one run a side is untested ("—", with
what would decide it), false positives under run-to-run noise stay at the test's level,
real shifts are found, the paired test where the same processes measured both sides,
pooled rows whose point is what their interval is about, percentiles never averaged, fps
from the pooled span, conditions (settings, software, backend options) never pooled
together, and ``trb compare`` printing the verdict with its reason.

Every series here is synthetic with a known truth; the rates quoted in the docs come
from benchmarks/stat_validity.py (thousands of trials); these use a few hundred."""

import json

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench import results
from trt_ray_bench.results.verdict import compare_rows, compare_units, unit_keys
from trt_ray_bench.timing._stats import summarize


def _latency(rng, n, median=1.0, sigma=0.15):
    """Lognormal-ish host latencies in ms: a body plus a 2 % slow tail."""
    x = median * rng.lognormal(0.0, sigma, n)
    slow = rng.random(n) < 0.02
    x[slow] *= 1.0 + rng.exponential(2.0, slow.sum())
    return x


def _row(x, model="m", phase="alone", repeat=0, run_id="r", iso="process", **extra):
    s = summarize(x).as_dict()
    return {"run_id": run_id, "experiment": "e", "model": model, "phase": phase, "repeat": repeat, "mode": "inference",
            "status": "ok", "batch": 1, "confidence": 0.95, "repeat_isolation": iso, **s, **extra}


def _condition(rng, k, median, spread, model, run="r", n=300, phase="alone"):
    """k process-isolated repeats of one condition, each process's level off by a lognormal
    factor of sd ``spread`` (run-to-run noise), each with n inferences."""
    return [_row(_latency(rng, n, median * np.exp(rng.normal(0, spread))), model=model, repeat=r, run_id=run,
                 phase=phase) for r in range(k)]


def _samples(x, model="m", phase="alone", repeat=0, run_id="r"):
    return pd.DataFrame({"run_id": run_id, "model": model, "phase": phase, "repeat": repeat, "mode": "inference",
                         "warmup": False, "in_window": True, "host_ms": x, "gpu_ms": np.nan})


def test_one_run_a_side_is_untested_never_yes_or_no():
    """The case a new user met: two identical models, one run each, 2 % apart by chance."""
    rng = np.random.default_rng(0)
    a, b = _row(_latency(rng, 300), model="a"), _row(_latency(rng, 300, 1.022), model="b")
    v = compare_rows(pd.DataFrame([a]), pd.DataFrame([b]))
    assert v.verdict == "—" and np.isnan(v.lo) and "one run each" in v.why and "repeat_isolation: process" in v.why
    t = results.versus(pd.DataFrame([a, b]), "a").set_index("model")
    assert t.loc["b", "verdict"] == "—" and np.isnan(t.loc["b", "vs_baseline_p50_lo_pct"])
    assert t.loc["b", "vs_baseline_p50_pct"] == pytest.approx((b["p50_ms"] / a["p50_ms"] - 1) * 100)


def test_repeats_in_one_process_are_one_unit_of_evidence():
    rng = np.random.default_rng(1)
    rows = [_row(_latency(rng, 300), model="a", repeat=r, iso="actor") for r in range(3)]
    rows += [_row(_latency(rng, 300, 1.1), model="b", repeat=r, iso="actor") for r in range(3)]
    runs = pd.DataFrame(rows)
    assert unit_keys(runs).nunique() == 2  # one process per model
    v = compare_rows(runs[runs.model == "a"], runs[runs.model == "b"])
    assert v.verdict == "—" and "ran in one process" in v.why


@pytest.mark.parametrize("k, spread", [(3, 0.10), (5, 0.22), (5, 0.05)])
def test_false_positives_under_run_to_run_noise_stay_at_the_level(k, spread):
    """Two models, same truth, k process-isolated runs each whose level moves by ``spread``
    between processes: 'slower'/'faster' in at most ~5 % of 300 trials (the overlap rule said
    'significant' in 84-95 % with one run each)."""
    rng = np.random.default_rng(int(k * 100 + spread * 100))
    shown = 0
    for _ in range(300):
        runs = pd.DataFrame(_condition(rng, k, 1.0, spread, "a") + _condition(rng, k, 1.0, spread, "b"))
        shown += compare_rows(runs[runs.model == "a"], runs[runs.model == "b"]).shown
    assert shown / 300 <= 0.08


def test_a_real_shift_is_found_and_said_in_words():
    rng = np.random.default_rng(2)
    found = 0
    for _ in range(100):
        runs = pd.DataFrame(_condition(rng, 5, 1.0, 0.05, "a") + _condition(rng, 5, 1.2, 0.05, "b"))
        v = compare_rows(runs[runs.model == "a"], runs[runs.model == "b"])
        found += v.verdict == "slower"
        assert v.verdict in ("slower", "not shown")  # never "faster" for a 20 % slowdown
    assert found >= 90
    v = compare_rows(runs[runs.model == "b"], runs[runs.model == "a"])
    assert v.verdict in ("faster", "not shown")


def test_not_shown_says_what_could_have_been():
    rng = np.random.default_rng(3)
    runs = pd.DataFrame(_condition(rng, 3, 1.0, 0.2, "a") + _condition(rng, 3, 1.02, 0.2, "b"))
    v = compare_rows(runs[runs.model == "a"], runs[runs.model == "b"])
    assert v.verdict == "not shown" and v.lo < 1 < v.hi
    assert v.detectable > v.hi  # what 80 % power needs is beyond the interval's reach
    assert "Welch" in v.why and not v.paired


def test_the_same_processes_measuring_both_sides_are_paired():
    """Alone vs together of one model, 4 process-isolated repeats: each process's level is
    off by 20 % (shared by its two phases), together is 5 % slower in every process. Paired,
    the 5 % is shown; the processes' noise cancels."""
    rng = np.random.default_rng(4)
    rows = []
    for r in range(4):
        level = np.exp(rng.normal(0, 0.2))
        rows += [_row(_latency(rng, 2000, level), repeat=r), _row(_latency(rng, 2000, 1.05 * level), repeat=r,
                                                                   phase="together")]
    runs = pd.DataFrame(rows)
    v = compare_rows(runs[runs.phase == "alone"], runs[runs.phase == "together"])
    assert v.paired and v.verdict == "slower" and v.lo > 1.0 and v.ratio == pytest.approx(1.05, abs=0.03)
    t = results.alone_vs_together(runs).iloc[0]
    assert t["verdict"] == "slower" and t["increase_p50_lo_pct"] > 0
    assert t["increase_p50_pct"] == pytest.approx((v.ratio - 1) * 100)
    unpaired = compare_units(pd.Series(runs[runs.phase == "alone"]["p50_ms"].to_numpy(), index=list("abcd")),
                             pd.Series(runs[runs.phase == "together"]["p50_ms"].to_numpy(), index=list("efgh")))
    assert not unpaired.paired and unpaired.verdict == "not shown"  # the same data, processes ignored


def test_a_pooled_point_is_what_its_interval_is_about():
    """4 repeats of 100 at 1.0 ms and one of 3000 at 1.2 ms: the pooled median of all
    inferences (1.198) lay outside the repeats' interval; the point is now the geometric
    mean of the repeats' p50s, inside its own interval."""
    rng = np.random.default_rng(5)
    rows = [_row(1.0 * rng.lognormal(0, 0.01, 100), repeat=r) for r in range(4)]
    rows.append(_row(1.2 * rng.lognormal(0, 0.01, 3000), repeat=4))
    g = results.pooled(pd.DataFrame(rows), ["model"]).iloc[0]
    assert g["p50_lo_ms"] < g["p50_ms"] < g["p50_hi_ms"]
    assert g["p50_ms"] == pytest.approx(np.exp(np.mean(np.log([r["p50_ms"] for r in rows]))))
    assert g["n"] == 3400 and g["k"] == 5


def test_a_pooled_miss_rate_is_the_point_of_its_interval():
    """Five repeats: four of 10 frames missing 10 %, one of 10 000 missing 20 %. All misses
    over all frames (0.1996) lay outside the t interval of the repeats' rates (0.065 to
    0.176); the point is the repeats' mean, inside it."""
    rng = np.random.default_rng(9)
    rows = [_row(rng.lognormal(0, 0.1, 10), repeat=r, deadline_miss=0.1, frames=10, p50_from_arrival_ms=1.0)
            for r in range(4)]
    rows.append(_row(rng.lognormal(0, 0.1, 10000), repeat=4, deadline_miss=0.2, frames=10000, p50_from_arrival_ms=1.0))
    g = results.pooled(pd.DataFrame(rows), ["model"]).iloc[0]
    assert g["deadline_miss"] == pytest.approx(0.12)
    assert g["deadline_miss_lo"] < g["deadline_miss"] < g["deadline_miss_hi"] < 0.19


def test_percentiles_are_never_averaged_and_fps_comes_from_the_pooled_span():
    """Rows at 1 ms and 3 ms: no p99 of their mixture or mean of their p99s, each run's p99
    beside; fps 500 (2 ms over all inferences), not 667 (the mean of 1000 and 333)."""
    a0, a1 = np.full(400, 1.0), np.full(400, 3.0)
    runs = pd.DataFrame([_row(a0), _row(a1, repeat=1)])
    g = results.pooled(runs, ["model"]).iloc[0]
    assert np.isnan(g["p99_ms"]) and g["p99_ms_repeats"] == [1.0, 3.0]
    assert g["fps"] == pytest.approx(500.0)
    t = results.alone_vs_together(pd.concat([runs, runs.assign(phase="together")], ignore_index=True))
    assert np.isnan(t.loc[0, "alone_p99_ms"]) and t.loc[0, "alone_p99_ms_repeats"] == [1.0, 3.0]
    assert "1.00 / 3.00ms" in results.render(t)


def test_real_h100_tree_pooled_with_all_gives_no_averaged_p99():
    r = results.load("tests/data/h100/seed002_inference_vs_validation")
    t = results.alone_vs_together(r.runs[r.runs["mode"] == "inference"])
    row = t[(t.model == "yolov8n")].iloc[0]
    assert np.isnan(row["alone_p99_ms"])  # it printed 4.00 ms: the mean of 1.373, 1.331 and 9.301
    assert sorted(round(v, 3) for v in row["alone_p99_ms_repeats"]) == [1.331, 1.373, 9.301]


def test_settings_that_change_latency_split_rows_named_by_their_field():
    rng = np.random.default_rng(6)
    base = dict(model="m")
    rows = [_row(_latency(rng, 300, 1.0), repeat=r, run_id="r1", cuda_graph=False, **base) for r in range(2)]
    rows += [_row(_latency(rng, 300, 0.6), repeat=r, run_id="r2", cuda_graph=True, **base) for r in range(2)]
    g = results.pooled(pd.DataFrame(rows), ["model"] + results.conditions_that_vary(pd.DataFrame(rows)))
    assert len(g) == 2 and set(g["cuda_graph"]) == {False, True}  # never one 0.78 ms row
    s1 = json.dumps({"timing": {"start_lead_s": 0.05, "gap_s": 0.0}})
    s2 = json.dumps({"timing": {"start_lead_s": 0.2, "gap_s": 0.0}})
    runs = pd.DataFrame([_row(_latency(rng, 300), run_id="r1", settings=s1),
                         _row(_latency(rng, 300), run_id="r2", settings=s2)])
    assert results.conditions_that_vary(runs) == ["settings"]
    v = results.versus(runs.assign(model="m"), "m")
    assert sorted(v["settings"]) == ["timing.start_lead_s=0.05", "timing.start_lead_s=0.2"]
    ver = pd.DataFrame([_row(_latency(rng, 300), run_id="r1", tensorrt_version="8.5.3.1"),
                        _row(_latency(rng, 300), run_id="r2", tensorrt_version="10.3.0")])
    assert "tensorrt_version" in results.conditions_that_vary(ver)


def test_by_mode_and_stages_carry_verdicts():
    rng = np.random.default_rng(7)
    rows = []
    for r in range(4):
        lvl = np.exp(rng.normal(0, 0.05))
        rows += [_row(_latency(rng, 2000, lvl), repeat=r),
                 _row(_latency(rng, 2000, 1.5 * lvl), mode="validation", repeat=r, pre_p50_ms=0.2, infer_p50_ms=1.0),
                 _row(_latency(rng, 2000, 1.52 * lvl), mode="without_val", repeat=r, pre_p50_ms=0.2,
                      infer_p50_ms=1.0)]
    runs = pd.DataFrame(rows)
    t = results.by_mode(runs, stat="p50_ms").iloc[0]
    assert t["validation_alone_verdict"] == "slower"
    assert t["validation_alone_vs_inference_lo_pct"] < 50 < t["validation_alone_vs_inference_hi_pct"]
    st = results.stages(runs).set_index("mode")
    # the first row is the baseline; the same processes measured both modes: paired, so
    # even without_val's 1.3 % over validation is resolved
    assert st.loc["validation", "verdict"] == "—" and st.loc["without_val", "verdict"] == "slower"
    assert st.loc["without_val", "vs_first_p50_pct"] == pytest.approx(1.3, abs=0.8)


def test_trb_compare_prints_the_verdict_and_why(tmp_path, trb):
    rng = np.random.default_rng(11)
    a, b = _latency(rng, 1000), _latency(rng, 1000, 1.3)
    runs = pd.DataFrame([_row(a, warnings=[]), _row(b, phase="together", warnings=[])])
    samples = pd.concat([_samples(a), _samples(b, phase="together")], ignore_index=True)
    samples = samples.assign(iteration=np.arange(len(samples)), t_start_ns=np.arange(len(samples)) * 10,
                             t_end_ns=np.arange(len(samples)) * 10 + 5)
    results.write_run(tmp_path / "e" / "r", {"runs": runs, "samples": samples}, "name: e\n")
    code, out, _ = trb("compare", tmp_path / "e")
    assert code == 0
    assert "verdict: slower / faster when the interval excludes 0" in out
    line = next(x for x in out.splitlines() if x.startswith("| m |"))
    assert "| — |" in line
    assert "verdict —: one run each: run-to-run noise unknown; set repeats: 3 or more" in out
