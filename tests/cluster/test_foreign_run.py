"""A real ``trb run`` (its own local Ray, ONNX Runtime on the CPU) on a machine that
something else is using: a CPU-burning process and another trb run started by the test
(children of pytest, not of the run) are recorded and named in the rows measured under
them; the same run on a quiet machine flags nothing, its own processes (driver, Ray,
model actor, Monitor) never counting as foreign."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import psutil
import pytest

from trt_ray_bench import results
from trt_ray_bench.results.diagnose import THRESHOLDS
from trt_ray_bench.results.foreign import in_window
from trt_ray_bench.telemetry.foreign import Accounting, driver_identity

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.alone]  # alone: a quiet machine


def _run(tmp_path, onnx, name: str):
    """``trb run`` of one model alone for 3 s; its row, its foreign telemetry, what that
    says of the row's window, its output, the pids of the run's own processes (the driver
    and its descendants, watched while it ran) and what an observer of the machine outside
    this test's processes saw meanwhile (its foreign CPU per pass, other trb runs)."""
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(json.dumps({
        "name": name, "output": str(tmp_path / "results"), "schedule": "alone",
        "models": [{"path": str(onnx), "name": "cls", "options": {"threads": 1}}],
        "timing": {"duration_s": 3.0, "warmup": 2}, "telemetry": {"interval_s": 0.1},
    }))
    observer = Accounting(driver_identity())  # this test and all below it are its own
    observer.update()
    p = subprocess.Popen([sys.executable, "-m", "trt_ray_bench.cli", "run", "-v", str(spec)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    ours = {p.pid}
    seen = []  # the observer's passes
    done = threading.Event()

    def watch():
        while not done.wait(0.5):
            seen.append({r[0]: r[1] for r in observer.update()[1]})
            snap = observer.snap
            ours.update(q for q in snap if _descends(snap, q, p.pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = p.communicate(timeout=300)
    finally:
        done.set()
        watcher.join()
    assert p.returncode == 0, out + err
    r = results.load(tmp_path / "results" / name)
    assert len(r.runs) == 1 and r.runs.status.iloc[0] == "ok"
    row = r.runs.iloc[0]
    tel = r.telemetry[r.telemetry.source == "foreign"]
    f = in_window(tel.assign(avg_s=tel.avg_s.astype(float)), int(row.window_start_ns), int(row.window_end_ns))
    return row, tel, f, out + err, ours, seen  # -v: every warning message, on stderr


def _descends(snap, pid: int, ancestor: int) -> bool:
    hops = 0
    while pid in snap and hops < 64:
        if pid == ancestor:
            return True
        pid, hops = snap[pid][1], hops + 1
    return False


def _foreign_messages(row):
    return [d["message"] for d in row.diagnostics if d["code"] == "foreign_load"]


def _named_pids(tel):
    """Every pid the foreign telemetry names (processes, other runs)."""
    pids = set(tel[tel.metric.str.startswith(("foreign_pid:", "foreign_gpu_pid:"))].value.astype(int))
    return pids | {int(m.split(":")[1]) for m in tel.metric if m.startswith("foreign_trb_run:")}


def test_the_runs_own_processes_are_never_foreign_and_a_quiet_machine_flags_nothing(tmp_path, cls_onnx):
    row, tel, f, out, ours, seen = _run(tmp_path, cls_onnx, "quiet")
    print(f"\nforeign CPU in the window: {f['cpu_pct']:.1f} % of a core; {f['names'][:3]}; "
          f"the run's processes: {len(ours)}; one pass: {tel[tel.metric == 'scan_ms'].value.median():.2f} ms")
    assert {"foreign_cpu_pct", "foreign_trb_runs", "scan_ms"} <= set(tel.metric)
    assert len(ours) >= 5  # the driver, its local Ray, the Monitor, the model actor
    assert not _named_pids(tel) & ours, (sorted(_named_pids(tel) & ours), tel.metric.unique())
    assert tel[tel.metric == "scan_ms"].value.median() < 10
    # Whether nothing is flagged depends on the machine: on CI nothing else runs, and this
    # test (pytest, the run's parent) waits idle; a shared machine may be busy meanwhile.
    busy = [s for s in seen if s.get("foreign_cpu_pct", 0) > THRESHOLDS["foreign_cpu_pct"] / 2
            or s.get("foreign_trb_runs")]
    if busy:
        pytest.skip(f"other processes used this machine during the run ({busy[0]}): the run's own processes were "
                    "not counted as foreign; whether nothing is flagged needs a quiet machine")
    assert _foreign_messages(row) == [], row.diagnostics
    assert f["cpu_pct"] < THRESHOLDS["foreign_cpu_pct"]
    assert (tel[tel.metric == "foreign_trb_runs"].value == 0).all()


def test_a_burner_and_another_trb_run_are_named(tmp_path, cls_onnx):
    fake = tmp_path / "trb"  # another user's `trb run`, as its command line reads
    fake.write_text("import time\ntime.sleep(300)\n")
    other = subprocess.Popen([sys.executable, str(fake), "run", "theirs.yaml"])
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        name = psutil.Process(burner.pid).name()
        row, tel, f, out, ours, _ = _run(tmp_path, cls_onnx, "shared")
        burned = psutil.Process(burner.pid).cpu_times()
    finally:
        burner.kill()
        other.kill()
        burner.wait()
        other.wait()
    print(f"\nforeign CPU in the window: {f['cpu_pct']:.0f} % of a core; {f['names'][:3]}; trb runs {f['trb']}; "
          f"the burner's own CPU over its life: {burned.user + burned.system:.1f} s")
    msgs = _foreign_messages(row)
    assert len(msgs) == 1, row.diagnostics
    msg = msgs[0]
    assert msg.startswith("other processes used the machine during this window: ")
    assert f"{name} (pid" in msg and str(burner.pid) in msg.split(";")[0]
    assert f"another trb run (pid {other.pid}) was running" in msg
    assert msg.endswith("latencies may include their contention")
    assert msg in row.warnings and msg in out  # printed by trb run
    assert f["cpu_pct"] > 30  # a core's worth, shared with the model on a 2-core machine
    py = dict((n, pids) for n, _, pids in f["names"])
    assert burner.pid in py[name]
    assert not _named_pids(tel) & ours
