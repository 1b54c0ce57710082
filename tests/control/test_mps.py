"""The CUDA MPS control daemon around a run.

``nvidia-cuda-mps-control`` is a hardware-only command: these tests run the real control
code against a stand-in script (``standins/nvidia_cuda_mps_control.py``) put first on
PATH, whose ``-d`` leaves a real background process named like the real daemon.
"""

from __future__ import annotations

import subprocess

import pytest

from trt_ray_bench.control import MachineControls, MpsDaemon
from trt_ray_bench.control.mps import daemon_pids
from trt_ray_bench.errors import UserError


def test_started_for_the_run_and_stopped_after(fake_mps):
    with MachineControls(mps=True) as m:
        assert m.record["mps_state"] == "started"
        assert daemon_pids() == [fake_mps.daemon_pid()]  # running while the models would run
    assert daemon_pids() == []
    assert [(c["argv"], c["stdin"]) for c in fake_mps.calls()] == [(["-d"], ""), ([], "quit\n")]
    assert m.record["mps"] is True and m.record["clocks_before"] is None


def test_a_running_daemon_is_used_and_left_alone(fake_mps):
    subprocess.run(["nvidia-cuda-mps-control", "-d"], check=True)  # the user's own daemon
    fake_mps.forget_calls()
    with MachineControls(mps=True) as m:
        pass
    assert m.record["mps_state"] == "running (not ours)"
    assert fake_mps.calls() == [] and daemon_pids() == [fake_mps.daemon_pid()]


def test_mps_false_does_not_stop_a_users_daemon_and_says_so(fake_mps):
    subprocess.run(["nvidia-cuda-mps-control", "-d"], check=True)
    fake_mps.forget_calls()
    with MachineControls(mps=False) as m:
        pass
    assert m.record["mps_state"] == "running (not ours)"
    assert any("not started by trb" in w and "mps: false" in w for w in m.record["warnings"])
    assert fake_mps.calls() == [] and daemon_pids()


def test_mps_false_without_daemon_runs_nothing(fake_mps):
    with MachineControls(mps=False) as m:
        pass
    assert m.record["mps_state"] == "off" and fake_mps.calls() == []


def test_mps_not_available_is_refused(tmp_path, monkeypatch):
    if daemon_pids():
        pytest.skip("a real MPS control daemon runs on this machine")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"^mps: nvidia-cuda-mps-control not found on PATH: .*use mps: false$"):
        MachineControls(mps=True).check()


def test_a_daemon_that_cannot_start_is_one_clear_error(fake_mps):
    fake_mps.configure(mps_start_fails=True)
    with pytest.raises(UserError, match=r"^mps: could not start the MPS control daemon \(nvidia-cuda-mps-control -d: "
                                        r"Failed to start MPS control daemon: .*\(Permission denied\)\)$"):
        MachineControls(mps=True).apply()
    assert [c["argv"] for c in fake_mps.calls()] == [["-d"]]  # never told to quit: it never ran


def test_restored_after_a_failure_inside_the_run(fake_mps):
    with pytest.raises(RuntimeError, match="model failed"):
        with MachineControls(mps=True):
            raise RuntimeError("model failed")
    assert fake_mps.calls()[-1]["stdin"] == "quit\n" and daemon_pids() == []


def test_daemon_control_alone_has_the_pyperf_shape(fake_mps):
    d = MpsDaemon()
    assert d.available() and d.read()["running"] is False
    assert d.apply(True) == "started" and d.read()["ours"] is True
    d.restore()
    d.restore()  # stopped once only
    assert [c["argv"] for c in fake_mps.calls()] == [["-d"], []]
    assert d.read() == {"running": False, "pids": [], "ours": False, "pipe_dir": d.read()["pipe_dir"]}
