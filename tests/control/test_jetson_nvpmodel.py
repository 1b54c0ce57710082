"""``power_mode: N`` on a Jetson through ``nvpmodel``, alone and with a clock mode.

``nvpmodel``, ``jetson_clocks`` and ``sudo`` are hardware-only (or root-only) commands:
these tests run the real control code against stand-in scripts (``standins/``) put first
on PATH, answering in the formats recorded on real boards, and a fake Jetson AGX Orin
under TRB_ROOT whose ``/etc/nvpmodel.conf`` defines MAXN, MODE_15W, MODE_30W and MODE_50W.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from trt_ray_bench.control import MachineControls, NvpModel
from trt_ray_bench.control.nvpmodel import mode_text, parse_conf, parse_query
from trt_ray_bench.errors import UserError

# `nvpmodel -q` as real boards print it: as root, and unprivileged on a Nano (L4T 32),
# where it adds errors about files it may not read.
QUERY_ROOT = "NV Power Mode: MAXN\n0\n"
QUERY_USER_NANO = ("NV Power Mode: 5W\n1\nNVPM ERROR: Error opening /sys/kernel/nvpmodel_emc_cap/emc_iso_cap: 13\n"
                   "NVPM ERROR: failed to read PARAM EMC: ARG MAX_FREQ: PATH "
                   "/sys/kernel/nvpmodel_emc_cap/emc_iso_cap\n")
# The mode headers of an Orin Nano's nvpmodel.conf (Jetson Linux 36.4, "super" modes).
ORIN_NANO_CONF = """< PARAM TYPE=FILE NAME=CPU_ONLINE >
CORE_0 /sys/devices/system/cpu/cpu0/online

< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
GPU MAX_FREQ 612000000

< POWER_MODEL ID=1 NAME=25W >
GPU MAX_FREQ 918000000

< POWER_MODEL ID=2 NAME=MAXN_SUPER >
GPU MAX_FREQ -1

< POWER_MODEL ID=3 NAME=7W >
GPU MAX_FREQ 408000000

< PM_CONFIG DEFAULT=1 >
"""


def test_parse_real_formats():
    assert parse_query(QUERY_ROOT) == {"id": 0, "name": "MAXN"}
    assert parse_query(QUERY_USER_NANO) == {"id": 1, "name": "5W"}
    assert parse_query("nvpmodel: command not found") is None
    assert parse_conf(ORIN_NANO_CONF) == ({0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}, 1)
    assert mode_text({"id": 2, "name": "MAXN_SUPER"}) == "MAXN_SUPER (2)"


def test_power_mode_set_for_the_run_and_set_back(fake_jetson):
    with MachineControls(power_mode=0) as m:
        assert fake_jetson.state()["mode"] == 0 and fake_jetson.gpu() == (306000000, 1300500000)
    assert fake_jetson.sequence() == ["nvpmodel -q", "sudo -l nvpmodel -m 0", "nvpmodel -q", "nvpmodel -q",
                                      "nvpmodel -m 0", "nvpmodel -q", "nvpmodel -m 3", "nvpmodel -q"]
    assert fake_jetson.state()["mode"] == 3 and fake_jetson.gpu() == (306000000, 816000000)
    r = m.record
    assert r["power_mode_asked"] == 0 and r["power_mode_before"] == {"id": 3, "name": "MODE_50W"}
    assert r["power_mode_in_force"] == {"id": 0, "name": "MAXN"} and r["power_mode_after"] == r["power_mode_before"]
    assert r["clocks_before"] is None


def test_power_mode_goes_first_and_is_set_back_last(fake_jetson):
    with MachineControls("max", power_mode=2) as m:
        assert fake_jetson.gpu() == (612000000, 612000000)  # jetson_clocks pinned the new mode's maximum
    seq = [s for s in fake_jetson.sequence() if not s.startswith(("sudo -l", "nvpmodel -q", "jetson_clocks --show"))]
    assert seq == ["nvpmodel -m 2", "jetson_clocks --store", "jetson_clocks", "jetson_clocks --restore",
                   "nvpmodel -m 3"]
    assert fake_jetson.gpu() == (306000000, 816000000) and fake_jetson.state()["online"] == [1] * 12
    # before/after are read before anything changed and after everything was set back
    assert m.record["clocks_before"]["power_mode"] == "MODE_50W" == m.record["clocks_after"]["power_mode"]
    assert m.record["clocks_in_force"]["power_mode"] == "MODE_30W"
    assert m.record["clocks_in_force"]["cpus_online"] == "0-7"


def test_restored_in_reverse_after_a_failure_inside_the_run(fake_jetson):
    with pytest.raises(RuntimeError, match="model failed"):
        with MachineControls({"gpu_mhz": 510}, power_mode=1):
            assert fake_jetson.gpu() == (510000000, 510000000) and fake_jetson.state()["mode"] == 1
            raise RuntimeError("model failed")
    assert [s for s in fake_jetson.sequence() if s.startswith(("nvpmodel -m", "write"))] == [
        "nvpmodel -m 1", "write max_freq 510000000", "write min_freq 510000000",  # above MODE_15W's 408 MHz
        "write min_freq 306000000", "write max_freq 408000000", "nvpmodel -m 3"]
    assert fake_jetson.state()["mode"] == 3 and fake_jetson.gpu() == (306000000, 816000000)


APPLY_THEN_WAIT = """
import time
from trt_ray_bench.control import MachineControls
m = MachineControls("max", power_mode=0)
m.check()
m.apply()
print("applied", flush=True)
time.sleep(60)
"""


def test_a_process_that_is_stopped_still_restores(fake_jetson):
    p = subprocess.Popen([sys.executable, "-c", APPLY_THEN_WAIT], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "applied"
        assert fake_jetson.state()["mode"] == 0
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    finally:
        p.kill()
    assert p.returncode == -signal.SIGTERM
    changes = ("nvpmodel -m", "jetson_clocks --store", "jetson_clocks --restore")
    assert [s for s in fake_jetson.sequence() if s.startswith(changes)] == [
        "nvpmodel -m 0", "jetson_clocks --store", "jetson_clocks --restore", "nvpmodel -m 3"]
    assert fake_jetson.state()["mode"] == 3 and fake_jetson.gpu() == (306000000, 816000000)


def test_an_undefined_mode_is_refused_naming_the_valid_ones(fake_jetson):
    with pytest.raises(UserError) as e:
        MachineControls("max", power_mode=7).check()
    assert str(e.value) == (f"power_mode: 7 is not a power mode of this board; its modes: 0 (MAXN), 1 (MODE_15W), "
                            f"2 (MODE_30W), 3 (MODE_50W) ({fake_jetson.root / 'etc/nvpmodel.conf'})")
    assert fake_jetson.calls() == []  # the conf file told; nothing ran


def test_the_mode_in_force_is_not_set_again(fake_jetson):
    with MachineControls(power_mode=3) as m:
        pass
    assert fake_jetson.sequence() == ["nvpmodel -q", "nvpmodel -q", "nvpmodel -q", "nvpmodel -q"]  # no sudo either
    assert m.record["power_mode_in_force"] == m.record["power_mode_before"] == {"id": 3, "name": "MODE_50W"}


def test_a_mode_that_needs_a_reboot_is_refused_and_nothing_changes(fake_jetson):
    fake_jetson.configure(reboot_modes=[1])
    with pytest.raises(UserError) as e:
        with MachineControls("max", power_mode=1):
            pytest.fail("the run must not start")
    assert str(e.value) == ("power_mode: this board needs a reboot to change to mode 1 (NVPM WARN: Reboot required "
                            "for changing to this power mode: 1); trb does not reboot: run sudo nvpmodel -m 1, "
                            "reboot, and run again")
    asked = [c for c in fake_jetson.calls() if c["tool"] == "nvpmodel" and c["argv"][:1] == ["-m"]]
    assert [(c["argv"], c["stdin"]) for c in asked] == [(["-m", "1"], "")]  # its question read end-of-input
    assert not any(s.startswith("jetson_clocks --store") for s in fake_jetson.sequence())
    assert fake_jetson.state()["mode"] == 3


def test_no_sudo_rights_is_one_clear_error_before_anything_changes(fake_jetson):
    fake_jetson.configure(sudo="password")
    with pytest.raises(UserError) as e:
        MachineControls(power_mode=0).check()
    assert str(e.value) == ("power_mode: nvpmodel needs root; run as root or allow passwordless sudo for nvpmodel "
                            "(sudo -n failed: sudo: a password is required)")
    assert fake_jetson.sequence() == ["nvpmodel -q", "sudo -l nvpmodel -m 0"]


def test_a_failed_set_back_is_a_warning_and_retried(fake_jetson):
    c = MachineControls(power_mode=0)
    c.apply()
    fake_jetson.configure(reboot_modes=[3])
    rec = c.restore()
    assert rec["warnings"] == ["not restored: power_mode: power mode 3 not set back (nvpmodel -m 3: NVPM WARN: "
                               "Reboot required for changing to this power mode: 3)"]
    fake_jetson.configure(reboot_modes=[])
    c.restore()  # still armed: the next restore (or the exit hook) tries again
    assert fake_jetson.state()["mode"] == 3


def test_power_mode_on_a_desktop_gpu_is_refused(fake_nvidia):
    with pytest.raises(UserError) as e:
        MachineControls(power_mode=0).check()
    assert e.value.where == "power_mode"
    assert str(e.value) == ("power_mode: 0: power modes are a Jetson setting (nvpmodel) and this node is not a Jetson "
                            "(it has a desktop or datacenter NVIDIA GPU); leave power_mode out")
    assert fake_nvidia.calls() == []


def test_nvpmodel_control_alone_has_the_pyperf_shape(fake_jetson):
    n = NvpModel()
    assert n.available() and n.modes() == {0: "MAXN", 1: "MODE_15W", 2: "MODE_30W", 3: "MODE_50W"}
    assert n.read() == {"id": 3, "name": "MODE_50W"}
    assert n.apply(1) == {"id": 1, "name": "MODE_15W"}
    n.restore()
    n.restore()
    assert n.read()["id"] == 3
    assert [s for s in fake_jetson.sequence() if "-m" in s] == ["nvpmodel -m 1", "nvpmodel -m 3"]
