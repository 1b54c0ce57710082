"""Issue 14: ``trb compare --by gap`` names the cause of seed 001's slowdown from the
variants that restore the back-to-back latency (synthetic runs tables: each cause)."""

import numpy as np
import pandas as pd
import pytest

from trt_ray_bench.results.attribution import attribute

B2B, SLOW = 0.30, 0.56


def _rows(spin=SLOW, poke=SLOW, dummy=SLOW, clocks_max=SLOW, ci=0.01):
    """One run per clock mode, as the sweep writes; GPU p50 and its interval per row."""
    rows = []
    for run, clocks, variants in (
        ("20260101-000000-aaaaaa", "default", [(0, "sleep", "none", B2B), (0.02, "sleep", "none", SLOW),
                                               (0.02, "spin", "none", spin), (0.02, "sleep", "poke", poke),
                                               (0.02, "sleep", "dummy", dummy)]),
        ("20260101-000100-bbbbbb", "max", [(0, "sleep", "none", B2B), (0.02, "sleep", "none", clocks_max)]),
    ):
        for gap, mode, pre, p50 in variants:
            rows.append({"run_id": run, "status": "ok", "model": f"{mode}-{pre}-{gap}", "clocks_mode": clocks,
                         "gap_s": gap, "gap_mode": mode, "prewarm": pre, "gpu_p50_ms": p50, "p50_ms": p50 + 0.1,
                         "gpu_p50_ci_lo_ms": p50 - ci, "gpu_p50_ci_hi_ms": p50 + ci, "confidence": 0.95})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("kw, cause", [
    ({"spin": 0.301}, "host wake-up"),
    ({"clocks_max": 0.30}, "clocks"),
    ({"poke": 0.31, "dummy": 0.30}, "GPU power state"),
    ({"poke": 0.53, "dummy": 0.31}, "engine cold state"),  # seed 001 on the H200: poke ~10 %, dummy all
])
def test_each_cause_is_recognised(kw, cause):
    table, sentence = attribute(_rows(**kw))
    assert sentence.startswith(f"cause: {cause} (")
    restoring = table[table["restores"] == "yes"]["cause if it restores"].tolist()
    assert restoring[0] == cause


def test_no_variant_restoring_and_no_slowdown_are_said():
    _, sentence = attribute(_rows(poke=0.50, dummy=0.45))
    assert sentence.startswith("cause not found")
    flat = _rows(spin=0.30)
    flat.loc[flat["gpu_p50_ms"] == SLOW, ["gpu_p50_ms", "gpu_p50_ci_lo_ms", "gpu_p50_ci_hi_ms"]] = [0.301, 0.29, 0.31]
    _, sentence = attribute(flat)
    assert sentence.startswith("no slowdown after the gap")


def test_partial_recovery_is_measured_not_called_a_restore():
    table, _ = attribute(_rows(poke=0.53, dummy=0.31))
    poke = table.set_index("variant").loc["gap + poke"]
    assert poke["restores"] == "no" and poke["recovered_pct"] == pytest.approx((SLOW - 0.53) / (SLOW - B2B) * 100)


def test_without_intervals_the_plain_rule_decides():
    runs = _rows(spin=0.305).drop(columns=["gpu_p50_ci_lo_ms", "gpu_p50_ci_hi_ms"])
    _, sentence = attribute(runs)
    assert sentence.startswith("cause: host wake-up")


def test_an_earlier_study_in_the_same_folder_is_left_out():
    old = _rows(spin=0.30).assign(run_id=lambda d: d["run_id"].str.replace("2026", "2025"))
    _, sentence = attribute(pd.concat([old, _rows(poke=0.53, dummy=0.31)], ignore_index=True))
    assert sentence.startswith("cause: engine cold state")
    assert np.isfinite(attribute(_rows())[0]["gpu_p50_ms"].iloc[0])
