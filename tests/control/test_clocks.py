"""Clock modes of a desktop / datacenter GPU through nvidia-smi.

``nvidia-smi`` is a hardware-only command: these tests run the real control code against
a stand-in script (``standins/nvidia_smi.py``, an H100 SXM in the real tool's formats)
put first on PATH, and check the exact commands it was given.
"""

from __future__ import annotations

import pytest

from trt_ray_bench.control import MachineControls, NvidiaSmiClocks
from trt_ray_bench.control.clocks import QUERY, nearest, parse_query, parse_supported
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import ClockSpec

# What the real tool prints for a GeForce card with several memory clocks (RTX 30-class,
# abridged), and for one that reports none.
GEFORCE = """
==============NVSMI LOG==============

Timestamp                                 : Tue Feb 13 10:11:12 2024
Driver Version                            : 535.154.05
CUDA Version                              : 12.2

Attached GPUs                             : 1
GPU 00000000:01:00.0
    Supported Clocks
        Memory                            : 9501 MHz
            Graphics                      : 2100 MHz
            Graphics                      : 2085 MHz
            Graphics                      : 210 MHz
        Memory                            : 405 MHz
            Graphics                      : 420 MHz
            Graphics                      : 405 MHz
"""
NOT_AVAILABLE = """
Attached GPUs                             : 1
GPU 00000000:01:00.0
    Supported Clocks                      : N/A
"""


def test_parse_supported_clocks_of_real_formats():
    assert parse_supported(GEFORCE) == {9501: [2100, 2085, 210], 405: [420, 405]}
    assert parse_supported(NOT_AVAILABLE) == {}


def test_parse_query_keeps_numbers_and_missing_values():
    line = "NVIDIA GeForce RTX 3090, 210, 405, 2100, 9751, [N/A], [N/A], Disabled"
    assert parse_query(line) == {
        "name": "NVIDIA GeForce RTX 3090", "sm_mhz": 210, "mem_mhz": 405, "max_sm_mhz": 2100, "max_mem_mhz": 9751,
        "app_sm_mhz": None, "app_mem_mhz": None, "persistence_mode": "Disabled",
    }
    assert list(QUERY)[1:3] == ["clocks.sm", "clocks.mem"]


def test_nearest_supported_values():
    h100 = list(range(1980, 344, -15))
    assert nearest(h100, 1400) == [1395, 1410]
    assert nearest(h100, 5000) == [1965, 1980]


def test_fixed_clock_locked_read_back_and_reset(fake_nvidia):
    with MachineControls(ClockSpec(gpu_mhz=1410)) as m:
        assert fake_nvidia.locks()["locked_gpu"] == [1410, 1410]
        assert fake_nvidia.smi() == ["supported", "query", "-lgc 1410,1410", "query"]
    assert fake_nvidia.smi() == ["supported", "query", "-lgc 1410,1410", "query", "-rgc", "query"]
    assert fake_nvidia.locks() == {"locked_gpu": None, "locked_mem": None}
    r = m.record
    assert r["clocks_mode"] == "gpu_mhz=1410"
    assert r["clocks_before"]["sm_mhz"] == 345 and r["clocks_after"]["sm_mhz"] == 345
    assert r["clocks_in_force"]["sm_mhz"] == 1410 and r["clocks_in_force"]["locked_gpu_mhz"] == [1410, 1410]
    assert r["clocks_in_force"]["locked_mem_mhz"] is None and r["clocks_in_force"]["name"] == "NVIDIA H100 80GB HBM3"
    # the exact command: this GPU, machine-readable, no shell
    query = fake_nvidia.calls()[1]["argv"]
    assert query == ["-i", "0", "--query-gpu=" + ",".join(QUERY), "--format=csv,noheader,nounits"]


def test_a_lock_is_noted_before_nvidia_smi_runs(fake_nvidia):
    """A signal that arrives while ``nvidia-smi -lgc`` runs restores (the handler calls
    ``restore``): the lock must be known by then, or the reset is skipped, the journal
    cleared, and the GPU stays locked. What restore would see at that moment is read from
    the stand-in's own call (the real nvidia-smi stand-in runs underneath)."""
    c = NvidiaSmiClocks(0)
    real, seen = c._smi, {}

    def smi(flag, *rest):
        seen.setdefault(flag, dict(c.locked))
        return real(flag, *rest)

    c._smi = smi
    c.apply(c.check("max"))
    assert seen["-lgc"] == {"gpu": (1980, 1980)}  # noted before the tool ran
    c.restore()
    assert fake_nvidia.locks() == {"locked_gpu": None, "locked_mem": None} and c.locked == {}


def test_a_lower_memory_clock_is_locked_too(fake_nvidia):
    with MachineControls({"gpu_mhz": 1410, "mem_mhz": 1593}) as m:
        assert fake_nvidia.locks() == {"locked_gpu": [1410, 1410], "locked_mem": [1593, 1593]}
    assert fake_nvidia.smi() == ["supported", "query", "-lgc 1410,1410", "-lmc 1593,1593", "query",
                                 "-rgc", "-rmc", "query"]
    assert m.record["clocks_in_force"]["locked_mem_mhz"] == [1593, 1593]
    assert m.record["clocks_in_force"]["mem_mhz"] == 1593 and m.record["clocks_after"]["mem_mhz"] == 2619


def test_max_locks_the_highest_graphics_and_memory_clocks(fake_nvidia):
    with MachineControls("max") as m:
        pass
    assert fake_nvidia.smi() == ["supported", "query", "-lgc 1980,1980", "-lmc 2619,2619", "query",
                                 "-rgc", "-rmc", "query"]
    assert m.record["clocks_in_force"]["locked_mem_mhz"] == [2619, 2619] and m.record["warnings"] == []


def test_memory_lock_not_supported_is_recorded_and_not_reset(fake_nvidia):
    fake_nvidia.configure(lmc_supported=False)
    with MachineControls({"gpu_mhz": 1980, "mem_mhz": 2619}) as m:
        pass
    assert fake_nvidia.smi() == ["supported", "query", "-lgc 1980,1980", "-lmc 2619,2619", "query", "-rgc", "query"]
    assert m.record["clocks_in_force"]["locked_mem_mhz"] == "not supported"
    assert m.record["clocks_mode"] == "gpu_mhz=1980,mem_mhz=2619"
    assert any("cannot lock its memory clock" in w for w in m.record["warnings"])


def test_restored_after_a_failure_inside_the_run(fake_nvidia):
    with pytest.raises(ZeroDivisionError):
        with MachineControls({"gpu_mhz": 1410}):
            1 / 0
    assert fake_nvidia.smi()[-2:] == ["-rgc", "query"]
    assert fake_nvidia.locks()["locked_gpu"] is None


@pytest.mark.parametrize("mhz, nearest_text", [(1400, "nearest: 1395, 1410 MHz"), (2100, "nearest: 1965, 1980 MHz")])
def test_unsupported_gpu_clock_refused_before_any_lock(fake_nvidia, mhz, nearest_text):
    m = MachineControls({"gpu_mhz": mhz})
    with pytest.raises(UserError) as e:
        m.check()
    assert e.value.where == "clocks.gpu_mhz"
    assert str(e.value) == (f"clocks.gpu_mhz: {mhz} MHz is not a graphics clock GPU 0 supports; {nearest_text} "
                            "(supported: 345..1980 MHz, 110 values; nvidia-smi -q -d SUPPORTED_CLOCKS lists them)")
    assert fake_nvidia.smi() == ["supported"]  # read the list, touched nothing


def test_unsupported_memory_clock_lists_the_supported_ones(fake_nvidia):
    with pytest.raises(UserError, match=r"^clocks\.mem_mhz: 1000 MHz is not a memory clock GPU 0 supports; "
                                        r"supported: 2619, 1593 MHz$"):
        MachineControls({"gpu_mhz": 1410, "mem_mhz": 1000}).check()
    assert fake_nvidia.smi() == ["supported"]


def test_no_permission_is_one_clear_error_and_changes_nothing(fake_nvidia):
    fake_nvidia.configure(no_permission=True)
    m = MachineControls({"gpu_mhz": 1410})
    m.check()
    with pytest.raises(UserError) as e:
        m.apply()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("clocks: no permission to lock GPU clocks (nvidia-smi -lgc: "
                                              "The current user does not have permission to change clocks")
    assert "run as root" in msg
    assert fake_nvidia.smi() == ["supported", "query", "-lgc 1410,1410", "query"]  # no reset: nothing was set
    assert m.restore()["clocks_after"]["sm_mhz"] == 345 and fake_nvidia.smi()[-1] == "query"  # idempotent


def test_missing_nvidia_smi_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"^clocks: nvidia-smi not found on PATH: .*use clocks: default$"):
        MachineControls("max").check()


def test_default_runs_no_command_at_all(fake_nvidia):
    with MachineControls("default") as m:
        pass
    assert fake_nvidia.calls() == []
    assert m.record["clocks_before"] is None and m.record["mps_state"] == "off"


def test_a_failed_reset_is_a_warning_and_retried(fake_nvidia):
    c = MachineControls({"gpu_mhz": 1410})
    c.apply()
    fake_nvidia.configure(reset_fails=True)
    rec = c.restore()
    assert any(w.startswith("not restored: clocks: GPU 0 clocks not reset (nvidia-smi -rgc: Unable to reset")
               for w in rec["warnings"])
    assert fake_nvidia.locks()["locked_gpu"] == [1410, 1410]
    fake_nvidia.configure(reset_fails=False)
    c.restore()  # still armed: the next restore (or the exit hook) tries again
    assert fake_nvidia.locks()["locked_gpu"] is None
    assert fake_nvidia.smi().count("-rgc") == 2


def test_a_partly_failed_restore_leaves_in_the_journal_only_what_is_still_changed(fake_mps):
    """Clocks locked and an MPS daemon started; the clocks' reset fails, MPS quits: the
    journal keeps the clocks' entry alone, so the next run (or trb doctor --restore) does
    not replay what was put back already (the stand-ins record what is run)."""
    from trt_ray_bench.control import journal

    c = MachineControls({"gpu_mhz": 1410}, mps=True, journal_key="GPU-j")
    c.apply()
    assert [e["kind"] for e in c.journal.read()["entries"]] == ["nvidia-smi-clocks", "mps"]
    fake_mps.configure(reset_fails=True)
    c.restore()
    assert [e["kind"] for e in c.journal.read()["entries"]] == ["nvidia-smi-clocks"]
    fake_mps.configure(reset_fails=False)
    c.restore()
    assert c.journal.read() is None or not journal.found("GPU-j")


def test_clocks_control_alone_has_the_pyperf_shape(fake_nvidia):
    c = NvidiaSmiClocks(0)
    assert c.available()
    before = c.read()
    in_force = c.apply("max")
    c.restore()
    c.restore()  # nothing left to reset
    assert fake_nvidia.smi().count("-rgc") == 1 and fake_nvidia.smi().count("-rmc") == 1
    assert before["sm_mhz"] == 345 and in_force["sm_mhz"] == 1980 and c.read() == before
