"""``clocks: max`` on a Jetson through ``jetson_clocks``: store, pin, restore.

``jetson_clocks``, ``nvpmodel`` and ``sudo`` are hardware-only (or root-only) commands:
these tests run the real control code against stand-in scripts (``standins/``) put first
on PATH, a Jetson AGX Orin whose ``--show`` replays the format recorded on real boards,
and a fake board tree under TRB_ROOT; they check the exact commands given.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trt_ray_bench.control import JetsonClocks, MachineControls
from trt_ray_bench.control.jetson_clocks import parse_show
from trt_ray_bench.errors import UserError

# `sudo jetson_clocks --show` as printed by real boards (abridged where marked): an AGX
# Orin 64GB on Jetson Linux 35 in MAXN, a Jetson TX1 (L4T 28), and an Orin Nano on
# Jetson Linux 36, whose CPU lines have no "Online=" (CPUs left out).
AGX_ORIN_MAXN = """SOC family:tegra234  Machine:Jetson AGX Orin
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=1 c7=1 
cpu1: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=1 c7=1 
cpu10: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=1113600 IdleStates: WFI=1 c7=1 
cpu11: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=1113600 IdleStates: WFI=1 c7=1 
cpu2: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=1 c7=1 
GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=2133000000 FreqOverride=0
DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA0_FALCON: Online=1 MinFreq=0 MaxFreq=844800000 CurrentFreq=844800000
PVA0_VPS0: Online=1 MinFreq=0 MaxFreq=1152000000 CurrentFreq=1152000000
PVA0_AXI:  Online=1 MinFreq=0 MaxFreq=832000000 CurrentFreq=832000000
FAN Dynamic Speed control=active hwmon2_pwm1=55
NV Power Mode: MAXN
"""
TX1 = """SOC family:tegra210  Machine:jetson_tx1
Online CPUs: 0-3
CPU Cluster Switching: Disabled
cpu0: Gonvernor=interactive MinFreq=1734000 MaxFreq=1734000 CurrentFreq=1734000
cpu1: Gonvernor=interactive MinFreq=1734000 MaxFreq=1734000 CurrentFreq=1734000
GPU MinFreq=998400000 MaxFreq=998400000 CurrentFreq=998400000
EMC MinFreq=12750000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=1
Fan: speed=255
"""
ORIN_NANO_L4T36 = """SOC family:tegra234  Machine:NVIDIA Jetson Orin Nano Developer Kit
Online CPUs: 0-5, Offline CPUs: 
cpu0:  Governor=schedutil MinFreq=729600 MaxFreq=1510400 CurrentFreq=1420800 IdleStates: WFI=1 c7=1 
cpu5:  Governor=schedutil MinFreq=729600 MaxFreq=1510400 CurrentFreq=1036800 IdleStates: WFI=1 c7=1 
GPU MinFreq=306000000 MaxFreq=624750000 CurrentFreq=306000000
Active GPU TPCs: 4
EMC MinFreq=204000000 MaxFreq=2133000000 CurrentFreq=2133000000
FAN Dynamic Speed Control=nvfancontrol hwmon0_pwm1=62
NV Power Mode: 15W
"""


def test_parse_show_of_real_boards():
    s = parse_show(AGX_ORIN_MAXN)
    assert (s["gpu_min_mhz"], s["gpu_max_mhz"], s["gpu_cur_mhz"]) == (306.0, 1300.5, 306.0)
    assert (s["emc_min_mhz"], s["emc_max_mhz"], s["emc_cur_mhz"], s["emc_override"]) == (204.0, 3199.0, 2133.0, 0)
    assert s["soc"] == "tegra234" and s["machine"] == "Jetson AGX Orin" and s["power_mode"] == "MAXN"
    assert list(s["cpus"]) == ["cpu0", "cpu1", "cpu2", "cpu10", "cpu11"]  # the DLA/PVA lines are not CPUs
    assert s["cpus"]["cpu10"] == {"online": 1, "governor": "schedutil", "min_mhz": 729.6, "max_mhz": 2201.6,
                                  "cur_mhz": 1113.6}
    tx1 = parse_show(TX1)
    assert tx1["cpus"]["cpu0"] == {"governor": "interactive", "min_mhz": 1734.0, "max_mhz": 1734.0, "cur_mhz": 1734.0}
    assert tx1["gpu_max_mhz"] == 998.4 and tx1["emc_override"] == 1 and "power_mode" not in tx1
    nano = parse_show(ORIN_NANO_L4T36)
    assert nano["cpus_online"] == "0-5" and nano["cpus"]["cpu5"]["cur_mhz"] == 1036.8
    assert nano["gpu_max_mhz"] == 624.75 and "emc_override" not in nano and nano["power_mode"] == "15W"


def test_max_stores_pins_and_restores(fake_jetson):
    with MachineControls("max") as m:
        in_force = fake_jetson.gpu()
    assert in_force == (816000000, 816000000)  # pinned at the power mode's maximum
    assert fake_jetson.sequence() == ["sudo -l jetson_clocks", "jetson_clocks --show", "jetson_clocks --store",
                                      "jetson_clocks", "jetson_clocks --show", "jetson_clocks --restore",
                                      "jetson_clocks --show"]
    assert fake_jetson.gpu() == (306000000, 816000000)  # the governor's range again
    r = m.record
    assert r["clocks_mode"] == "max" and r["clocks_before"]["tool"] == "jetson_clocks"
    assert r["clocks_before"]["gpu_min_mhz"] == 306.0 and r["clocks_in_force"]["gpu_min_mhz"] == 816.0
    assert r["clocks_in_force"]["emc_override"] == 1 and r["clocks_after"] == r["clocks_before"]
    assert r["power_mode_before"] is None and r["warnings"] == []


def test_the_settings_are_stored_in_a_private_folder_removed_after(fake_jetson):
    c = JetsonClocks()
    c.check("max")
    c.apply("max")
    store = Path(fake_jetson.stored_files()[0])
    assert store.exists() and store.parent.name.startswith("trb-jetson-clocks-")
    from trt_ray_bench.control import journal

    assert store.parent.parent == journal.journal_dir()  # kept across reboots, as the journal is (not /tmp)
    assert oct(store.parent.stat().st_mode & 0o777) == "0o700"
    assert store.read_text().splitlines()[-3].endswith("/17000000.ga10b/max_freq:816000000")  # path:value lines
    c.restore()
    c.restore()  # restored once only
    assert not store.parent.exists()
    assert [s for s in fake_jetson.sequence() if s.startswith("jetson_clocks --r")] == ["jetson_clocks --restore"]


def test_restored_after_a_failure_inside_the_run(fake_jetson):
    with pytest.raises(ZeroDivisionError):
        with MachineControls("max"):
            1 / 0
    assert fake_jetson.sequence()[-2:] == ["jetson_clocks --restore", "jetson_clocks --show"]
    assert fake_jetson.gpu() == (306000000, 816000000) and fake_jetson.state()["emc_lock"] == 0


def test_a_half_applied_jetson_clocks_is_restored(fake_jetson):
    fake_jetson.configure(jetson_clocks_fails=True)
    with pytest.raises(UserError, match=r"^clocks: jetson_clocks failed: Error: failed to set EMC clock"):
        with MachineControls("max"):
            pytest.fail("the run must not start")
    assert fake_jetson.sequence()[-3:] == ["jetson_clocks", "jetson_clocks --restore", "jetson_clocks --show"]
    assert fake_jetson.gpu() == (306000000, 816000000)  # the GPU it had pinned is free again


def test_no_sudo_rights_is_one_clear_error_before_anything_changes(fake_jetson):
    fake_jetson.configure(sudo="password")
    with pytest.raises(UserError) as e:
        MachineControls("max").check()
    assert str(e.value) == ("clocks: jetson_clocks needs root; run as root or allow passwordless sudo for "
                            "jetson_clocks (sudo -n failed: sudo: a password is required)")
    assert fake_jetson.sequence() == ["sudo -l jetson_clocks"]


def test_default_runs_no_command_at_all_even_without_sudo_rights(fake_jetson):
    fake_jetson.configure(sudo="password")
    with MachineControls("default") as m:
        pass
    assert fake_jetson.calls() == []
    assert m.record["clocks_before"] is None and m.record["power_mode_before"] is None


def test_jetson_clocks_missing_is_refused(fake_jetson, monkeypatch):
    (fake_jetson.bin / "jetson_clocks").unlink()
    monkeypatch.setenv("PATH", str(fake_jetson.bin))
    with pytest.raises(UserError, match=r"^clocks: jetson_clocks not found on PATH .*use clocks: default$"):
        MachineControls("max").check()


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the tools directly as root")
def test_as_root_the_tools_run_without_sudo(fake_jetson, monkeypatch):
    monkeypatch.delenv("TRB_SUDO")
    with MachineControls("max"):
        pass
    assert [c["tool"] for c in fake_jetson.calls()] == ["jetson_clocks"] * 6  # no sudo -l, no sudo
