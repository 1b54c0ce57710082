"""Open-loop arrivals through the whole path: real ONNX Runtime models on a real local
Ray, alone and together, the rows' from-arrival statistics, misses, drops and scheduling
error, and the samples' arrival columns."""

import numpy as np
import pytest

from trt_ray_bench import results
from trt_ray_bench.cluster import make_plan, run_plan
from trt_ray_bench.spec import spec_from_dict

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.mark.alone  # frames on a clock (none dropped alone): under two workers (-n 2) the other one waits
def test_frames_arrive_on_a_clock_alone_and_together(tmp_path, cls_onnx, det_onnx, ray_local):
    spec = spec_from_dict({
        "name": "keep_up",
        "output": str(tmp_path / "results"),
        "timing": {"iterations": 60, "warmup": 3, "arrivals": "periodic", "rate_hz": 50, "deadline_ms": 15},
        "models": [
            {"path": str(cls_onnx), "name": "cls", "options": {"threads": 1}},
            {"path": str(det_onnx), "name": "det", "options": {"threads": 1},
             "timing": {"arrivals": "poisson", "rate_hz": 40, "backlog": "drop"}},
            {"path": str(cls_onnx), "name": "closed", "options": {"threads": 1},
             "timing": {"arrivals": "closed", "iterations": 20}},
        ],
        "telemetry": {"interval_s": 0.05},
    })
    plan = make_plan(spec)
    seed = plan.spec.timing.seed
    assert isinstance(seed, int)  # drawn, and in the spec the run writes
    out = run_plan(plan, log=lambda s: None)
    r = results.load(out["run_dir"])
    runs = r.runs.set_index(["model", "phase"])
    assert set(runs["status"]) == {"ok"}
    assert f"seed: {seed}" in (out["run_dir"] / "spec.yaml").read_text()
    for m, arrivals, backlog, rate in (("cls", "periodic", "queue", 50), ("det", "poisson", "drop", 40)):
        for ph in ("alone", "together"):
            row = runs.loc[(m, ph)]
            assert (row.arrivals, row.backlog, row.rate_hz, row.seed) == (arrivals, backlog, rate, seed)
            # from arrival is the service plus the wait: never below it
            assert row.p50_from_arrival_ms >= row.p50_ms - 1e-9 and row.mean_from_arrival_ms >= row.mean_ms - 1e-9
            assert row.frames == row.n + row.dropped and row.frames >= row.n > 0
            assert 0 <= row.deadline_miss <= 1 and row.sched_error_n >= 1 and row.sched_error_p50_ms >= 0
            if np.isfinite(row.deadline_miss_lo):
                assert row.deadline_miss_lo <= row.deadline_miss <= row.deadline_miss_hi
    assert runs.loc[("cls", "alone"), "dropped"] == 0 and runs.loc[("cls", "alone"), "frames"] == 60
    assert runs.loc[("det", "alone"), "frames"] == 60  # frames, served or dropped, make the count
    closed = runs.loc[("closed", "alone")]
    assert closed.arrivals == "closed" and np.isnan(closed.p50_from_arrival_ms) and np.isnan(closed.seed)
    assert np.isnan(closed.rate_hz)  # not its own: it runs closed
    assert 0 <= closed.deadline_miss <= 1  # a closed loop's misses: of the service time
    s = r.samples
    ok = s[(s.model != "closed") & ~s.warmup]
    assert np.allclose(ok.queue_ms, (ok.t_start_ns - ok.t_arrival_ns) / 1e6)
    assert (ok.queue_ms >= 0).all() and s[s.model == "closed"].t_arrival_ns.isna().all()
    # together: every model's arrival clock starts at the one start instant
    instant = runs.xs("together", level="phase")["start_instant_ns"].iloc[0]
    for m in ("cls",):
        first = s[(s.model == m) & (s.phase == "together") & ~s.warmup].t_arrival_ns.min()
        assert first == instant
    det_first = s[(s.model == "det") & (s.phase == "together") & ~s.warmup].t_arrival_ns.min()
    assert instant < det_first < instant + 0.5e9  # poisson: one exponential gap after it
    # periodic frames one period apart, alone
    a = s[(s.model == "cls") & (s.phase == "alone")].t_arrival_ns.to_numpy()
    assert np.allclose(np.diff(a), 1e9 / 50, atol=1)


def test_a_spec_that_does_not_fit_is_refused_before_anything_runs(tmp_path, trb):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x\ntiming: {arrivals: periodic, rate_hz: 30, gap_s: 0.1}\n"
                    "models: [{arch: yolov8n, task: classify, imgsz: 64}]\noutput: " + str(tmp_path / "out") + "\n")
    code, _, err = trb("run", str(spec))
    assert code == 2 and err.strip().count("\n") == 0
    assert "timing.gap_s" in err and not (tmp_path / "out").exists()
