"""Clock mode and MPS applied together, and restored on every way out: a failure, a
failure half-way through applying, SIGTERM, SIGINT, and interpreter exit.

``nvidia-smi`` and ``nvidia-cuda-mps-control`` are hardware-only commands: these tests use
stand-in scripts (``standins/``) put first on PATH.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from trt_ray_bench.control import MachineControls
from trt_ray_bench.control.mps import daemon_pids
from trt_ray_bench.errors import UserError

APPLY_THEN_WAIT = """
import signal, sys, time
from trt_ray_bench.control import MachineControls
if sys.argv[1] == "ray-like":  # Ray's workers turn SIGTERM into SystemExit
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(7))
m = MachineControls({"gpu_mhz": 1410}, mps=True)
m.check()
m.apply()
print("applied", flush=True)
if sys.argv[1] == "exit":
    sys.exit(3)
time.sleep(60)
"""


def test_applied_in_order_restored_in_reverse(fake_mps):
    with MachineControls({"gpu_mhz": 1410}, mps=True) as m:
        pass
    assert fake_mps.sequence() == ["supported", "query", "-lgc 1410,1410", "query", "mps -d",
                                   "mps quit", "-rgc", "query"]
    assert m.record["mps_state"] == "started"


def test_everything_checked_before_anything_changes(fake_mps):
    with pytest.raises(UserError, match="clocks.gpu_mhz"):
        MachineControls({"gpu_mhz": 1401}, mps=True).check()
    assert fake_mps.sequence() == ["supported"]


def test_a_failure_half_way_through_apply_undoes_the_first_half(fake_mps):
    fake_mps.configure(mps_start_fails=True)
    with pytest.raises(UserError, match="^mps: could not start"):
        with MachineControls({"gpu_mhz": 1410}, mps=True):
            pytest.fail("the run must not start")
    assert fake_mps.sequence() == ["supported", "query", "-lgc 1410,1410", "query", "mps -d", "-rgc", "query"]
    assert fake_mps.locks()["locked_gpu"] is None


@pytest.mark.parametrize("how, sig, rc", [
    ("sleep", signal.SIGTERM, -signal.SIGTERM),  # default action kept: killed by the signal
    ("sleep", signal.SIGINT, -signal.SIGINT),   # KeyboardInterrupt, as without us
    ("ray-like", signal.SIGTERM, 7),             # the previous handler still runs
    ("exit", None, 3),                           # exit without restore(): atexit
])
def test_a_process_that_is_stopped_still_restores(fake_mps, how, sig, rc):
    p = subprocess.Popen([sys.executable, "-c", APPLY_THEN_WAIT, how], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "applied"
        if sig is not None:
            p.send_signal(sig)
        p.wait(timeout=30)
    finally:
        p.kill()
    assert p.returncode == rc
    assert fake_mps.sequence()[-3:] == ["mps quit", "-rgc", "query"]  # once: the exit hook was disarmed
    assert fake_mps.locks()["locked_gpu"] is None and daemon_pids() == []
