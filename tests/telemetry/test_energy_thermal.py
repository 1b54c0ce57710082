"""The board's thermal state (``telemetry.thermal``: thermal zones, Orin's over-current
counters, the cooldown's wait) on a sysfs tree laid out like the board's, and one run
through the real Ray path with all of it: energy from a replayed tegrastats (real recorded
Orin NX lines, first on PATH), the idle baseline, a cooldown that times out, over-current
counters that move during the phases.

NVML cannot be stood in for by an executable: its energy counter's arithmetic is
tests/results/test_energy.py's, and tests/gpu runs it on a GPU."""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path

import pytest

from trt_ray_bench.telemetry.thermal import hottest_zone, oc_delta, oc_event_counts, thermal_zones, wait_until_cool

HERE = Path(__file__).parent
LINES = {m.group(1): m.group(2) for m in (re.match(r"^([a-z0-9_.]+): (.*)$", raw) for raw in
                                          (HERE / "data" / "tegrastats_lines.txt").read_text().splitlines()) if m}


def _write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n")
    return p


def _board(root: Path, tj_milli: int = 48875) -> Path:
    """An Orin's sysfs as it reads: zones (one unreadable, the PMIC's fixed 100 C, one off)
    and the soctherm_oc hwmon with its three counters."""
    _write(root, "sys/class/thermal/thermal_zone0/type", "cpu-thermal")
    _write(root, "sys/class/thermal/thermal_zone0/temp", "47937")
    _write(root, "sys/class/thermal/thermal_zone1/type", "gpu-thermal")
    _write(root, "sys/class/thermal/thermal_zone1/temp", "45875")
    _write(root, "sys/class/thermal/thermal_zone2/type", "cv0-thermal")  # no temp: powered off
    _write(root, "sys/class/thermal/thermal_zone3/type", "PMIC-Die")
    _write(root, "sys/class/thermal/thermal_zone3/temp", "100000")
    _write(root, "sys/class/thermal/thermal_zone4/type", "soc2-thermal")
    _write(root, "sys/class/thermal/thermal_zone4/temp", "-256000")
    _write(root, "sys/class/thermal/thermal_zone10/type", "tj-thermal")
    _write(root, "sys/class/thermal/thermal_zone10/temp", str(tj_milli))
    _write(root, "sys/class/hwmon/hwmon0/name", "ina3221")
    _write(root, "sys/class/hwmon/hwmon3/name", "soctherm_oc")
    for n, v in (("oc1", 0), ("oc2", 15), ("oc3", 37)):
        _write(root, f"sys/class/hwmon/hwmon3/{n}_event_cnt", str(v))
        _write(root, f"sys/class/hwmon/hwmon3/{n}_throt_en", "1")
    return root


def test_the_host_sampler_records_the_hottest_zone_for_the_timeline(tmp_path):
    """Where a cooldown waits on thermal zones (no NVML, no tegrastats), the run records the
    same temperature, so the report's timeline and explain have a trace of it."""
    import pandas as pd

    from trt_ray_bench.results.explain import window_telemetry
    from trt_ray_bench.telemetry import HostSampler

    readings = list(HostSampler(thermal_root=_board(tmp_path / "orin")).read())
    assert ("temp_c:zone", 48.875, "C") in readings
    assert not any(m.startswith("temp_c") for m, _, _ in HostSampler(thermal_root=tmp_path / "none").read())
    assert not any(m.startswith("temp_c") for m, _, _ in HostSampler().read())
    tel = pd.DataFrame([{"run_id": "r", "t_ns": t, "source": "host", "metric": "temp_c:zone", "value": v, "unit": "C",
                         "avg_s": 0.0} for t, v in ((1_000, 40.0), (2_000, 44.0), (9_000, 70.0))])
    runs = pd.DataFrame([{"run_id": "r", "model": "m", "phase": "alone", "status": "ok", "window_start_ns": 500,
                          "window_end_ns": 2_500}])
    assert window_telemetry(runs, tel)["tel_temp_c"].iloc[0] == pytest.approx(42.0)


def test_thermal_zones_leave_out_what_is_not_a_temperature(tmp_path):
    root = _board(tmp_path)
    assert thermal_zones(root) == [("cpu-thermal", 47.937), ("gpu-thermal", 45.875), ("tj-thermal", 48.875)]
    assert hottest_zone(root) == ("tj-thermal", 48.875)  # not the PMIC's fixed 100 C
    assert hottest_zone(tmp_path / "nothing") is None and thermal_zones(tmp_path / "nothing") == []


def test_over_current_counters_and_what_moved(tmp_path):
    root = _board(tmp_path)
    before = oc_event_counts(root)
    assert before == {"oc1": 0, "oc2": 15, "oc3": 37}
    _write(root, "sys/class/hwmon/hwmon3/oc3_event_cnt", "41")
    _write(root, "sys/class/hwmon/hwmon3/oc1_event_cnt", "2")
    total, detail = oc_delta(before, oc_event_counts(root))
    assert total == 6 and detail == "oc1 (under-voltage) +2, oc3 (instantaneous over-current) +4"
    assert oc_delta(before, before) == (0, None)
    assert oc_delta({}, {}) == (None, None) and oc_event_counts(tmp_path / "desktop") == {}


def test_a_cooldown_waits_until_the_zone_falls_and_gives_up_at_its_timeout(tmp_path):
    root = _board(tmp_path, tj_milli=80000)
    read = lambda: (lambda z: {"c": z[1], "what": f"thermal zone {z[0]}"} if z else None)(hottest_zone(root))  # noqa: E731
    timer = threading.Timer(0.6, lambda: _write(root, "sys/class/thermal/thermal_zone10/temp", "44000"))
    timer.start()
    got = wait_until_cool(read, 50.0, timeout_s=10.0, poll_s=0.05)
    timer.join()
    assert got["reached"] and got["what"] == "thermal zone cpu-thermal" and got["c"] == 47.937
    assert 0.5 <= got["waited_s"] < 2.0
    _write(root, "sys/class/thermal/thermal_zone10/temp", "80000")
    got = wait_until_cool(read, 50.0, timeout_s=0.3, poll_s=0.05)
    assert not got["reached"] and got["c"] == 80.0 and 0.3 <= got["waited_s"] < 1.0
    got = wait_until_cool(lambda: None, 50.0, timeout_s=5)
    assert got == {"waited_s": pytest.approx(0, abs=0.1), "c": None, "what": None, "reached": False}


@pytest.fixture
def orin_nx(tmp_path, monkeypatch):
    """A replayed Orin NX tegrastats first on PATH, the board's sysfs under TRB_SYSFS_ROOT
    (the run hands both to its Monitor), and a thread counting over-current events."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "tegrastats"
    exe.write_text(f"#!{sys.executable}\n" + (HERE / "standins" / "tegrastats.py").read_text())
    exe.chmod(0o755)
    (bin_dir / "tegrastats.lines").write_text(LINES["orin_nx_jp5"] + "\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in ("TRB_STANDIN_LINES", "TRB_STANDIN_RECORD", "TRB_STANDIN_EXIT_AFTER", "TRB_STANDIN_IGNORE_TERM"):
        monkeypatch.delenv(var, raising=False)
    root = _board(tmp_path / "board", tj_milli=80000)
    monkeypatch.setenv("TRB_SYSFS_ROOT", str(root))
    stop = threading.Event()

    def count():  # an instantaneous over-current event every 50 ms while the run goes
        n, f = 37, root / "sys/class/hwmon/hwmon3/oc3_event_cnt"
        while not stop.wait(0.05):
            n += 1
            tmp = f.with_name(".oc3.tmp")
            tmp.write_text(f"{n}\n")
            os.replace(tmp, f)  # whole, as sysfs answers a read: never an empty file midway

    t = threading.Thread(target=count, daemon=True)
    t.start()
    yield root
    stop.set()
    t.join()


@pytest.mark.ray
@pytest.mark.slow
def test_energy_idle_cooldown_and_over_current_in_a_real_run(tmp_path, cls_onnx, ray_local, orin_nx):
    from trt_ray_bench import results
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.spec import spec_from_dict

    spec = spec_from_dict({
        "name": "energy", "output": str(tmp_path / "results"), "schedule": "both",
        "models": [{"path": str(cls_onnx), "name": "a", "options": {"threads": 1}},
                   {"path": str(cls_onnx), "name": "b", "options": {"threads": 1}}],
        "timing": {"duration_s": 0.6, "warmup": 2, "gap_s": 0.002, "cooldown": {"temp_c": 50, "timeout_s": 0.3}},
        "telemetry": {"interval_s": 0.05, "tegrastats": True, "tegrastats_interval_ms": 50, "idle_s": 0.4},
    })
    logs = []
    out = run_plan(make_plan(spec), log=logs.append)
    runs = results.load(out["run_dir"], samples=False).runs.set_index(["model", "phase"])
    assert set(runs.status) == {"ok"}
    vdd_in = 5.299  # W: the replayed line's VDD_IN, constant
    assert set(runs.energy_source) == {"tegrastats:VDD_IN"} and set(runs.energy_gpu_source) == {
        "tegrastats:VDD_CPU_GPU_CV"}
    assert runs.avg_power_w.to_numpy() == pytest.approx([vdd_in] * 4)
    assert runs.energy_j.to_numpy() == pytest.approx((vdd_in * runs.window_s).to_numpy())
    assert runs.energy_gpu_j.to_numpy() == pytest.approx((0.773 * runs.window_s).to_numpy())
    assert runs.idle_power_w.to_numpy() == pytest.approx([vdd_in] * 4)  # nothing ran, the same line
    assert runs.energy_above_idle_j.to_numpy() == pytest.approx([0.0] * 4, abs=1e-9)
    alone, together = runs.xs("alone", level="phase"), runs.xs("together", level="phase")
    assert alone.energy_mj_per_inf.to_numpy() == pytest.approx((alone.energy_j * 1e3 / alone.n).to_numpy())
    assert alone.energy_why.isna().all()
    shared = together.energy_j.iloc[0] * 1e3 / together.n.sum()
    assert together.energy_mj_per_inf.to_numpy() == pytest.approx([shared, shared])
    assert together.inf_per_j.to_numpy() == pytest.approx([1e3 / shared] * 2)
    assert all(w.startswith("together: the energy of the whole window, the 2 models'") for w in together.energy_why)
    # the cooldown waited its 0.3 s before each phase at 80 C, then measured anyway, and said so
    assert ((runs.cooldown_s >= 0.3) & (runs.cooldown_s < 3)).all() and set(runs.cooldown_temp_c) == {80.0}
    assert sum("warning  cooldown: thermal zone tj-thermal at 80 °C" in line for line in logs) == 3  # 2 alone, 1 together
    codes = runs.diagnostics.map(lambda d: {x["code"]: x["message"] for x in d})
    assert all("cooldown_timeout" in c and "began at 80 °C, above the 50 °C" in c["cooldown_timeout"] for c in codes)
    # an instantaneous over-current event every 50 ms: each phase counted some
    assert (runs.oc_events > 0).all() and runs.oc_events_detail.str.startswith(
        "oc3 (instantaneous over-current) +").all()
    assert all("over-current event(s) during this phase" in c.get("throttle", "") for c in codes)
    table = results.alone_vs_together(results.load(out["run_dir"], samples=False).runs)
    assert {"alone_mj_per_inf", "together_mj_per_inf"} <= set(table.columns)
    assert table.set_index("model").loc["a", "alone_mj_per_inf"] == pytest.approx(alone.loc["a", "energy_mj_per_inf"])


@pytest.mark.ray
@pytest.mark.slow
def test_a_cooldown_with_no_temperature_to_read_is_refused_before_measuring(tmp_path, cls_onnx, ray_local,
                                                                           monkeypatch):
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.errors import UserError
    from trt_ray_bench.spec import spec_from_dict

    monkeypatch.setenv("TRB_SYSFS_ROOT", str(tmp_path / "no-sysfs"))
    spec = spec_from_dict({"name": "cool", "output": str(tmp_path / "results"), "schedule": "alone",
                           "models": [{"path": str(cls_onnx), "name": "a"}],
                           "timing": {"iterations": 3, "cooldown": {"temp_c": 50}}, "telemetry": {"nvml": False}})
    with pytest.raises(UserError) as e:
        run_plan(make_plan(spec), log=lambda s: None)
    assert e.value.where == "timing.cooldown" and "no temperature to wait on" in str(e.value)
    assert not (tmp_path / "results").exists()
