"""``clocks: {gpu_mhz: N}`` on a Jetson: the GPU's devfreq node held at one frequency.

The devfreq node is sysfs, and ``sudo`` root-only: these tests use a fake board tree
under TRB_SYSFS_ROOT (the AGX Orin's real frequency table, 306 to 1300.5 MHz, its node
found through ``device/of_node/name`` past another devfreq device) and stand-in scripts
(``standins/``) for ``sudo`` and the Jetson tools, first on PATH; the writes go through
``sudo -n tee`` as on a board where trb is not root, so their order is recorded.
"""

from __future__ import annotations

import os

import pytest

from trt_ray_bench.control import GpuDevfreq, MachineControls
from trt_ray_bench.control.devfreq import find_gpu_node
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import ClockSpec

ORIN_MHZ = "306, 408, 510, 612, 714, 816, 918, 1020, 1122, 1224, 1300"


def test_the_gpu_node_is_found_by_its_device_tree_name(fake_jetson, tmp_path, monkeypatch):
    assert find_gpu_node().name == "17000000.ga10b"  # 15340000.vic comes first and is passed over
    # Jetson Linux 36: the node is named after "gpu"; without of_node, uevent's OF_NAME tells
    other = tmp_path / "l4t36/sys/class/devfreq"
    for name in ("17000000.gpu", "15340000.vic"):
        (other / name / "device").mkdir(parents=True)
    (other / "17000000.gpu/device/uevent").write_text("DRIVER=gk20a\nOF_NAME=gpu\nOF_FULLNAME=/bus@0/gpu@17000000\n")
    monkeypatch.setenv("TRB_SYSFS_ROOT", str(tmp_path / "l4t36"))
    assert find_gpu_node().name == "17000000.gpu"
    monkeypatch.setenv("TRB_SYSFS_ROOT", str(tmp_path / "nothing"))
    assert find_gpu_node() is None


def test_raising_writes_the_max_first_and_restoring_lowers_the_min_first(fake_jetson):
    with MachineControls(ClockSpec(gpu_mhz=918)) as m:
        assert fake_jetson.gpu() == (918000000, 918000000)
    assert fake_jetson.sequence() == ["sudo -l tee max_freq", "sudo -l tee min_freq",
                                      "write max_freq 918000000", "write min_freq 918000000",
                                      "write min_freq 306000000", "write max_freq 816000000"]
    assert fake_jetson.gpu() == (306000000, 816000000)
    r = m.record
    assert r["clocks_mode"] == "gpu_mhz=918" and r["clocks_in_force"]["node"] == "17000000.ga10b"
    assert (r["clocks_in_force"]["gpu_min_mhz"], r["clocks_in_force"]["gpu_max_mhz"]) == (918.0, 918.0)
    assert r["clocks_before"]["gpu_max_mhz"] == 816.0 == r["clocks_after"]["gpu_max_mhz"]
    # 918 MHz is above MODE_50W's 816 MHz cap: allowed, and said
    assert r["warnings"] == ["clocks: the GPU is held at 918 MHz, above the 816 MHz maximum of the power mode in "
                             "force (its power budget does not hold during the run)"]


def test_lowering_writes_the_min_first_and_restoring_raises_the_max_first(fake_jetson):
    (fake_jetson.node / "min_freq").write_text("612000000\n")  # a range above the clock asked for
    with MachineControls({"gpu_mhz": 408}) as m:
        pass
    assert fake_jetson.sequence()[2:] == ["write min_freq 408000000", "write max_freq 408000000",
                                          "write max_freq 816000000", "write min_freq 612000000"]
    assert fake_jetson.gpu() == (612000000, 816000000) and m.record["warnings"] == []


def test_orins_fractional_top_clock_is_given_rounded_down(fake_jetson):
    with MachineControls({"gpu_mhz": 1300}, power_mode=0) as m:
        assert fake_jetson.gpu() == (1300500000, 1300500000)
    assert m.record["clocks_in_force"]["gpu_max_mhz"] == 1300.5 and m.record["warnings"] == []  # MAXN: no cap
    assert [s for s in fake_jetson.sequence() if s.startswith(("nvpmodel -m", "write"))] == [
        "nvpmodel -m 0", "write max_freq 1300500000", "write min_freq 1300500000",
        "write max_freq 1300500000", "write min_freq 306000000", "nvpmodel -m 3"]
    assert fake_jetson.gpu() == (306000000, 816000000)


def test_a_clock_the_gpu_does_not_have_is_refused_listing_the_valid_ones(fake_jetson):
    with pytest.raises(UserError) as e:
        MachineControls({"gpu_mhz": 900}).check()
    assert e.value.where == "clocks.gpu_mhz"
    assert str(e.value) == (f"clocks.gpu_mhz: 900 MHz is not a frequency of this Jetson's GPU; valid: {ORIN_MHZ} MHz "
                            "(17000000.ga10b/available_frequencies)")
    assert fake_jetson.calls() == []


def test_a_memory_clock_is_refused_on_a_jetson(fake_jetson):
    with pytest.raises(UserError, match=r"^clocks\.mem_mhz: a Jetson's memory \(EMC\) clock cannot be held by trb"):
        MachineControls({"gpu_mhz": 918, "mem_mhz": 3199}).check()
    assert fake_jetson.calls() == []


def test_restored_after_a_failure_inside_the_run(fake_jetson):
    with pytest.raises(RuntimeError, match="model failed"):
        with MachineControls({"gpu_mhz": 510}):
            raise RuntimeError("model failed")
    assert fake_jetson.sequence()[-2:] == ["write max_freq 816000000", "write min_freq 306000000"]
    assert fake_jetson.gpu() == (306000000, 816000000)


def test_no_sudo_rights_is_one_clear_error_before_anything_changes(fake_jetson):
    fake_jetson.configure(sudo="password")
    with pytest.raises(UserError) as e:
        MachineControls({"gpu_mhz": 918}).check()
    assert str(e.value) == (f"clocks.gpu_mhz: writing {fake_jetson.node / 'max_freq'} needs root; run as root or allow "
                            "passwordless sudo for tee (sudo -n failed: sudo: a password is required)")
    assert fake_jetson.sequence() == ["sudo -l tee max_freq"] and fake_jetson.gpu() == (306000000, 816000000)


@pytest.mark.skipif(os.geteuid() != 0, reason="writes the node directly as root")
def test_as_root_the_node_is_written_directly(fake_jetson, monkeypatch):
    monkeypatch.delenv("TRB_SUDO")
    with MachineControls({"gpu_mhz": 714}):
        assert fake_jetson.gpu() == (714000000, 714000000)
    assert fake_jetson.calls() == [] and fake_jetson.gpu() == (306000000, 816000000)


def test_devfreq_control_alone_has_the_pyperf_shape(fake_jetson):
    g = GpuDevfreq()
    assert g.available() and g.frequencies()[0] == 306000000 and g.frequencies()[-1] == 1300500000
    before = g.read()
    assert g.apply({"gpu_mhz": 612})["gpu_min_mhz"] == 612.0
    g.restore()
    g.restore()  # put back once only
    assert g.read() == before and len([s for s in fake_jetson.sequence() if s.startswith("write")]) == 4
