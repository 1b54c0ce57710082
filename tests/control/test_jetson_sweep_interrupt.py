"""Ctrl-C during a sweep, as a user presses it in a terminal: SIGINT to the whole
process group of a real `trb sweep` (which starts its own local Ray). The node is the
fake Jetson AGX Orin of conftest's ``fake_jetson``: ``jetson_clocks``, ``nvpmodel`` and
``sudo`` are stand-in executables first on PATH (hardware-only commands) that record
their argv and keep the board's state in files under TRB_ROOT."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MAX = (816000000, 816000000)  # the fake Orin's GPU range under jetson_clocks in MODE_50W
DEFAULT = (306000000, 816000000)


def test_ctrl_c_stops_the_sweep_and_restores_the_clocks(tmp_path, cls_onnx, fake_jetson):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "name: interrupted\n"
        "base:\n"
        f"  output: {tmp_path / 'results'}\n"
        "  schedule: alone\n  clocks: max\n"
        f"  models: [{{path: {cls_onnx}, name: cls, options: {{threads: 1}}}}]\n"
        "  timing: {iterations: null, duration_s: 120, warmup: 1, gap_s: 0.01}\n"
        "  telemetry: {tegrastats: false, interval_s: 0.1}\n"
        "axes:\n  timing.gap_s: [0.01, 0.02]\n")
    logs = (tmp_path / "out.txt", tmp_path / "err.txt")
    with open(logs[0], "w") as fo, open(logs[1], "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "trt_ray_bench.cli", "sweep", str(sweep)], text=True,
                                stdout=fo, stderr=fe, start_new_session=True)
    try:
        t_end = time.time() + 120
        while fake_jetson.gpu() != MAX and time.time() < t_end and proc.poll() is None:
            time.sleep(0.2)
        assert fake_jetson.gpu() == MAX, logs[0].read_text() + logs[1].read_text()  # the first point measures
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        proc.wait(timeout=150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out, err = logs[0].read_text(), logs[1].read_text()
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, out, err)
    assert fake_jetson.gpu() == DEFAULT  # clocks restored
    changes = [s for s in fake_jetson.sequence() if not s.startswith(("sudo -l", "nvpmodel -q", "jetson_clocks --show"))]
    assert changes[:2] == ["jetson_clocks --store", "jetson_clocks"] and changes[-1] == "jetson_clocks --restore"
    assert changes.count("jetson_clocks --restore") >= 1 and "nvpmodel -m" not in " ".join(changes)
    root = tmp_path / "results" / "interrupted"
    log = [json.loads(s) for s in (root / "sweep-log.jsonl").read_text().splitlines()]
    assert [r["status"] for r in log] == ["interrupted"] and log[0]["reason"] == "Ctrl-C"
    assert not [p for p in root.iterdir() if p.is_dir()]  # no run folder, half-written or not
