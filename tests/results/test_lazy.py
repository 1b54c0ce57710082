"""What ``results.load`` leaves on disk and how it reads it back (issue 20): the samples
and telemetry are read only when asked for (a file removed after the load is named only
then), a row and the columns asked for at a time (the reads Arrow is asked for are
watched), the same values as the whole table; trees written before today's statistics
and diagnostics are completed row by row, to the values the whole-table functions give.
Every tree here is real: tests/data (format 1 and 2) or written by ``write_run``."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from trt_ray_bench import results
from trt_ray_bench.errors import UserError
from trt_ray_bench.results import diagnose, scan, with_row_stats
from trt_ray_bench.results._keys import row_keys
from trt_ray_bench.results.compare import stats_todo

DATA = Path(__file__).resolve().parents[1] / "data"
H100 = DATA / "h100"
V2 = DATA / "format2" / "format2_cpu"
CPU = DATA / "cpu" / "cpu_sweep"


class Reads:
    """Every Parquet read of a file named ``name`` (``pq.read_table`` and
    ``ParquetFile.iter_batches``, the two ways this code reads data): (file, columns)."""

    def __init__(self, monkeypatch, name="samples.parquet"):
        self.calls = []
        real_table, real_batches, real_init = pq.read_table, pq.ParquetFile.iter_batches, pq.ParquetFile.__init__

        def read_table(source, *a, columns=None, **kw):
            if Path(str(source)).name == name:
                self.calls.append((Path(str(source)), None if columns is None else list(columns)))
            return real_table(source, *a, columns=columns, **kw)

        def init(pf, source, *a, **kw):
            real_init(pf, source, *a, **kw)
            pf.watched_path = str(source)

        def iter_batches(pf, *a, columns=None, **kw):
            if Path(getattr(pf, "watched_path", "")).name == name:
                self.calls.append((Path(pf.watched_path), None if columns is None else list(columns)))
            return real_batches(pf, *a, columns=columns, **kw)

        monkeypatch.setattr(pq, "read_table", read_table)
        monkeypatch.setattr(pq.ParquetFile, "__init__", init)
        monkeypatch.setattr(pq.ParquetFile, "iter_batches", iter_batches)

    def columns(self) -> set:
        return {c for _, cols in self.calls for c in (cols or ["*"])}


@pytest.fixture
def v2(tmp_path):
    """A copy of the format 2 tree (a complete run and an interrupted one), to damage."""
    shutil.copytree(V2, tmp_path / "format2_cpu")
    return tmp_path / "format2_cpu"


def test_load_reads_no_sample_until_asked_and_names_a_file_gone_since(v2, monkeypatch):
    reads = Reads(monkeypatch)
    r = results.load(v2)
    assert reads.calls == [] and len(r.runs) == 16  # rows carry their statistics: nothing to read
    files = sorted(v2.rglob("samples.parquet"))
    files[0].rename(files[0].with_suffix(".moved"))
    assert len(r.runs) == 16 and r.run_ids  # the runs are there
    with pytest.raises(UserError) as err:
        r.samples
    assert str(err.value) == (f"{files[0]}: is not there any more: it was when the results were loaded "
                              f"(results.load); load them again")
    with pytest.raises(UserError, match="is not there any more"):
        r.n_samples
    files[0].with_suffix(".moved").rename(files[0])
    assert len(r.samples) == 826 + 405 and r.n_samples == 1231  # read now, then kept
    assert r.samples is r.samples
    # the telemetry too
    tel = sorted(v2.rglob("telemetry.parquet"))[1]
    r2 = results.load(v2)
    tel.unlink()
    assert len(r2.runs) == 16
    with pytest.raises(UserError, match=r"telemetry.parquet: is not there any more"):
        r2.telemetry


def test_only_and_latest_leave_the_files_unread(v2, monkeypatch):
    reads = Reads(monkeypatch)
    r = results.load(v2)
    one = r.latest()
    assert reads.calls == [] and one.run_ids == ["20261205-001019-3b90ef"]
    assert one.n_samples == 826 and len(one.samples) == 826 and set(one.samples.run_id) == set(one.run_ids)
    whole = pq.read_table(next(v2.glob("20261205-001019-3b90ef/samples.parquet"))).to_pandas()
    pd.testing.assert_frame_equal(one.samples, whole)
    # a Results of DataFrames (samples read already) gives the same rows
    assert len(r.only("20261205-001114-625820").telemetry) == len(r.telemetry[r.telemetry.run_id == "20261205-001114-625820"])


def test_iter_samples_reads_only_the_columns_asked_a_row_at_a_time(monkeypatch):
    reads = Reads(monkeypatch)
    monkeypatch.setattr(scan, "BATCH_ROWS", 300)  # rows spanning batches
    r = results.load(H100 / "gpu_alone_together", fill=False)
    assert reads.calls == []
    got = list(r.iter_samples(["host_ms", "in_window"]))
    keys = set(results.schema.SAMPLES.names[:6]) - {"variant"}  # the keys this format-1 tree has
    assert reads.columns() == keys | {"t_start_ns", "host_ms", "in_window"}  # keys and start: the index
    assert all(list(f.columns) == ["host_ms", "in_window"] for _, f in got)
    full = r.samples
    k = row_keys(full)
    assert len(got) == len(r.runs) == 20
    for label, f in got:
        want = full.loc[(k == row_keys(r.runs.loc[[label]]).iloc[0]).all(axis=1), ["host_ms", "in_window"]]
        pd.testing.assert_frame_equal(f, want.reset_index(drop=True))
    # samples_for: the rows asked for, the columns asked for
    alone = r.runs[r.runs.phase == "alone"]
    s = r.samples_for(alone, ["model", "phase", "gpu_ms"])
    assert list(s.columns) == ["model", "phase", "gpu_ms"] and set(s.phase) == {"alone"}
    assert len(s) == int((full.phase == "alone").sum())
    every = r.samples_for(columns=["run_id", "host_ms"])
    assert list(every.columns) == ["run_id", "host_ms"] and len(every) == len(full)


def test_row_group_per_phase_is_read_a_phase_at_a_time(tmp_path, monkeypatch):
    """A samples file written a phase at a time (a row group each): a row's samples are read
    from its phase's row group only."""
    src = next((H100 / "seed001_gap_study").iterdir()) / "samples.parquet"
    t = pq.read_table(src)
    d = tmp_path / "e" / "20261123-153718-02dd51"
    shutil.copytree(src.parent, d)
    pq.write_table(t, d / "samples.parquet", row_group_size=120)  # five rows of 120: a row group each
    r = results.load(d, fill=False)
    idx = scan.index_file(d / "samples.parquet")
    assert [s.groups for s in idx.spans.values()] == [[0], [1], [2], [3], [4]]
    seen = []
    real = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches",
                        lambda pf, *a, row_groups=None, **kw: seen.append(row_groups) or real(pf, *a, row_groups=row_groups, **kw))
    rows = r.runs[r.runs.model == "gap-0.05"]
    got = dict(r.iter_samples(["host_ms"], rows))
    assert seen == [[2]] and len(got[rows.index[0]]) == 120


def test_an_old_tree_is_filled_row_by_row_as_the_whole_tables_fill_it(monkeypatch):
    """Format 1 (no n_eff, no diagnostics): statistics and diagnostics computed again from
    each row's samples, a row and the columns needed at a time, equal those of the
    whole-table functions (as ``load`` computed them before it read a row at a time)."""
    raw = results.load(H100, fill=False)
    runs, samples, tel = raw.runs, raw.samples, raw.telemetry
    assert stats_todo(runs).all()
    old = runs["n_eff"].isna() if "n_eff" in runs.columns else pd.Series(True, index=runs.index)
    want = with_row_stats(runs, samples)
    if "diagnostics" in want.columns:
        want.loc[old, "diagnostics"] = None
    else:
        want["diagnostics"] = None
    todo = want["diagnostics"].isna()
    want.loc[todo, "diagnostics"] = diagnose(want[todo], samples, tel)
    got = results.load(H100).runs
    pd.testing.assert_frame_equal(got, want)
    assert got["n_eff"].notna().sum() > 0 and got["diagnostics"].map(len).sum() > 0

    from trt_ray_bench.results import lazy

    seen, sizes = [], []
    real = lazy.TableFiles.iter_rows

    def iter_rows(self, rows, columns):
        seen.append(list(columns))
        for label, f in real(self, rows, columns):
            sizes.append(len(f))
            yield label, f

    monkeypatch.setattr(lazy.TableFiles, "iter_rows", iter_rows)
    pd.testing.assert_frame_equal(results.load(H100, fill=False).filled().runs, got)
    quick = results.load(H100, fill=False).filled(diagnostics=False)  # trb compare: statistics only
    assert seen == [list(lazy.DIAGNOSE_COLUMNS), list(lazy.STATS_COLUMNS)]
    keys = row_keys(samples)
    per_row = keys.groupby(list(keys.columns)).size()
    assert max(sizes) == per_row.max()  # one row's samples at a time
    assert quick.runs["n_eff"].equals(got["n_eff"]) and quick.runs["p50_ci_lo_ms"].equals(got["p50_ci_lo_ms"])


def test_a_results_of_dataframes_reads_rows_from_memory():
    r = results.load(CPU)
    mem = results.Results(r.runs, r.samples, r.telemetry)
    assert mem.n_samples == r.n_samples == len(r.samples)
    a = {lb: f for lb, f in mem.iter_samples(["host_ms", "warmup"])}
    b = {lb: f for lb, f in r.iter_samples(["host_ms", "warmup"])}
    assert a.keys() == b.keys()
    for lb in a:
        pd.testing.assert_frame_equal(a[lb], b[lb])
    assert results.load(CPU, samples=False).n_samples == 0 and list(results.load(CPU, samples=False).iter_samples()) == []


def test_interleaved_rows_and_keys_missing_in_a_tree(tmp_path):
    """Rows whose samples are interleaved (not one after another) are still each given
    whole, in order; a row of a key the file lacks (no ``variant`` column) is matched."""
    rng = np.random.default_rng(1)
    n = 5000
    runs = pd.DataFrame({"run_id": "20260101-000000-aaaaaa", "experiment": "e", "model": ["a", "b"], "phase": "alone",
                         "repeat": 0, "status": "ok", "n": [n // 2, n // 2], "warnings": [[], []]})
    model = np.where(rng.random(n) < 0.5, "a", "b")
    samples = pd.DataFrame({"run_id": "20260101-000000-aaaaaa", "model": model, "phase": "alone", "repeat": 0,
                            "iteration": np.arange(n), "warmup": False, "in_window": True,
                            "t_start_ns": np.arange(n) * 1000, "t_end_ns": np.arange(n) * 1000 + 500,
                            "host_ms": rng.random(n)})
    d = results.write_run(tmp_path / "e" / "20260101-000000-aaaaaa", {"runs": runs, "samples": samples}, "name: e\n")
    r = results.load(d, fill=False)
    got = dict(r.iter_samples(["host_ms", "iteration"]))
    for lb, m in zip(r.runs.index, ("a", "b")):
        want = samples.loc[samples.model == m, ["host_ms", "iteration"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[lb], want, check_dtype=False)
    info = scan.index_file(d / "samples.parquet")
    assert {k[1]: s.n for k, s in info.spans.items()} == {"a": int((model == "a").sum()), "b": int((model == "b").sum())}


def test_runs_projected_to_the_columns_asked(monkeypatch):
    reads = Reads(monkeypatch, "runs.parquet")
    r = results.load(H100, columns=["model", "phase", "p50_ms"])
    assert list(r.runs.columns) == ["run_id", "model", "phase", "p50_ms"] and len(r.runs) == 150
    assert {tuple(c) for _, c in reads.calls} == {("run_id", "model", "phase", "p50_ms")}
    assert "n_eff" not in r.runs.columns  # nothing filled from a projection
