"""The seed 002 study end to end on the CPU: inference vs validation vs without_val,
alone and together, on synthetic labelled sets, through a real local Ray."""

import numpy as np
import pytest

from trt_ray_bench import results
from trt_ray_bench.cluster import make_plan, run_plan
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import spec_from_dict

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_inference_vs_validation(tmp_path, cls_onnx, det_onnx, ray_local):
    spec = spec_from_dict({
        "name": "seed002", "output": str(tmp_path / "results"),
        "modes": ["inference", "validation", "without_val"], "data": {"synthetic": 6},
        "timing": {"iterations": 6, "warmup": 2},
        "models": [{"path": str(cls_onnx), "name": "cls"}, {"path": str(det_onnx), "name": "det"}],
    })
    plan = make_plan(spec)
    assert set(plan.data) == {"cls", "det"} and any("6 of 6 images" in n for n in plan.notes)
    out = run_plan(plan, log=lambda s: None)
    r = results.load(out["run_dir"])
    runs = r.runs
    assert len(runs) == 12 and set(runs.status) == {"ok"}
    val = runs[runs["mode"] == "validation"].set_index(["model", "phase"])
    # accuracy next to speed, over the whole set, said how many images it used
    assert val.loc[("cls", "alone"), "top1"] >= 0 and np.isfinite(val.loc[("det", "alone"), "map50"])
    assert (val.n_images == 6).all() and val.loc[("det", "alone"), "n_labels"] > 0
    assert (val.metrics_p50_ms > 0).all()
    nov = runs[runs["mode"] == "without_val"]
    assert nov.top1.isna().all() and nov.metrics_p50_ms.isna().all()
    s = r.samples[(r.samples["mode"] == "validation") & ~r.samples.warmup]
    for col in ("load_ms", "pre_ms", "infer_ms", "post_ms", "metrics_ms"):
        assert (s[col] >= 0).all() and s[col].notna().all()
    assert (s.load_ms + s.pre_ms + s.infer_ms + s.post_ms <= s.host_ms + 1e-6).all()
    t = results.by_mode(runs).set_index("model")
    assert {"inference_alone_ms", "validation_alone_ms", "without_val_together_ms",
            "validation_alone_vs_inference_pct"} <= set(t.columns)
    assert "top1" in t.columns and "map50" in t.columns


def test_data_problems_are_refused_before_anything(tmp_path, cls_onnx):
    base = {"name": "v", "output": str(tmp_path / "results"), "modes": ["validation"],
            "models": [{"path": str(cls_onnx), "name": "cls"}]}
    with pytest.raises(UserError, match="need 'data'"):
        spec_from_dict(base)
    with pytest.raises(UserError, match="sync device or stream"):
        spec_from_dict({**base, "data": {"synthetic": 2}, "timing": {"sync": "none"}})
    (tmp_path / "data.yaml").write_text("path: nowhere\nval: images/val\nnames: {0: a}\n")
    with pytest.raises(UserError) as e:
        make_plan(spec_from_dict({**base, "data": {"path": str(tmp_path / "data.yaml")}}))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "results").exists()


def test_further_passes_keep_the_metric_work_but_report_one(tmp_path, det_onnx):
    """A fast model kept running in a together window goes over the set again: those
    images carry the same metric work (so "validation together" is not "without_val" in
    disguise), while the reported metrics still count every image once."""
    from trt_ray_bench.engines import load_runner
    from trt_ray_bench.engines.pipeline import PipelineRunner
    from trt_ray_bench.engines import resolve_model
    from trt_ray_bench.spec import ModelSpec
    from trt_ray_bench.validation import ValidationRunner, load_dataset, make_synthetic

    ds = load_dataset(make_synthetic("detect", tmp_path / "d", n=4, imgsz=(96, 96), seed=3), "detect")
    m = resolve_model(ModelSpec(path=str(det_onnx), task="detect", options={"threads": 1}), "m")
    pipe = PipelineRunner(load_runner(m), m, conf=1e-5)
    pipe.prepare(ds.images)

    def run(passes):
        v = ValidationRunner(pipe, ds, metrics=True)
        for k in range(passes * ds.n_images):
            v.infer(k)
        return v, v.result()

    once, first = run(1)
    twice, again = run(3)
    assert once.metric_updates == 4 and twice.metric_updates == 12  # every image, every pass
    assert again["n_images"] == first["n_images"] == 4
    assert again["map50_95"] == pytest.approx(first["map50_95"])
    twice.gpu_times_ms()
    ms = np.asarray(twice.stage_times_ms()["metrics_ms"])
    assert len(ms) == 12
    # the later passes did the work: not the microsecond of a skipped update
    assert np.median(ms[4:]) > 0.2 * np.median(ms[:4])
