"""Clock mode and MPS through the real run path: a local Ray, the Monitor actor applying
and restoring them on the node, real ONNX Runtime models, runs.parquet.

``nvidia-smi`` and ``nvidia-cuda-mps-control`` are hardware-only commands: stand-in
scripts (``standins/``) are put first on the driver's PATH, which the run hands to the
Monitor actor (a local Ray's workers keep the PATH of the moment Ray started).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from trt_ray_bench import results
from trt_ray_bench.cluster import make_plan, run_plan
from trt_ray_bench.control.mps import daemon_pids
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import spec_from_dict

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _spec(tmp_path, onnx, **over):
    d = {
        "name": "ctl",
        "output": str(tmp_path / "results"),
        "models": [{"path": str(onnx), "name": "cls", "options": {"threads": 1}},
                   {"path": str(onnx), "name": "cls2", "options": {"threads": 1}}],
        "timing": {"iterations": 5, "warmup": 1},
        "telemetry": {"interval_s": 0.05},
        **over,
    }
    return spec_from_dict(d)


def test_fixed_clock_locked_for_the_run_reset_after_and_recorded(tmp_path, cls_onnx, ray_local, fake_nvidia):
    out = run_plan(make_plan(_spec(tmp_path, cls_onnx, clocks={"gpu_mhz": 1410})), log=lambda s: None)
    # the plan reads the supported clocks first (a refusal before Ray starts), the node again
    assert fake_nvidia.smi() == ["supported", "supported", "query", "-lgc 1410,1410", "query", "-rgc", "query"]
    runs = results.load(out["run_dir"]).runs
    assert len(runs) == 4 and set(runs.status) == {"ok"}
    row = runs.iloc[0]
    assert (runs.clocks_mode == "gpu_mhz=1410").all() and not runs.mps.any() and (runs.mps_state == "off").all()
    in_force = json.loads(row.clocks_in_force)
    assert in_force["locked_gpu_mhz"] == [1410, 1410] and in_force["sm_mhz"] == 1410
    assert json.loads(row.clocks_before)["sm_mhz"] == 345 and json.loads(row.clocks_after)["sm_mhz"] == 345
    assert json.loads(row.clocks_before)["name"] == "NVIDIA H100 80GB HBM3"


def test_cpu_run_executes_no_control_command(tmp_path, cls_onnx, ray_local, fake_nvidia):
    out = run_plan(make_plan(_spec(tmp_path, cls_onnx, schedule="alone")), log=lambda s: None)
    assert fake_nvidia.calls() == []
    runs = out["tables"]["runs"]
    assert (runs.clocks_mode == "default").all() and runs.clocks_before.isna().all()



def test_a_model_that_dies_mid_run_still_gets_clocks_and_mps_restored(tmp_path, cls_onnx, released_run, fake_mps):
    plan = make_plan(_spec(tmp_path, cls_onnx, schedule="together", clocks="max", mps=True,
                           timing={"iterations": 3000, "warmup": 1}))
    run = released_run(plan)
    assert daemon_pids() and fake_mps.locks()["locked_gpu"] == [1980, 1980]  # in force while measuring
    run.kill("cls2")
    out = run.join()
    assert fake_mps.sequence() == ["supported", "supported", "query", "-lgc 1980,1980", "-lmc 2619,2619", "query", "mps -d",
                                   "mps quit", "-rgc", "-rmc", "query"]
    assert daemon_pids() == [] and fake_mps.locks() == {"locked_gpu": None, "locked_mem": None}
    runs = results.load(out["run_dir"]).runs.set_index("model")
    assert runs.loc["cls2", "status"] == "failed" and runs.loc["cls", "status"] == "ok"
    assert (runs.mps_state == "started").all() and runs.mps.all() and (runs.clocks_mode == "max").all()


@pytest.mark.parametrize("clocks, configure, where", [
    ({"gpu_mhz": 1400}, {}, "clocks.gpu_mhz"),
    ("max", {"no_permission": True}, "clocks"),
])
def test_refused_on_the_node_before_measuring_nothing_written(tmp_path, cls_onnx, ray_local, fake_nvidia,
                                                              clocks, configure, where):
    # planned while the machine could give it (a local plan checks the controls first), refused
    # on the node: a node is checked again before anything changes there
    plan = make_plan(_spec(tmp_path, cls_onnx, clocks={"gpu_mhz": 1410}))
    plan.spec = plan.spec.model_copy(update={"clocks": clocks if isinstance(clocks, str) else
                                             type(plan.spec.clocks)(**clocks)})
    fake_nvidia.configure(**configure)
    with pytest.raises(UserError) as e:
        run_plan(plan, log=lambda s: None)
    assert type(e.value) is UserError and e.value.where == where and "\n" not in str(e.value)
    assert not any(s.startswith(("-rgc", "-rmc")) for s in fake_nvidia.smi())  # nothing was locked
    assert fake_nvidia.locks()["locked_gpu"] is None
    assert not (tmp_path / "results").exists()


def test_cli_prints_one_line_and_exits_2(tmp_path, cls_onnx, ray_local, fake_nvidia, trb):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: ctl\noutput: {tmp_path / 'results'}\nclocks: {{gpu_mhz: 1400}}\n"
                    f"models:\n  - path: {cls_onnx}\n")
    code, out, err = trb("run", spec)
    assert code == 2
    assert err.splitlines() == ["trb: error: clocks.gpu_mhz: 1400 MHz is not a graphics clock GPU 0 supports; "
                                "nearest: 1395, 1410 MHz (supported: 345..1980 MHz, 110 values; nvidia-smi -q -d "
                                "SUPPORTED_CLOCKS lists them)"]
    assert not (tmp_path / "results").exists()


def test_ctrl_c_in_the_driver_still_restores(tmp_path, cls_onnx, fake_mps):
    """``trb run`` in its own process (its own local Ray), interrupted mid-run."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: ctl\noutput: {tmp_path / 'results'}\nclocks: {{gpu_mhz: 1410}}\nmps: true\n"
                    f"schedule: together\ntiming: {{iterations: 100000, warmup: 1}}\n"
                    f"models:\n  - path: {cls_onnx}\n    options: {{threads: 1}}\n")
    p = subprocess.Popen([sys.executable, "-u", "-m", "trt_ray_bench.cli", "run", str(spec)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in p.stdout:
            if line.startswith("repeat 0  together"):
                break
        time.sleep(1.0)
        assert fake_mps.locks()["locked_gpu"] == [1410, 1410] and daemon_pids()
        p.send_signal(signal.SIGINT)
        rest = p.communicate(timeout=120)[0]
    finally:
        p.kill()
    assert p.returncode == 130 and rest.splitlines()[-1] == "trb: interrupted", rest  # written, then stopped
    assert fake_mps.sequence()[-3:] == ["mps quit", "-rgc", "query"]
    assert fake_mps.locks()["locked_gpu"] is None and daemon_pids() == []
    runs = results.load(tmp_path / "results").runs
    assert list(runs.status) == ["interrupted"] and runs.mps_state.iloc[0] == "started"
