"""Writing, loading and comparing real Parquet files."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from trt_ray_bench import results
from trt_ray_bench.errors import UserError
from trt_ray_bench.results.schema import RUNS, SAMPLES


def _runs(run_id, alone, together, model="m"):
    rows = []
    for phase, mean in (("alone", alone), ("together", together)):
        rows.append({"run_id": run_id, "experiment": "e", "model": model, "phase": phase, "repeat": 0,
                     "status": "ok", "n": 10, "mean_ms": mean, "p50_ms": mean, "p99_ms": 2 * mean, "warnings": []})
    return pd.DataFrame(rows)


def _samples(run_id):
    return pd.DataFrame({"run_id": run_id, "model": "m", "phase": "alone", "repeat": 0, "iteration": [0, 1, 2],
                         "warmup": [True, False, False], "in_window": [False, True, True],
                         "t_start_ns": [100, 200, 300], "t_end_ns": [150, 250, 350],
                         "host_ms": [5e-5] * 3, "enqueue_ms": [1e-5] * 3, "gpu_ms": [np.nan] * 3})


def _telemetry(run_id):
    return pd.DataFrame({"run_id": run_id, "t_ns": [90, 90, 190, 290], "source": "host",
                         "metric": ["cpu_util_pct", "ram_used_mib", "cpu_util_pct", "cpu_util_pct"],
                         "value": [10.0, 1000.0, 50.0, 90.0], "unit": ["%", "MiB", "%", "%"]})


def _write(root, run_id, alone=10.0, together=15.0):
    return results.write_run(root / "e" / run_id, {"runs": _runs(run_id, alone, together), "samples": _samples(run_id),
                                                   "telemetry": _telemetry(run_id)}, "name: e\n")


def test_atomic_write_and_schema(tmp_path):
    d = _write(tmp_path, "20260101-000000-aaaaaa")
    assert sorted(p.name for p in d.iterdir()) == ["format.json", "runs.parquet", "samples.parquet", "spec.yaml",
                                                   "telemetry.parquet"]
    assert pq.read_schema(d / "runs.parquet").names == RUNS.names
    assert pq.read_schema(d / "samples.parquet").names == SAMPLES.names
    assert [p.name for p in (tmp_path / "e").iterdir()] == [d.name]  # no temp folder left


def test_failed_write_leaves_nothing(tmp_path):
    bad = {"runs": _runs("r", 1, 2), "samples": pd.DataFrame({"iteration": ["not a number"]})}
    with pytest.raises(Exception):
        results.write_run(tmp_path / "e" / "r", bad, "x")
    assert list((tmp_path / "e").iterdir()) == []


def test_load_tree_latest_and_compare(tmp_path):
    _write(tmp_path, "20260101-000000-aaaaaa", 10.0, 15.0)
    _write(tmp_path, "20260102-000000-bbbbbb", 20.0, 50.0)
    (tmp_path / "e" / ".half.tmp").mkdir()  # a crashed write is ignored
    r = results.load(tmp_path)
    assert len(r.runs) == 4 and len(r.samples) == 6 and len(r.telemetry) == 8
    assert r.run_ids == ["20260101-000000-aaaaaa", "20260102-000000-bbbbbb"]
    t = results.alone_vs_together(r.latest().runs)
    assert t.loc[0, "alone_mean_ms"] == 20.0 and t.loc[0, "together_mean_ms"] == 50.0
    assert t.loc[0, "increase_mean_pct"] == pytest.approx(150.0)
    md = results.render(t)
    assert "| m | 20.00ms | 50.00ms | +150.0%" in md
    csv = results.render(t, "csv")
    assert csv.splitlines()[0].startswith("model,alone_mean_ms,together_mean_ms,increase_mean_pct")
    both = results.alone_vs_together(r.runs)  # the two runs are repeats: their geometric mean
    assert both.loc[0, "alone_mean_ms"] == pytest.approx(np.sqrt(10.0 * 20.0))
    assert both.loc[0, "verdict"] == "not shown"  # two runs: each a process measuring both phases, paired


def test_samples_join_telemetry_at_their_start(tmp_path):
    _write(tmp_path, "20260101-000000-aaaaaa")
    r = results.load(tmp_path)
    j = results.samples_with_telemetry(r.samples, r.telemetry)
    assert list(j["cpu_util_pct"]) == [10.0, 50.0, 90.0]
    assert j["ram_used_mib"].iloc[0] == 1000.0


def test_old_trees_read_mib_values_under_their_mib_names(tmp_path):
    """Trees written when the MiB figures were named ``_mb`` (unit ``MB``) read with the
    ``_mib`` names and unit ``MiB``, values unchanged: a tree written so, and the H100 trees."""
    old = pd.DataFrame({"run_id": "20260101-000000-aaaaaa", "t_ns": [90, 90, 90, 190], "source": "host",
                        "metric": ["ram_used_mb", "ram_total_mb", "cpu_util_pct", "ram_used_mb"],
                        "value": [1000.0, 64000.0, 10.0, 1001.0], "unit": ["MB", "MB", "%", "MB"]})
    old = pd.concat([old, pd.DataFrame({"run_id": "20260101-000000-aaaaaa", "t_ns": [90, 90], "source": "tegrastats",
                                        "metric": ["swap_cached_mb", "ram_lfb_size_mb"], "value": [6.0, 4.0],
                                        "unit": ["MB", "MB"]})], ignore_index=True)
    rid = "20260101-000000-aaaaaa"
    results.write_run(tmp_path / "e" / rid, {"runs": _runs(rid, 10.0, 15.0), "samples": _samples(rid),
                                             "telemetry": old}, "name: e\n")
    t = results.load(tmp_path).telemetry
    assert t.metric.tolist() == ["ram_used_mib", "ram_total_mib", "cpu_util_pct", "ram_used_mib", "swap_cached_mib",
                                 "ram_lfb_size_mib"]
    assert t.unit.tolist() == ["MiB", "MiB", "%", "MiB", "MiB", "MiB"]
    assert t.value.tolist() == old.value.tolist()
    j = results.samples_with_telemetry(results.load(tmp_path).samples, t, ["ram_used_mib"])
    assert j["ram_used_mib"].tolist() == [1000.0, 1001.0, 1001.0]
    h100 = results.load(Path(__file__).resolve().parents[1] / "data" / "h100" / "gpu_alone_together",
                        samples=False).telemetry
    names = set(h100.metric)
    assert {"ram_used_mib", "ram_total_mib", "mem_used_mib"} <= names and not any(m.endswith("_mb") for m in names)
    assert set(h100.loc[h100.metric == "mem_used_mib", "unit"]) == {"MiB"}


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match="no such results folder"):
        results.load(tmp_path / "nope")
    with pytest.raises(UserError, match="no runs found"):
        results.load(tmp_path)


def test_check_writable(tmp_path):
    results.check_writable(tmp_path / "new" / "deeper")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        results.check_writable(f / "results")


def test_versus_baseline_speedup():
    runs = pd.DataFrame([
        {"run_id": "r", "model": "trt", "phase": "alone", "status": "ok", "n": 100, "mean_ms": 2.0, "p50_ms": 1.5,
         "p99_ms": 3.0},
        {"run_id": "r", "model": "torch", "phase": "alone", "status": "ok", "n": 100, "mean_ms": 8.0, "p50_ms": 7.5,
         "p99_ms": 9.0},
        {"run_id": "r", "model": "bad", "phase": "alone", "status": "failed", "n": 0, "mean_ms": np.nan},
    ])
    t = results.versus(runs, "torch").set_index("model")
    # the speedup is of the p50s, the statistic its verdict tests (not of the means: 4.0)
    assert t.loc["trt", "speedup"] == pytest.approx(5.0) and t.loc["torch", "speedup"] == 1.0
    assert "bad" not in t.index
    assert "| trt | 100 | 1 | 2.00ms |" in results.render(t.reset_index())
    with pytest.raises(UserError, match="'bad' has no successful run"):
        results.versus(runs, "bad")
    # a condition that differs between runs (clocks) splits the rows and the baseline
    both = pd.concat([runs.assign(clocks_mode="default"), runs.assign(clocks_mode="max", mean_ms=runs.mean_ms / 2, p50_ms=runs.p50_ms / 2)])
    v = results.versus(both, "torch")
    assert len(v) == 4 and set(v.clocks_mode) == {"default", "max"}
    assert v[v.model == "trt"].speedup.tolist() == [5.0, 5.0]


def test_join_one_source(tmp_path):
    _write(tmp_path, "20260101-000000-aaaaaa")
    r = results.load(tmp_path)
    tel = pd.concat([r.telemetry, r.telemetry.assign(source="tegrastats", value=r.telemetry.value + 1000)])
    j = results.samples_with_telemetry(r.samples, tel, ["cpu_util_pct"], source="tegrastats")
    assert list(j["cpu_util_pct"]) == [1010.0, 1050.0, 1090.0]


def test_by_mode_is_seed_002s_table():
    rows = []
    for mode, phase, ms in [("inference", "alone", 8.0), ("validation", "alone", 12.0), ("without_val", "alone", 10.0),
                            ("validation", "together", 16.0), ("without_val", "together", 12.0)]:
        rows.append({"run_id": "r", "model": "cls", "mode": mode, "phase": phase, "status": "ok", "mean_ms": ms,
                     "batch": 1, "top1": 0.5 if mode == "validation" else np.nan})
    t = results.by_mode(pd.DataFrame(rows)).iloc[0]
    assert list(k for k in t.index if k.endswith("_ms")) == [
        "inference_alone_ms", "validation_alone_ms", "without_val_alone_ms", "validation_together_ms",
        "without_val_together_ms"]
    assert t["validation_alone_vs_inference_pct"] == pytest.approx(50.0)
    assert t["without_val_together_vs_inference_pct"] == pytest.approx(50.0)
    assert t["top1"] == 0.5


def test_output_checks_of_concurrent_runs_never_refuse_each_other(tmp_path):
    """A sweep's points check the same missing output tree at once (seen in CI: one point
    refused with "results is not writable" while another had just made and removed
    `results` as its probe). Eight threads checking it 300 times each: no refusal, and
    nothing left behind."""
    import threading

    from trt_ray_bench.errors import UserError
    from trt_ray_bench.results.write import check_writable

    errors = []

    def check(k: int) -> None:
        for _ in range(300):
            try:
                check_writable(tmp_path / "results" / f"sw{k}")
            except UserError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=check, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(tmp_path.iterdir()) == []
