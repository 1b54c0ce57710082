"""The report's figures drawn from the samples read a row at a time (``report.digest``):
box plots from the values where they are few, from histograms close enough to them where
they are many; a timeline of more inferences than it can draw from per-pixel-column
fastest / median / slowest; the same figures and captions either way. The thresholds are
lowered so that the real H100 trees take the large runs' path."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import cbook

from trt_ray_bench import results
from trt_ray_bench.report import build_report, digest, figures
from trt_ray_bench.report.data import ReportData

H100 = Path(__file__).resolve().parents[1] / "data" / "h100"


def test_a_box_from_its_histogram_is_the_box_of_its_values():
    rng = np.random.default_rng(20)
    x = np.concatenate([rng.lognormal(0.0, 0.25, 300_000), rng.lognormal(1.5, 0.1, 500)])  # slow outliers
    exact, binned = digest.Box(), digest.Box()
    for part in np.array_split(x, 7):  # a row at a time
        exact.add(part)
        binned.add(part)
    binned.to_histogram()
    want, got = cbook.boxplot_stats(x)[0], binned.stats()
    assert exact.stats()["med"] == want["med"] and len(exact.values()) == len(x)
    for k in ("med", "q1", "q3", "whislo", "whishi", "mean"):
        assert got[k] == pytest.approx(want[k], rel=2.5e-3), k
    # one dot per bin of outliers: as many as there are bins holding one, each near one
    assert 0 < len(got["fliers"]) <= len(want["fliers"])
    assert got["fliers"].max() == want["fliers"].max() and got["fliers"].min() == pytest.approx(want["fliers"].min(), rel=2.5e-3)
    near = np.abs(np.log10(got["fliers"][:, None]) - np.log10(np.sort(want["fliers"])[None, :])).min(axis=1)
    assert near.max() < 1.0 / digest.PER_DECADE


def test_pixel_columns_hold_the_fastest_median_and_slowest():
    rng = np.random.default_rng(3)
    t = np.sort(rng.integers(0, 10**9, 50_000))
    y = rng.lognormal(0, 0.3, len(t))
    a = digest._aggregate(t, y, 0, 10**9 - 1, 200)
    col = (t * 200) // 10**9
    g = pd.Series(y).groupby(col)
    assert np.allclose(a.lo, g.min()) and np.allclose(a.hi, g.max()) and np.allclose(a.med, g.median())
    assert np.allclose(a.t, (np.asarray(g.min().index) + 0.5) * 10**9 / 200)


def _figures(out: Path):
    return sorted(p.name for p in out.parent.glob(f"{out.stem}_figures/*.png"))


def test_large_runs_draw_the_same_figures_from_aggregates(tmp_path, monkeypatch):
    """The gap study's runs (600 inferences each) drawn as a run of millions would be:
    timelines per pixel column, boxes from histograms; the same figures, captions that say
    how they were drawn, the same tables."""
    tree = H100 / "seed001_gap_study"
    small = build_report(tree, tmp_path / "small.md")
    monkeypatch.setattr(digest, "MAX_POINTS", 100)  # every run larger than a figure draws
    monkeypatch.setattr(digest, "COLUMNS", 50)  # rows of 120 inferences: more than a column each
    monkeypatch.setattr(digest, "EXACT_MAX", 1000)  # histograms of the largest boxes
    large = build_report(tree, tmp_path / "large.md")
    assert _figures(small) == _figures(large) and len(_figures(large)) >= 4
    a, b = small.read_text(), large.read_text()
    assert a.split("## Figures")[0] == b.split("## Figures")[0].replace("large_figures", "small_figures")
    assert "Every" not in b and b.count("per pixel column of the time axis (50 over the run)") == 2
    assert "drawn from a histogram of their values" in b and "histogram" not in a

    d = ReportData.from_results(results.load(tree))
    dg = d.digest
    assert [line.exact for line in dg.lines] == [False, False]
    line = dg.lines[0]
    assert len(line.columns) == 5 * 2 and not line.points  # five rows, warm-up and measured apart
    # every inference lies within its column's range, and each column's median is one of its own
    s = results.load(tree).only(line.run_id).samples
    for (label, warm), agg in line.columns.items():
        rows = s[(s.model == d.runs.at[label, "model"]) & (s.warmup == warm)]
        assert agg.lo.min() == rows.host_ms.min() and agg.hi.max() == rows.host_ms.max()
        assert ((agg.lo <= agg.med) & (agg.med <= agg.hi)).all()
    boxes = dg.boxes["host_ms"]
    assert any(not b.exact for b in boxes.values()) and sum(b.n for b in boxes.values()) == int(
        d.runs.loc[d.runs.status == "ok", "n"].sum())


def test_the_figures_read_the_samples_once_a_row_at_a_time(monkeypatch):
    """One pass over the rows for every figure, only the columns drawn."""
    r = results.load(H100 / "gpu_alone_together")
    seen = []
    real = type(r).iter_samples

    def watched(self, columns=None, rows=None):
        seen.append(list(columns))
        return real(self, columns, rows)

    monkeypatch.setattr(type(r), "iter_samples", watched)
    d = ReportData.from_results(r)
    names = [f.name for make in figures.FIGURES for f in make(d)]
    assert seen == [list(digest.COLUMNS_READ)]
    assert names[:4] == ["latency-host", "latency-gpu", "timeline-20261123-153144-7e7b0b",
                         "timeline-20261123-153638-148345"]
    assert "samples" not in r.__dict__ or not isinstance(r.__dict__["samples"], pd.DataFrame)  # never read whole


def test_diagnostics_of_results_not_filled_are_computed_row_by_row():
    """A report of results loaded without completing them (``fill=False``) diagnoses each
    row from its own samples, as ``results.diagnose`` does over the whole tables."""
    from trt_ray_bench.report.content import _diagnostics

    r = results.load(H100 / "gpu_alone_together", fill=False)
    d = ReportData.from_results(r)
    got = _diagnostics(d)
    assert got.equals(results.diagnose(d.runs, r.samples, d.telemetry)) and got.map(len).sum() > 0
