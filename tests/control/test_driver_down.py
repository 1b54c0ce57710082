"""A machine whose NVIDIA driver does not answer (the kernel module not loaded: a kernel
update without the driver's DKMS module). ``nvidia-smi`` is a hardware-only command: a
stand-in (``standins/nvidia_smi_no_driver.py``, made executable with this interpreter and
put first on PATH, as conftest's ``fake_nvidia`` does) prints what the real one prints
there, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. ...",
exits 9, and records every call's argv.

It used to read as a working GPU: ``trb doctor`` said "desktop or datacenter NVIDIA GPU,
clock locks allowed" and runs recorded ``platform: dgpu``. Now doctor names the driver
and the fix, runs record ``platform: cpu``, and GPU backends, clock modes and MPS are
refused in one line naming the driver, before anything runs."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from trt_ray_bench import results
from trt_ray_bench.control import MachineControls, detect_gpus, detect_platform
from trt_ray_bench.control.gpus import list_gpus
from trt_ray_bench.errors import EXIT_DOCTOR, UserError

from conftest import STANDINS

SAID = ("nvidia-smi exit 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
        "that the latest NVIDIA driver is installed and running.")
FIX = ("load the driver (sudo modprobe nvidia) or reinstall it for the running kernel (a kernel update without the "
       "driver's DKMS module is the usual cause), or reboot; nvidia-smi must list the GPU")
DRIVER = f"the NVIDIA driver is not answering ({SAID}); fix: {FIX}"


class NoDriver:
    def __init__(self, bin_dir: Path):
        self.bin = bin_dir

    def calls(self) -> list:
        import json

        log = self.bin / "calls.jsonl"
        return [json.loads(x)["argv"] for x in log.read_text().splitlines()] if log.exists() else []

    def only_asked(self) -> bool:
        """Nothing but the GPU listing (the question whether the driver answers) was run."""
        return all(a == ["--query-gpu=index,uuid,name", "--format=csv,noheader"] for a in self.calls())


@pytest.fixture
def no_driver(tmp_path, monkeypatch) -> NoDriver:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-smi"
    exe.write_text(f"#!{sys.executable}\n" + (STANDINS / "nvidia_smi_no_driver.py").read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("TRB_GPU_SOURCE", "nvidia-smi")  # the stand-in is this machine's driver, whatever NVML is here
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.setenv("TRB_GPU_LOCK_DIR", str(tmp_path / "gpu-locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return NoDriver(bin_dir)


def _spec(tmp_path: Path, onnx, **over) -> dict:
    return {"name": "nodriver", "output": str(tmp_path / "results"), "schedule": "alone",
            "timing": {"iterations": 3, "warmup": 1}, "telemetry": {"interval_s": 0.1},
            "models": [{"path": str(onnx), "name": "cls", "options": {"threads": 1}}], **over}


def test_the_machine_is_cpu_only_and_says_why(no_driver):
    assert detect_platform() == {"kind": "cpu", "board": "", "driver": SAID}
    assert list_gpus() == [] and detect_gpus() == 0
    assert no_driver.calls() and no_driver.only_asked()


def test_doctor_names_the_driver_and_the_fix(no_driver, trb):
    code, out, err = trb("doctor")
    assert code == EXIT_DOCTOR, (code, err)  # a FIX line
    lines = out.splitlines()
    assert "platform      CPU only: an NVIDIA driver is installed but does not answer" in lines
    assert f"nvidia-smi    FIX: {DRIVER}" in lines
    assert any(x.startswith("runs here") and "GPU backends" in x and "refused until the driver answers" in x
               for x in lines)
    assert "desktop or datacenter" not in out and "clock locks" not in out
    assert no_driver.only_asked()


@pytest.mark.parametrize("model, where, backend", [
    ({"backend": "tensorrt"}, "models[0].backend", "tensorrt"),
    ({"options": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}}, "models[0].backend",
     "onnxruntime"),
])
def test_a_gpu_backend_is_refused_in_one_line_before_anything(no_driver, trb, tmp_path, cls_onnx, monkeypatch,
                                                              model, where, backend):
    import trt_ray_bench.cluster as cluster

    def tripwire(*a, **k):
        raise AssertionError("run_plan called: the refusal came too late")

    monkeypatch.setattr(cluster, "run_plan", tripwire)
    spec = _spec(tmp_path, cls_onnx)
    spec["models"][0] = {"path": str(cls_onnx), "name": "cls", **model}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    code, out, err = trb("run", tmp_path / "spec.yaml")
    assert (code, out) == (2, "")  # no plan printed, nothing run
    assert err.splitlines() == [f"trb: error: {where}: {backend} needs a GPU here: {DRIVER}"]
    assert not (tmp_path / "results").exists() and no_driver.only_asked()
    if backend != "tensorrt":  # (ONNX Runtime's check refuses a provider this build lacks, dry run or not)
        return
    # a dry run plans anyway, and says what a run here would meet
    code, out, err = trb("run", tmp_path / "spec.yaml", "--dry-run")
    assert code == 0 and f"not runnable on this machine: {where}: {backend} needs a GPU here: {DRIVER}" in out


@pytest.mark.parametrize("kw, where, asked", [({"clocks": "max"}, "clocks", "max"),
                                             ({"clocks": {"gpu_mhz": 1410}}, "clocks", "gpu_mhz=1410"),
                                             ({"mps": True}, "mps", "true")])
def test_clock_modes_and_mps_are_refused_naming_the_driver(no_driver, kw, where, asked):
    with pytest.raises(UserError) as e:
        MachineControls.from_spec(kw).check()
    assert str(e.value) == f"{where}: {asked}: {DRIVER}"
    assert no_driver.only_asked()


@pytest.mark.ray
def test_a_run_records_platform_cpu_and_a_clock_mode_is_refused(no_driver, tmp_path, cls_onnx, ray_local):
    """The real run path (a local Ray, the Monitor actor, real ONNX Runtime, Parquet)."""
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.spec import spec_from_dict

    out = run_plan(make_plan(spec_from_dict(_spec(tmp_path, cls_onnx))), log=lambda s: None)
    runs = results.load(out["run_dir"]).runs
    assert list(runs.status) == ["ok"] and list(runs.platform) == ["cpu"] and list(runs.gpu_name) == [""]
    assert runs.gpu_index.isna().all()  # no GPU leased
    with pytest.raises(UserError) as e:  # refused on the node by the Monitor, before anything changes
        run_plan(make_plan(spec_from_dict(_spec(tmp_path, cls_onnx, name="locked", clocks="max"))), log=lambda s: None)
    assert str(e.value) == f"clocks: max: {DRIVER}"
    assert not (tmp_path / "results" / "locked").exists() and no_driver.only_asked()
