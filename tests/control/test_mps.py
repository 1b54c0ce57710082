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


# ------------------------------------------------- a machine with several GPUs: one daemon each
def test_each_gpu_gets_its_own_daemon(fake_mps, tmp_path):
    """Two experiments on two GPUs of one machine, MPS on both: a daemon per GPU, started
    with that GPU alone and its own pipe and log folders, each stopped by its own quit."""
    gpu_a, gpu_b = "GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000"
    a, b = MpsDaemon(gpu_a, root=tmp_path), MpsDaemon(gpu_b, root=tmp_path)
    assert a.apply(True) == "started" and b.apply(True) == "started"
    assert a.client_pipe_dir == str(tmp_path / gpu_a / "pipe") != b.client_pipe_dir
    assert len(daemon_pids()) == 2 and a.read()["pids"] != b.read()["pids"] and len(a.read()["pids"]) == 1
    starts = [c["env"] for c in fake_mps.calls() if c["argv"] == ["-d"]]
    assert starts == [{"CUDA_MPS_PIPE_DIRECTORY": str(tmp_path / g / "pipe"),
                       "CUDA_MPS_LOG_DIRECTORY": str(tmp_path / g / "log"), "CUDA_VISIBLE_DEVICES": g}
                      for g in (gpu_a, gpu_b)]
    # a third experiment with mps: false is no client of theirs, and is not told it is
    c = MpsDaemon("GPU-cccc", root=tmp_path)
    assert c.apply(False) == "off" and c.notes == []
    a.restore()
    assert b.read()["running"] and not a.read()["running"] and len(daemon_pids()) == 1  # only a's went
    b.restore()
    assert daemon_pids() == []
    quits = [c["env"]["CUDA_MPS_PIPE_DIRECTORY"] for c in fake_mps.calls() if c["stdin"] == "quit\n"]
    assert quits == [str(tmp_path / gpu_a / "pipe"), str(tmp_path / gpu_b / "pipe")]


def test_the_machines_own_daemon_still_serves_a_gpu_experiment(fake_mps, tmp_path):
    """A daemon the user started for the whole machine (default pipe folder) is used, as
    on a one-GPU machine, and no second daemon is started on its GPUs."""
    subprocess.run(["nvidia-cuda-mps-control", "-d"], check=True)
    fake_mps.forget_calls()
    d = MpsDaemon("GPU-aaaa", root=tmp_path)
    assert d.apply(True) == "running (not ours)" and d.client_pipe_dir is None and fake_mps.calls() == []
    d.restore()
    assert daemon_pids() == [fake_mps.daemon_pid()]  # left alone
    with MachineControls(mps=False, mps_daemon=MpsDaemon("GPU-aaaa", root=tmp_path)) as m:
        pass
    assert m.record["mps_state"] == "running (not ours)" and any("not started by trb" in w for w in m.record["warnings"])
