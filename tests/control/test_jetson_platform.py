"""What a Jetson tells about itself (provenance: board, L4T, JetPack, power mode, GPU
range) and what ``trb doctor`` says about any machine.

The Jetson files are a fake board tree under TRB_ROOT with recorded contents;
``nvpmodel``, ``jetson_clocks``, ``sudo``, ``dpkg-query`` and ``nvidia-smi`` are stand-in
scripts (``standins/``, or written here) first on PATH, standing in for hardware-only
or root-only commands.
"""

from __future__ import annotations

import getpass
import shutil
import stat
import sys

import pytest

from trt_ray_bench.control import collect_provenance, detect_platform, doctor_lines
from trt_ray_bench.control.platform import jetpack_version, l4t_release
from trt_ray_bench.results.schema import PROVENANCE_FIELDS

JETSON_FIELDS = ("l4t", "jetpack", "power_mode", "gpu_freq_range_mhz")
# /etc/nv_tegra_release of an Orin Nano with Jetson Linux 36.4.4 (JetPack 6.2.1), verbatim
L4T_36_4_4 = ("# R36 (release), REVISION: 4.4, GCID: 41062509, BOARD: generic, EABI: aarch64, DATE: Mon Jun 16 "
              "16:07:13 UTC 2025\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")


def _dpkg_query(bin_dir, versions: dict) -> None:
    """A stand-in dpkg-query knowing ``versions`` ({package: version}) and nothing else."""
    exe = bin_dir / "dpkg-query"
    exe.write_text(f"#!{sys.executable}\nimport sys\nv = {versions!r}.get(sys.argv[-1])\nif v is None:\n"
                   "    print('dpkg-query: no packages found matching ' + sys.argv[-1], file=sys.stderr)\n"
                   "    sys.exit(1)\nsys.stdout.write(v)\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def orin(fake_jetson):
    _dpkg_query(fake_jetson.bin, {})  # a board whose image has no nvidia-jetpack package
    return fake_jetson


def test_provenance_of_a_jetson(orin):
    p = collect_provenance()
    assert detect_platform() == {"kind": "jetson", "board": "NVIDIA Jetson AGX Orin Developer Kit"}
    assert (p["platform"], p["board"]) == ("jetson", "NVIDIA Jetson AGX Orin Developer Kit")
    assert {k: p[k] for k in JETSON_FIELDS} == {"l4t": "35.4.1", "jetpack": "5.1.2", "power_mode": "MODE_50W (3)",
                                                "gpu_freq_range_mhz": "306-816"}
    assert set(JETSON_FIELDS) <= {name for name, _ in PROVENANCE_FIELDS}
    assert [c["tool"] for c in orin.calls()] == ["nvpmodel"]  # -q, unprivileged: provenance never uses sudo


def test_cuda_version_of_a_jetson_is_jetpacks(orin):
    """The generation's CUDA, a run condition (results.compare): JetPack 5 and later
    write version.json, JetPack 4 version.txt; none of them: empty, not a failure."""
    cuda = orin.root / "usr/local/cuda"
    cuda.mkdir(parents=True, exist_ok=True)
    assert collect_provenance()["cuda_version"] == ""
    (cuda / "version.txt").write_text("CUDA Version 10.2.300\n")
    assert collect_provenance()["cuda_version"] == "10.2"
    (cuda / "version.json").write_text('{"cuda": {"name": "CUDA SDK", "version": "11.4.315"}}')
    assert collect_provenance()["cuda_version"] == "11.4"
    assert "cuda_version" in {name for name, _ in PROVENANCE_FIELDS}


def test_jetpack_from_its_package_and_l4t_from_l4t_core(orin):
    _dpkg_query(orin.bin, {"nvidia-jetpack": "5.1.2-b104"})
    assert collect_provenance()["jetpack"] == "5.1.2"
    (orin.root / "etc/nv_tegra_release").unlink()
    _dpkg_query(orin.bin, {"nvidia-l4t-core": "36.4.4-20250616085344"})
    p = collect_provenance()
    assert (p["l4t"], p["jetpack"]) == ("36.4.4", "6.2.1")  # NVIDIA's table: L4T 36.4.4 is JetPack 6.2.1


@pytest.mark.parametrize("release, l4t, jetpack", [
    (L4T_36_4_4, "36.4.4", "6.2.1"),
    ("# R36 (release), REVISION: 5.2, GCID: 46426093, BOARD: generic, EABI: aarch64\n", "36.5.2", "6.x"),
    ("# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref, EABI: aarch64\n", "35.5.0", "5.1.3"),
    ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64\n", "32.7.1", "4.6.1"),
    ("garbage", "", ""),
])
def test_l4t_release_and_jetpack_from_release_files(orin, release, l4t, jetpack):
    (orin.root / "etc/nv_tegra_release").write_text(release)
    assert l4t_release() == l4t and jetpack_version(l4t) == jetpack


def test_what_cannot_be_read_is_empty_never_an_error(orin, monkeypatch):
    (orin.root / "etc/nv_tegra_release").unlink()
    (orin.bin / "nvpmodel").write_text("#!/bin/sh\necho 'NVPM ERROR: failed to read PARAM' >&2\nexit 255\n")
    for f in ("min_freq", "max_freq"):
        (orin.node / f).unlink()
    p = collect_provenance()
    assert p["platform"] == "jetson" and {k: p[k] for k in JETSON_FIELDS} == dict.fromkeys(JETSON_FIELDS, "")
    monkeypatch.setenv("PATH", str(orin.bin / "nowhere"))
    assert collect_provenance()["power_mode"] == ""


def test_provenance_elsewhere_has_the_jetson_fields_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("TRB_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    p = collect_provenance()
    assert p["platform"] == "cpu" and all(p[k] == "" for k in JETSON_FIELDS)


def test_doctor_on_a_jetson(orin):
    lines = doctor_lines()
    assert lines[0] == "platform      Jetson: NVIDIA Jetson AGX Orin Developer Kit"
    assert "jetson linux  L4T 35.4.1, JetPack 5.1.2" in lines
    assert "tegrastats    MISSING: not on PATH; Jetson telemetry (GPU load, power rails) is off" in lines
    assert ("power mode    MODE_50W (3); modes: 0 (MAXN), 1 (MODE_15W), 2 (MODE_30W), 3 (MODE_50W)") in lines
    assert f"nvpmodel      {orin.bin / 'nvpmodel'}; root: yes (passwordless sudo)" in lines
    assert f"jetson_clocks {orin.bin / 'jetson_clocks'}; root: yes (passwordless sudo)" in lines
    assert ("gpu devfreq   17000000.ga10b: now 306-816 MHz; clocks: {gpu_mhz: N} takes 306, 408, 510, 612, 714, "
            "816, 918, 1020, 1122, 1224, 1300 MHz") in lines
    # nothing to fix for the controls (this fake board has no TensorRT: test_jetson_install checks that part)
    assert [line for line in lines if "FIX" in line] == [line for line in lines if line.startswith("trt module    FIX")]
    assert [c for c in orin.calls() if c["tool"] == "nvpmodel" and c["argv"] != ["-q"]] == []  # nothing set
    assert orin.state()["mode"] == 3 and orin.gpu() == (306000000, 816000000)


def test_doctor_names_what_to_fix_on_a_jetson(orin):
    orin.configure(sudo="password")
    (orin.bin / "tegrastats").write_text("#!/bin/sh\n")
    (orin.bin / "tegrastats").chmod(0o755)
    (orin.bin / "jetson_clocks").unlink()
    lines = doctor_lines()
    assert f"tegrastats    {orin.bin / 'tegrastats'}" in lines
    assert (f"nvpmodel      {orin.bin / 'nvpmodel'}; FIX: power_mode needs root: run as root or allow passwordless "
            "sudo for nvpmodel (sudo -n failed: sudo: a password is required)") in lines
    assert "jetson_clocks MISSING: not on PATH; clocks: max is refused" in lines
    assert ("              FIX: clocks: {gpu_mhz: N} needs root: run as root or allow passwordless sudo for tee "
            "(sudo -n failed: sudo: a password is required)") in lines
    tee = shutil.which("tee")
    assert lines[-1] == (f"sudoers       e.g. in /etc/sudoers.d/trb (visudo -f): {getpass.getuser()} ALL=(root) "
                         f"NOPASSWD: {orin.bin / 'nvpmodel'}, {tee} {orin.node / 'max_freq'}, {tee} "
                         f"{orin.node / 'min_freq'}")


def test_doctor_on_a_desktop_gpu(fake_nvidia, tmp_path, monkeypatch):
    monkeypatch.setenv("TRB_ROOT", str(tmp_path))
    lines = doctor_lines()
    assert lines[:3] == ["platform      desktop or datacenter NVIDIA GPU",
                         f"nvidia-smi    {fake_nvidia.bin / 'nvidia-smi'}",
                         "gpu clocks    GPU 0: 110 graphics clocks 345..1980 MHz; memory 2619, 1593 MHz"]
    assert lines[3].startswith("clock locks   ")
    assert lines[4].startswith(f"mps           {fake_nvidia.bin / 'nvidia-cuda-mps-control'}")
    assert fake_nvidia.smi() == ["supported"]  # asked, changed nothing


def test_doctor_on_a_cpu_only_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("TRB_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert doctor_lines() == [
        "platform      CPU only (no NVIDIA GPU found)",
        "runs here     ONNX Runtime on the CPU; clocks, power_mode and mps are refused",
    ]
