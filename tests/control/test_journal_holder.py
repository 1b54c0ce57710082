"""Whose journal is a killed run's: the writer's pid and start time name one process, and a
writer that has exited but was never reaped (a zombie: its parent died with it, and in a
container whose first process reaps nothing it stays one) has left its changes behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from trt_ray_bench.control import journal

WRITER = """
import sys, time
from trt_ray_bench.control import journal
journal.Journal("GPU-1").write([{"kind": "nvidia-smi-clocks", "gpu": 0, "reset": ["gpu"]}])
print("written", flush=True)
time.sleep(float(sys.argv[1]))
"""


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]


def test_a_running_writer_holds_its_journal_and_an_unreaped_dead_one_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))
    env = {**os.environ, "TRB_JOURNAL_DIR": str(tmp_path / "journal")}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, "60"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        [doc] = journal.found()
        assert doc["pid"] == proc.pid and doc["alive"]  # running: its run is still going
        proc.kill()
        t_end = time.time() + 30
        while _state(proc.pid) != "Z" and time.time() < t_end:  # exited, not reaped: Popen waits for us
            time.sleep(0.05)
        assert _state(proc.pid) == "Z"
        [doc] = journal.found()
        assert doc["pid"] == proc.pid and not doc["alive"]  # a zombie runs nothing: its changes are left
        from trt_ray_bench.control.doctor import journal_lines

        assert any("FIX:" in line and "trb doctor --restore" in line for line in journal_lines())
    finally:
        proc.kill()
        proc.wait()
