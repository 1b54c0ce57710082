"""Stand-ins for the hardware-only commands (``nvidia-smi``, ``nvidia-cuda-mps-control``;
on a Jetson ``jetson_clocks``, ``nvpmodel`` and ``sudo``): small Python scripts put first
on PATH, answering in the real tools' formats and keeping their state in files, so the
controls run their real commands through real processes. A Jetson's files (device tree,
release, nvpmodel.conf, the GPU's devfreq node) are a fake tree under TRB_ROOT."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

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

    def calls(self, listing: bool = False) -> List[dict]:
        """Every call of both stand-ins, in order; the GPU listing (how trb counts GPUs and
        asks whether the driver answers: ``_listing``) only with ``listing``."""
        log = self.bin / "calls.jsonl"
        every = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return every if listing else [c for c in every if not self._listing(c)]

    @staticmethod
    def _listing(c: dict) -> bool:
        """The GPU list (``--query-gpu=index,uuid,name``, no ``-i``): how trb counts and
        leases GPUs where NVML is missing, not a control command."""
        return c["tool"] == "nvidia-smi" and c["argv"][:1] == ["--query-gpu=index,uuid,name"]

    @staticmethod
    def _short(rest: List[str]) -> str:
        return ("query" if rest[0].startswith("--query-gpu=") else
                "supported" if rest == ["-q", "-d", "SUPPORTED_CLOCKS"] else " ".join(rest))

    def smi(self) -> List[str]:
        """nvidia-smi control calls in short: ``query``, ``supported``, ``-lgc 1410,1410``,
        ``-rgc`` (the GPU listing left out)."""
        out = []
        for c in self.calls():
            if c["tool"] != "nvidia-smi" or self._listing(c):
                continue
            a = c["argv"]
            assert a[:2] == ["-i", "0"], a  # always the one GPU, named
            out.append(self._short(a[2:]))
        return out

    def smi_by_gpu(self) -> Dict[int, List[str]]:
        """nvidia-smi control calls in short, per ``-i`` GPU (each names one)."""
        out: Dict[int, List[str]] = {}
        for c in self.calls():
            if c["tool"] != "nvidia-smi" or self._listing(c):
                continue
            a = c["argv"]
            assert a[0] == "-i", a
            out.setdefault(int(a[1]), []).append(self._short(a[2:]))
        return out

    def sequence(self) -> List[str]:
        """Both tools' calls in order: nvidia-smi as in ``smi()``, MPS as ``mps -d`` /
        ``mps <stdin>``."""
        smi = iter(self.smi())
        return [next(smi) if c["tool"] == "nvidia-smi" else
                "mps " + (" ".join(c["argv"]) or c["stdin"].strip()) for c in self.calls() if not self._listing(c)]

    def locks(self, gpu: int = 0) -> dict:
        path = self.bin / ("state.json" if gpu == 0 else f"state-{gpu}.json")
        return json.loads(path.read_text()) if path.exists() else {"locked_gpu": None, "locked_mem": None}

    def uuids(self) -> List[str]:
        """The fake GPUs' UUIDs, by index, as the stand-in reports them."""
        out = subprocess.run([str(self.bin / "nvidia-smi"), "--query-gpu=uuid", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "TRB_STANDIN_NOLOG": "1"}).stdout  # not one of trb's calls
        return out.split()

    def daemon_pid(self) -> Optional[int]:
        path = self.bin / "mps_daemon.pid"
        return int(path.read_text()) if path.exists() else None

    def daemon_pids(self) -> Dict[str, int]:
        """Every stand-in daemon: pid file name -> pid (one per pipe folder)."""
        return {p.name: int(p.read_text()) for p in self.bin.glob("mps_daemon*.pid")}

    def forget_calls(self) -> None:
        (self.bin / "calls.jsonl").unlink(missing_ok=True)


@pytest.fixture
def fake_nvidia(tmp_path, monkeypatch) -> FakeNvidia:
    """The stand-ins first on PATH (with this interpreter in their shebang), the GPUs
    listed by the stand-in nvidia-smi; the GPU locks and per-GPU MPS folders in this
    test's own folders (the machine's are shared with everyone's runs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, source in (("nvidia-smi", "nvidia_smi.py"), ("nvidia-cuda-mps-control", "nvidia_cuda_mps_control.py")):
        exe = bin_dir / name
        exe.write_text(f"#!{sys.executable}\n" + (STANDINS / source).read_text())
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("TRB_GPU_LOCK_DIR", str(tmp_path / "gpu-locks"))
    monkeypatch.setenv("TRB_MPS_DIR", str(tmp_path / "mps"))
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))  # the node's journal, this test's own
    monkeypatch.setenv("TRB_GPU_SOURCE", "nvidia-smi")  # the stand-in's GPUs, even where NVML has real ones
    fake = FakeNvidia(bin_dir)
    yield fake
    for pid in fake.daemon_pids().values():  # a test that failed half-way must not leave a daemon behind
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


# A Jetson AGX Orin with Jetson Linux 35.4.1, as the Jetson controls see one: its files
# under TRB_ROOT (recorded contents), its GPU devfreq node (the real Orin frequency table)
# and stand-ins for jetson_clocks, nvpmodel and sudo first on PATH.
ORIN_MODEL = "NVIDIA Jetson AGX Orin Developer Kit\x00"
ORIN_RELEASE = ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
                "DATE: Tue Aug  1 19:57:35 UTC 2023\n")
ORIN_GPU_HZ = [306000000, 408000000, 510000000, 612000000, 714000000, 816000000, 918000000, 1020000000,
               1122000000, 1224000000, 1300500000]
GPU_NODE = "17000000.ga10b"


class FakeJetson:
    """The fake board and its stand-ins: what to simulate, what they were asked, the state."""

    def __init__(self, bin_dir: Path, root: Path):
        self.bin = bin_dir
        self.root = root
        self.node = root / "sys/devices/platform" / GPU_NODE / "devfreq" / GPU_NODE  # the class entry's target

    def configure(self, **cfg) -> None:
        path = self.bin / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **cfg}))

    def calls(self) -> List[dict]:
        log = self.bin / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def forget_calls(self) -> None:
        (self.bin / "calls.jsonl").unlink(missing_ok=True)

    def sequence(self) -> List[str]:
        """What was run, in short and in order: ``sudo -l jetson_clocks``, ``jetson_clocks
        --show``, ``jetson_clocks --store`` (the file left out), ``nvpmodel -m 0``,
        ``write max_freq 918000000`` (a ``sudo -n tee`` of the GPU node). Commands run
        through sudo are listed once, by their own stand-in."""
        out = []
        for c in self.calls():
            a = c["argv"]
            if c["tool"] == "sudo":
                assert a[0] == "-n", a  # never a password prompt
                if a[1] == "-l":
                    out.append("sudo -l " + " ".join(Path(x).name if x.startswith("/") else x for x in a[2:]))
                elif a[1] == "tee":
                    out.append(f"write {Path(a[2]).name} {c['stdin'].strip()}")
            elif c["tool"] == "jetson_clocks" and a[:1] in (["--store"], ["--restore"]):
                out.append(f"jetson_clocks {a[0]}")
            else:
                out.append(" ".join([c["tool"], *a]))
        return out

    def stored_files(self) -> List[str]:
        return [c["argv"][1] for c in self.calls() if c["tool"] == "jetson_clocks" and c["argv"][:1] == ["--store"]]

    def gpu(self) -> tuple:
        """The GPU node's (min_freq, max_freq) in Hz."""
        return tuple(int((self.node / f).read_text()) for f in ("min_freq", "max_freq"))

    def state(self) -> dict:
        return json.loads((self.bin / "jetson_state.json").read_text())


def _install(bin_dir: Path, name: str, source: str) -> None:
    exe = bin_dir / name
    exe.write_text(f"#!{sys.executable}\n" + (STANDINS / source).read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def make_jetson_board(root: Path) -> None:
    """The files of the fake board (no executables)."""
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_text(ORIN_MODEL)
    (root / "etc").mkdir()
    (root / "etc/nv_tegra_release").write_text(ORIN_RELEASE)
    (root / "etc/nvpmodel.conf").write_text((STANDINS / "nvpmodel_agx_orin.conf").read_text())
    # as on the board: the class entry links to the device's devfreq folder; the device's
    # of_node names the GPU; a second devfreq device (not the GPU) must be passed over
    for name, of_name, freqs in ((GPU_NODE, "ga10b", ORIN_GPU_HZ), ("15340000.vic", "vic", [115200000, 729600000])):
        dev = root / "sys/devices/platform" / name
        node = dev / "devfreq" / name
        node.mkdir(parents=True)
        (dev / "of_node").mkdir()
        (dev / "of_node/name").write_text(of_name + "\x00")
        (node / "device").symlink_to(dev)
        (node / "available_frequencies").write_text(" ".join(map(str, freqs)) + " \n")
        (node / "governor").write_text("nvhost_podgov\n")
        for f, v in (("min_freq", freqs[0]), ("max_freq", freqs[-1]), ("cur_freq", freqs[0])):
            (node / f).write_text(f"{v}\n")
        (root / "sys/class/devfreq").mkdir(parents=True, exist_ok=True)
        (root / "sys/class/devfreq" / name).symlink_to(node)


@pytest.fixture
def fake_jetson(tmp_path, monkeypatch) -> FakeJetson:
    """A Jetson AGX Orin in MODE_50W (its default), seen through TRB_ROOT/TRB_SYSFS_ROOT,
    with jetson_clocks, nvpmodel and sudo stand-ins first on PATH; tools run through
    ``sudo -n`` (TRB_SUDO=always: these tests run as root on CI too), which has a
    NOPASSWD rule until configured otherwise (``configure(sudo="password")``)."""
    root = tmp_path / "board"
    make_jetson_board(root)
    bin_dir = tmp_path / "jetson-bin"
    bin_dir.mkdir()
    for name, source in (("jetson_clocks", "jetson_clocks.py"), ("nvpmodel", "nvpmodel.py"), ("sudo", "sudo.py")):
        _install(bin_dir, name, source)
    (bin_dir / "jetson_board.py").write_text((STANDINS / "jetson_board.py").read_text())
    (bin_dir / "config.json").write_text(json.dumps({"root": str(root)}))
    subprocess.run([sys.executable, "-c", "import jetson_board; jetson_board.initial_state(3)"], cwd=bin_dir,
                   check=True)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("TRB_ROOT", str(root))
    monkeypatch.setenv("TRB_SYSFS_ROOT", str(root))
    monkeypatch.setenv("TRB_SUDO", "always")
    monkeypatch.setenv("TRB_GPU_LOCK_DIR", str(tmp_path / "gpu-locks"))  # the board's GPU lock, this test's own
    return FakeJetson(bin_dir, root)
