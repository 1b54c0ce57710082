"""Power mode and clock modes of a Jetson through the real run path: a local Ray, the
Monitor actor applying and restoring them on the node, real ONNX Runtime models,
runs.parquet.

``nvpmodel``, ``jetson_clocks`` and ``sudo`` are hardware-only (or root-only) commands:
stand-in scripts (``standins/``) are put first on the driver's PATH, and TRB_ROOT /
TRB_SYSFS_ROOT point at a fake Jetson AGX Orin; the run hands all of it to the Monitor
actor (CONTROL_ENV), which therefore believes it runs on that Jetson.
"""

from __future__ import annotations

import json

import pytest

from trt_ray_bench import results
from trt_ray_bench.cluster import make_plan, run_plan
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import spec_from_dict

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _spec(tmp_path, onnx, **over):
    d = {
        "name": "jetson",
        "output": str(tmp_path / "results"),
        "models": [{"path": str(onnx), "name": "cls", "options": {"threads": 1}},
                   {"path": str(onnx), "name": "cls2", "options": {"threads": 1}}],
        "timing": {"iterations": 5, "warmup": 1},
        "telemetry": {"interval_s": 0.05, "tegrastats": False},
        **over,
    }
    return spec_from_dict(d)



def _changes(fake):
    return [s for s in fake.sequence() if not s.startswith(("sudo -l", "nvpmodel -q", "jetson_clocks --show"))]


def test_a_model_that_dies_mid_run_still_gets_power_mode_and_clocks_restored(tmp_path, cls_onnx, released_run,
                                                                             fake_jetson):
    plan = make_plan(_spec(tmp_path, cls_onnx, schedule="together", clocks="max", power_mode=0,
                           timing={"iterations": 3000, "warmup": 1}))
    run = released_run(plan)
    assert fake_jetson.state()["mode"] == 0 and fake_jetson.gpu() == (1300500000, 1300500000)  # while measuring
    run.kill("cls2")
    out = run.join()
    assert _changes(fake_jetson) == ["nvpmodel -m 0", "jetson_clocks --store", "jetson_clocks",
                                     "jetson_clocks --restore", "nvpmodel -m 3"]
    assert fake_jetson.state()["mode"] == 3 and fake_jetson.gpu() == (306000000, 816000000)
    runs = results.load(out["run_dir"]).runs.set_index("model")
    assert runs.loc["cls2", "status"] == "failed" and runs.loc["cls", "status"] == "ok"
    row = runs.loc["cls"]
    assert (row.platform, row.board, row.l4t) == ("jetson", "NVIDIA Jetson AGX Orin Developer Kit", "35.4.1")
    assert (row.power_mode, row.gpu_freq_range_mhz) == ("MAXN (0)", "1300.5-1300.5")  # as measured
    assert json.loads(row.power_mode_before) == {"id": 3, "name": "MODE_50W"} == json.loads(row.power_mode_after)
    assert row.clocks_mode == "max" and json.loads(row.clocks_in_force)["emc_override"] == 1
    assert json.loads(row.clocks_after)["gpu_max_mhz"] == 816.0


def test_a_fixed_gpu_clock_through_the_run_path(tmp_path, cls_onnx, ray_local, fake_jetson):
    out = run_plan(make_plan(_spec(tmp_path, cls_onnx, schedule="alone", clocks={"gpu_mhz": 612})), log=lambda s: None)
    assert _changes(fake_jetson) == ["write max_freq 612000000", "write min_freq 612000000",
                                     "write max_freq 816000000", "write min_freq 306000000"]
    runs = out["tables"]["runs"]
    assert set(runs.status) == {"ok"} and (runs.gpu_freq_range_mhz == "612-612").all()
    assert (runs.power_mode == "MODE_50W (3)").all() and runs.power_mode_before.isna().all()


@pytest.mark.parametrize("over, configure, where", [
    ({"power_mode": 5}, {}, "power_mode"),
    ({"clocks": {"gpu_mhz": 900}}, {}, "clocks.gpu_mhz"),
    ({"clocks": "max", "power_mode": 0}, {"sudo": "password"}, "power_mode"),
])
def test_refused_on_the_node_before_measuring_nothing_written(tmp_path, cls_onnx, ray_local, fake_jetson,
                                                              over, configure, where):
    fake_jetson.configure(**configure)
    with pytest.raises(UserError) as e:
        run_plan(make_plan(_spec(tmp_path, cls_onnx, **over)), log=lambda s: None)
    assert type(e.value) is UserError and e.value.where == where and "\n" not in str(e.value)
    assert _changes(fake_jetson) == []  # nothing was set
    assert fake_jetson.state()["mode"] == 3 and not (tmp_path / "results").exists()


def test_without_sudo_rights_clocks_default_still_runs(tmp_path, cls_onnx, ray_local, fake_jetson):
    fake_jetson.configure(sudo="password")
    out = run_plan(make_plan(_spec(tmp_path, cls_onnx, schedule="alone")), log=lambda s: None)
    runs = out["tables"]["runs"]
    assert set(runs.status) == {"ok"} and (runs.clocks_mode == "default").all()
    assert not any(c["tool"] in ("sudo", "jetson_clocks") for c in fake_jetson.calls())
    assert not any(c["argv"][:1] == ["-m"] for c in fake_jetson.calls())


def test_a_second_run_changing_the_boards_clocks_is_refused_while_one_measures(tmp_path, cls_onnx, released_run,
                                                                                 fake_jetson, monkeypatch):
    """No GPU is leased here (the local Ray node counts none, as a Jetson's may), yet
    clocks and power mode are the board's: a run that changes them holds GPU 0's lease
    (the same lock a GPU run takes), and a second run asking for another clock mode meanwhile
    is refused in one line before it changes anything."""
    from trt_ray_bench.cluster import node_run

    monkeypatch.setattr(node_run, "LEASE_WAIT_S", 0.5)
    # enough inferences to outlast the second run's refusal (3000 had once ended before it on a
    # 2-core machine), few enough that the model left runs out its count soon after the kill below
    first = released_run(make_plan(_spec(tmp_path, cls_onnx, schedule="together", clocks="max",
                                         timing={"iterations": 20_000, "warmup": 1})))
    before = _changes(fake_jetson)
    with pytest.raises(UserError, match=r"^clocks: gpu_mhz=612: changes GPU 0's settings \(on a Jetson, the whole "
                                        r"board's\), which another experiment on this node holds \(pid \d+\)") as err:
        run_plan(make_plan(_spec(tmp_path / "b", cls_onnx, schedule="alone", clocks={"gpu_mhz": 612})),
                 log=lambda s: None)
    assert "\n" not in str(err.value)
    assert _changes(fake_jetson) == before == ["jetson_clocks --store", "jetson_clocks"]  # nothing of the second
    first.kill("cls2")  # end the first run early
    first.join()
    assert _changes(fake_jetson) == ["jetson_clocks --store", "jetson_clocks", "jetson_clocks --restore"]
    # the lease is given back with the restore: the next run changes the clocks
    out = run_plan(make_plan(_spec(tmp_path / "c", cls_onnx, schedule="alone", clocks={"gpu_mhz": 612})),
                   log=lambda s: None)
    assert set(out["tables"]["runs"].status) == {"ok"} and "write max_freq 612000000" in _changes(fake_jetson)
