"""Stand-ins for the hardware-only commands (``nvidia-smi``, ``nvidia-cuda-mps-control``):
small Python scripts put first on PATH, answering in the real tools' formats and keeping
their state in files, so the controls run their real commands through real processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import List, Optional

import pytest

STANDINS = Path(__file__).parent / "standins"


class FakeNvidia:
    """The folder of the stand-ins: what to simulate, and what they were asked."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir

    def configure(self, **cfg) -> None:
        path = self.bin / "config.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**old, **cfg}))

    def calls(self) -> List[dict]:
        log = self.bin / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def smi(self) -> List[str]:
        """nvidia-smi calls in short: ``query``, ``supported``, ``-lgc 1410,1410``, ``-rgc``."""
        out = []
        for c in self.calls():
            if c["tool"] != "nvidia-smi":
                continue
            a = c["argv"]
            assert a[:2] == ["-i", "0"], a  # always the one GPU, named
            rest = a[2:]
            out.append("query" if rest[0].startswith("--query-gpu=") else
                       "supported" if rest == ["-q", "-d", "SUPPORTED_CLOCKS"] else " ".join(rest))
        return out

    def sequence(self) -> List[str]:
        """Both tools' calls in order: nvidia-smi as in ``smi()``, MPS as ``mps -d`` /
        ``mps <stdin>``."""
        smi = iter(self.smi())
        return [next(smi) if c["tool"] == "nvidia-smi" else
                "mps " + (" ".join(c["argv"]) or c["stdin"].strip()) for c in self.calls()]

    def locks(self) -> dict:
        path = self.bin / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"locked_gpu": None, "locked_mem": None}

    def daemon_pid(self) -> Optional[int]:
        path = self.bin / "mps_daemon.pid"
        return int(path.read_text()) if path.exists() else None

    def forget_calls(self) -> None:
        (self.bin / "calls.jsonl").unlink(missing_ok=True)


@pytest.fixture
def fake_nvidia(tmp_path, monkeypatch) -> FakeNvidia:
    """The stand-ins first on PATH (with this interpreter in their shebang)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, source in (("nvidia-smi", "nvidia_smi.py"), ("nvidia-cuda-mps-control", "nvidia_cuda_mps_control.py")):
        exe = bin_dir / name
        exe.write_text(f"#!{sys.executable}\n" + (STANDINS / source).read_text())
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    fake = FakeNvidia(bin_dir)
    yield fake
    pid = fake.daemon_pid()
    if pid:  # a test that failed half-way must not leave the stand-in daemon behind
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


@pytest.fixture
def fake_mps(fake_nvidia) -> FakeNvidia:
    """The stand-ins, on a machine where no real MPS control daemon runs (it would be
    found, correctly, and change what these tests expect)."""
    from trt_ray_bench.control.mps import daemon_pids

    if daemon_pids():
        pytest.skip("a real MPS control daemon runs on this machine")
    return fake_nvidia
