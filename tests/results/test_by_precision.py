"""`trb compare --by precision` and several result trees in one comparison, on real ONNX
Runtime runs through a local Ray: one network at FP32, FP16 and INT8, each precision
against FP32 (speedup, verdict on the runs), energy and accuracy where the runs have them;
two trees of different software generations side by side, never pooled."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trt_ray_bench import results
from trt_ray_bench.errors import UserError
from trt_ray_bench.results.verdict import NO_TEST
from trt_ray_bench.spec import spec_from_dict

ROOT = Path(__file__).resolve().parents[2]
CALIB = ROOT / "examples" / "07_precision" / "calib"

pytestmark = pytest.mark.ray


def _run(out: Path, cls_onnx: Path) -> Path:
    from trt_ray_bench.cluster import make_plan, run_plan

    models = [{"path": str(cls_onnx), "name": f"cls-{p}", "precision": p, "options": {"threads": 1}}
              for p in ("fp32", "fp16")]
    models.append({"path": str(cls_onnx), "name": "cls-int8", "precision": "int8",
                   "options": {"threads": 1, "calib_images": str(CALIB)}})
    spec = spec_from_dict({
        "name": "prec", "output": str(out), "schedule": "alone", "repeats": 2, "repeat_isolation": "process",
        "models": models, "timing": {"iterations": 20, "warmup": 2}, "telemetry": {"interval_s": 0.05},
    })
    out = run_plan(make_plan(spec), log=lambda s: None)
    runs = out["runs"] if "runs" in out else results.load(out["run_dir"]).runs
    bad = runs[runs["status"] != "ok"]
    assert not len(bad), "a row of the run failed: " + "; ".join(
        f"{m} r{r}: {e}" for m, r, e in zip(bad["model"], bad["repeat"], bad["error"]))
    return Path(out["run_dir"])


@pytest.fixture(scope="module")
def trees(tmp_path_factory, cls_onnx, ray_local):
    """Two real runs of one spec, each in a tree of its own: ``a`` and ``b``."""
    base = tmp_path_factory.mktemp("precision")
    return {name: (base / name, _run(base / name, cls_onnx)) for name in ("a", "b")}


def _other_generation(run_dir: Path, column: str, value: str) -> None:
    """The run as a board of another software generation would have written it: one
    version column of its runs table changed, the file's schema and metadata kept."""
    f = run_dir / "runs.parquet"
    t = pq.read_table(f)
    i = t.schema.get_field_index(column)
    assert value not in t.column(i).to_pylist(), f"{column} {value} is this machine's: choose another"
    t = t.set_column(i, t.schema.field(i), pa.array([value] * t.num_rows, t.schema.field(i).type))
    pq.write_table(t, f)


def test_each_precision_against_fp32(trees):
    runs = results.load(trees["a"][0]).runs
    table = results.by_precision(runs)
    assert list(table["precision"]) == ["fp32", "fp16", "int8"]
    assert list(table["model"]) == ["cls-fp32", "cls-fp16", "cls-int8"]
    assert table["source"].nunique() == 1  # one network: the same source ONNX at three precisions
    base = table.iloc[0]
    assert base["speedup"] == 1.0 and base["verdict"] == NO_TEST and base["why"] == "the baseline"
    for _, r in table.iloc[1:].iterrows():
        # the speedup is the ratio of the two pooled p50s (geometric means over the runs)
        assert r["speedup"] == pytest.approx(base["p50_ms"] / r["p50_ms"])
        assert r["vs_baseline_p50_pct"] == pytest.approx((1 / r["speedup"] - 1) * 100, rel=1e-6)
        assert r["k"] == 2 and r["verdict"] in ("slower", "faster", "not shown")
        assert r["vs_baseline_p50_lo_pct"] <= r["vs_baseline_p50_pct"] <= r["vs_baseline_p50_hi_pct"]
    # no energy measured: the column is there, every value missing (— in the table)
    assert table["energy_mj_per_inf"].isna().all()
    assert "| — |" in results.render(table).splitlines()[2]
    assert not any(c.startswith("top1") for c in table.columns)  # no validation ran


def test_another_baseline_precision_and_a_bad_one(trees):
    runs = results.load(trees["a"][0]).runs
    table = results.by_precision(runs, baseline="fp16")
    assert table.set_index("precision").at["fp16", "why"] == "the baseline"
    assert table.set_index("precision").at["fp32", "speedup"] < 10
    with pytest.raises(UserError, match=r"^--baseline: 'bf16' is not a precision measured here \(have fp32, "
                                        r"fp16, int8\)$"):
        results.by_precision(runs, baseline="bf16")


def test_energy_per_inference_and_accuracy_where_the_runs_have_them(trees):
    runs = results.load(trees["a"][0]).runs.copy()
    # the energy columns another part of trb writes, and the metrics a validation row stores
    runs["energy_mj_per_inf"] = runs["model"].map({"cls-fp32": 4.0, "cls-fp16": 3.0, "cls-int8": 2.0})
    runs.loc[runs.index[runs["model"] == "cls-fp16"][0], "energy_mj_per_inf"] = 5.0
    runs["top1"] = runs["model"].map({"cls-fp32": 0.70, "cls-fp16": 0.70, "cls-int8": 0.65})
    t = results.by_precision(runs).set_index("precision")
    n = runs[runs["model"] == "cls-fp16"]["n"].to_numpy(float)
    assert t.at["fp16", "energy_mj_per_inf"] == pytest.approx((5.0 * n[0] + 3.0 * n[1]) / n.sum())
    assert t.at["int8", "energy_mj_per_inf"] == pytest.approx(2.0)
    assert t.at["int8", "top1"] == pytest.approx(0.65) and t.at["int8", "top1_delta"] == pytest.approx(-0.05)
    assert t.at["fp16", "top1_delta"] == pytest.approx(0.0) and np.isnan(t.at["fp32", "top1_delta"])


def test_a_dla_model_is_set_against_the_networks_fp32_on_the_gpu(trees):
    """A DLA core runs FP16 / INT8 only: the FP16 and INT8 models placed on it (a Jetson's
    usual table) must meet the network's FP32 row, which ran on the GPU, with the core shown."""
    runs = results.load(trees["a"][0]).runs.copy()
    runs["dla_core"] = runs["model"].map({"cls-fp32": np.nan, "cls-fp16": 0.0, "cls-int8": 1.0})
    t = results.by_precision(runs)
    assert list(t["precision"]) == ["fp32", "fp16", "int8"] and "dla_core" in t.columns
    assert t["dla_core"].isna().tolist() == [True, False, False] and t["dla_core"].iloc[2] == 1.0
    assert np.isfinite(t["speedup"]).all() and (t["why"].iloc[1:] != "no fp32 row of this network").all()


def test_together_energy_pools_as_the_windows_energy_over_all_their_inferences():
    """Two together windows of 1 J each, holding 200 and 1000 inferences of every model:
    2 J over 1200 inferences, whichever model's rows (each with its own n) are pooled."""
    from trt_ray_bench.results.compare import pooled_energy

    rows = pd.DataFrame({"n": [100, 100], "energy_j": [1.0, 1.0], "energy_mj_per_inf": [5.0, 1.0]})
    assert pooled_energy(rows) == pytest.approx(2e3 / 1200)  # a count-weighted mean of the ratios: 3.0
    alone = pd.DataFrame({"n": [100, 900], "energy_j": [1.0, 0.9], "energy_mj_per_inf": [10.0, 1.0]})
    assert pooled_energy(alone) == pytest.approx(1.9e3 / 1000)


def test_two_trees_of_one_generation_pool_and_of_two_never(trees, tmp_path):
    (a, _), (b, b_run) = trees["a"], trees["b"]
    both = results.load([a, b])
    assert [t for t, _ in both.trees] == [str(a), str(b)]
    assert len(both.latest().run_ids) == 2  # the newest complete run of each tree
    same = results.by_precision(both.latest().runs)
    assert list(same["k"]) == [4, 4, 4]  # one generation: each precision pooled over both trees' runs

    other = tmp_path / "b"
    shutil.copytree(b, other)
    _other_generation(other / b_run.relative_to(b), "onnxruntime_version", "1.16.3")
    mixed = results.load([a, other]).latest().runs
    t = results.by_precision(mixed)
    assert "onnxruntime_version" in t.columns  # the generation is a condition, shown
    assert len(t) == 6 and set(t["k"]) == {2}
    assert set(t["onnxruntime_version"]) == {"1.16.3", mixed["onnxruntime_version"].iloc[0]}
    for _, rows in t.groupby("onnxruntime_version"):
        # each generation's precisions are tested against that generation's fp32
        assert list(rows["precision"]) == ["fp32", "fp16", "int8"]
        assert rows.iloc[1]["speedup"] == pytest.approx(rows.iloc[0]["p50_ms"] / rows.iloc[1]["p50_ms"])


@pytest.mark.parametrize("column, value", [("cuda_version", "11.4"), ("jetpack", "5.1.2"), ("l4t", "35.4.1"),
                                           ("gpu_driver", "535.104"), ("tensorrt_version", "8.5.2.2")])
def test_every_generation_column_splits(trees, tmp_path, column, value):
    (a, _), (b, b_run) = trees["a"], trees["b"]
    other = tmp_path / "b"
    shutil.copytree(b, other)
    _other_generation(other / b_run.relative_to(b), column, value)
    t = results.by_precision(results.load([a, other]).latest().runs)
    assert column in t.columns and len(t) == 6


def test_the_cli_compares_several_trees_by_precision(trees, trb, tmp_path):
    (a, _), (b, b_run) = trees["a"], trees["b"]
    other = tmp_path / "b"
    shutil.copytree(b, other)
    _other_generation(other / b_run.relative_to(b), "cuda_version", "12.6")
    code, out, err = trb("compare", a, other, "--by", "precision", "--format", "csv")
    assert code == 0, err
    table = pd.read_csv(__import__("io").StringIO(out))
    assert len(table) == 6 and set(table["precision"]) == {"fp32", "fp16", "int8"}
    assert sorted(table["cuda_version"].fillna("").astype(str)) == ["", "", "", "12.6", "12.6", "12.6"]
    code, out, err = trb("compare", a, "--by", "precision", "--baseline", "int4")
    assert code == 2 and err.count("\n") == 1 and "--baseline: 'int4' is not a precision measured here" in err
