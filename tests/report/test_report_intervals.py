"""The report's tables show each difference's interval and verdict (with why where the runs
cannot tell), and the gap figure its error bars (on the real H100 gap study)."""

from pathlib import Path

from trt_ray_bench import results
from trt_ray_bench.report import build_report

H100 = Path(__file__).resolve().parents[1] / "data" / "h100"


def test_report_tables_show_intervals_and_verdicts(tmp_path):
    out = build_report(H100 / "seed001_gap_study", tmp_path / "r.md", "md")
    text = Path(out).read_text()
    per_model = text[text.index("Per model"):]
    assert "p50 CI" in per_model
    assert "| verdict |" in per_model and "vs_baseline_p50 %" in per_model
    assert "not shown where it does not" in text  # the caption says what the words mean
    assert "Verdict —: one run each: run-to-run noise unknown" in per_model  # why its verdicts are —
    assert "bars: its interval" in text  # the gap figure's caption


def test_report_alone_vs_together_is_split_by_mps_with_intervals(tmp_path):
    r = results.load(H100 / "gpu_alone_together")
    t = results.alone_vs_together(r.runs, samples=r.samples)
    assert len(t) == 2 * r.runs["model"].nunique() and set(t["mps"]) == {False, True}
    # 500 inferences a side, +60 % to +800 %: but one run each, so untested
    assert set(t["verdict"]) == {"—"} and (t["increase_p50_pct"] > 50).all()
    out = build_report(H100 / "gpu_alone_together", tmp_path / "r.md", "md")
    assert "| verdict |" in Path(out).read_text()
