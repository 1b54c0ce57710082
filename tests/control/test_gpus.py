"""The GPUs a node offers (CUDA_VISIBLE_DEVICES honoured), its slots, and the lease by
which an experiment owns one GPU.

The machine is the stand-in ``nvidia-smi`` of conftest's ``fake_nvidia`` (two H100s when
configured ``gpus=2``), the GPU listing's real fallback where NVML is missing; reading
CUDA_VISIBLE_DEVICES is tested directly on GPU records. The lease's lock files are real
``flock`` locks held by real processes, one of them killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest

from trt_ray_bench.control import detect_gpus
from trt_ray_bench.control.gpus import (Gpu, GpuLease, experiment_env, list_gpus, parse_smi_list, select_visible,
                                        visible_gpus)
from trt_ray_bench.errors import UserError

A = Gpu(0, "GPU-aaaa1111-0000-0000-0000-000000000000", "NVIDIA H200")
B = Gpu(1, "GPU-bbbb2222-0000-0000-0000-000000000000", "NVIDIA H200")
C = Gpu(2, "GPU-aaaa3333-0000-0000-0000-000000000000", "NVIDIA RTX 4090")
ALL = [A, B, C]


@pytest.mark.parametrize("value, expected", [
    (None, [A, B, C]),                    # unset: every GPU
    ("", []), ("-1", []), ("NoDevFiles", []), ("  ", []),
    ("1", [B]), ("2,0", [C, A]),          # nvidia-smi's indices, in the order given
    (" 1 , 2 ", [B, C]),
    ("0,5,1", [A]), ("0,-1,1", [A]),      # CUDA stops at the first entry naming no GPU
    ("1,1", [B]),                         # ... or one already named
    ("abc", []),
    (B.uuid, [B]), ("GPU-bbbb", [B]),     # a UUID, or an unambiguous prefix of one
    ("gpu-BBBB2222", [B]),
    ("GPU-aaaa", []),                     # ambiguous: two GPUs start so
    (f"{C.uuid},1", [C, B]),
])
def test_cuda_visible_devices_read_as_cuda_does(value, expected):
    assert select_visible(value, ALL) == expected


def test_mig_instances_are_refused_in_one_line():
    with pytest.raises(UserError) as e:
        select_visible("MIG-4f7c2b4e-0000-0000-0000-000000000000", ALL)
    assert e.value.where == "CUDA_VISIBLE_DEVICES" and "MIG instances are not supported" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_jetsons_gpu_counts_once_unless_hidden():
    orin = [Gpu(0, None, "NVIDIA Jetson AGX Orin Developer Kit")]
    assert [len(visible_gpus(v, orin)) for v in (None, "0", "GPU-1234", "", "-1", "1")] == [1, 1, 1, 0, 0, 0]
    assert orin[0].cuda_id == "0" and orin[0].key == "gpu0"  # pinned by index: no UUID without NVML


def test_nvidia_smi_list_parsed():
    text = ("0, GPU-5bf64907-48ad-bf02-69cd-6bf329964f68, NVIDIA H200\n"
            "1, GPU-0aad8f23-5820-48fa-ec4e-214d33c8b46d, NVIDIA H200\n\n")
    assert parse_smi_list(text) == [Gpu(0, "GPU-5bf64907-48ad-bf02-69cd-6bf329964f68", "NVIDIA H200"),
                                    Gpu(1, "GPU-0aad8f23-5820-48fa-ec4e-214d33c8b46d", "NVIDIA H200")]


def test_nvml_listing_where_nvml_answers(monkeypatch):
    """NVML first (bytes from older pynvml decoded); the thin part, through a stand-in
    pynvml module (no NVML can exist on a machine without a GPU)."""
    names = {0: b"NVIDIA H200", 1: "NVIDIA H200"}
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i, nvmlDeviceGetName=lambda h: names[h],
        nvmlDeviceGetUUID=lambda h: f"GPU-{h}0000000".encode() if h == 0 else f"GPU-{h}0000000")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr("trt_ray_bench.control.platform.detect_platform", lambda: {"kind": "dgpu", "board": ""})
    monkeypatch.delenv("TRB_GPU_SOURCE", raising=False)
    assert list_gpus() == [Gpu(0, "GPU-00000000", "NVIDIA H200"), Gpu(1, "GPU-10000000", "NVIDIA H200")]


def test_detected_on_the_stand_in_machine(fake_nvidia, monkeypatch):
    fake_nvidia.configure(gpus=2)
    uuids = fake_nvidia.uuids()
    assert len(uuids) == 2 and uuids[0] != uuids[1] and all(u.startswith("GPU-") for u in uuids)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [g.uuid for g in visible_gpus()] == uuids and detect_gpus() == 2
    for value, n in (("0", 1), ("1,0", 2), (uuids[1], 1), ("", 0), ("3", 0)):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert detect_gpus() == n, value
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", uuids[1])
    assert visible_gpus() == [Gpu(1, uuids[1], "NVIDIA H100 80GB HBM3")]
    listing = [c["argv"] for c in fake_nvidia.calls(listing=True)]
    assert set(map(tuple, listing)) == {("--query-gpu=index,uuid,name", "--format=csv,noheader")}


def _resources(out: str) -> dict:
    arg = next(a for a in out.split() if a.startswith("--resources="))
    return json.loads(arg.split("=", 1)[1])


def test_node_start_offers_one_slot_per_visible_gpu(fake_nvidia, monkeypatch, trb):
    """The issue's failure: CUDA_VISIBLE_DEVICES=0 on a 2-GPU host gave --num-gpus=2,
    which Ray refuses; now the visible GPUs are counted, and each is a slot."""
    fake_nvidia.configure(gpus=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    code, out, err = trb("node", "start", "--head", "--name", "h200", "--dry-run")
    assert code == 0, err
    assert "--num-gpus=1" in out.split() and _resources(out)["trb_slot"] == 1
    assert _resources(out)["trb_board_nvidia_h100_80gb_hbm3"] == 1  # the visible GPU's name
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    code, out, err = trb("node", "start", "--head", "--name", "h200", "--dry-run")
    assert "--num-gpus=2" in out.split() and _resources(out)["trb_slot"] == 2
    code, out, err = trb("node", "start", "--head", "--name", "h200", "--num-gpus", "1", "--dry-run")
    assert "--num-gpus=1" in out.split() and _resources(out)["trb_slot"] == 1  # as many slots as GPUs given
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4f7c2b4e-0000-0000-0000-000000000000")
    code, out, err = trb("node", "start", "--head", "--name", "h200", "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "MIG instances are not supported" in err


def test_a_cpu_node_keeps_one_slot(monkeypatch, tmp_path):
    from trt_ray_bench.cluster.node import node_resources

    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: no GPU
    monkeypatch.setenv("TRB_ROOT", str(tmp_path))
    assert detect_gpus() == 0 and node_resources("n", "cpu")["trb_slot"] == 1


def test_gpus_nothing_names_are_rays_by_number(monkeypatch):
    """``--num-gpus`` given by hand where neither NVML nor nvidia-smi answers: Ray's ids."""
    from trt_ray_bench.control.gpus import ray_gpus_by_number

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert ray_gpus_by_number(2) == [Gpu(0), Gpu(1)]
    assert ray_gpus_by_number(2, "") == [Gpu(0), Gpu(1)]
    assert ray_gpus_by_number(1, "3,5") == [Gpu(3)]
    assert ray_gpus_by_number(1, B.uuid) == [Gpu(0, B.uuid)]


def test_experiment_env_pins_by_uuid_in_pci_order():
    env = experiment_env(B.uuid, "/tmp/trb-mps/x/pipe")
    assert env == {"CUDA_VISIBLE_DEVICES": B.uuid, "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                   "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1", "CUDA_MPS_PIPE_DIRECTORY": "/tmp/trb-mps/x/pipe"}
    assert "CUDA_MPS_PIPE_DIRECTORY" not in experiment_env(B.uuid)


# --------------------------------------------------------------------------- the lease
def test_two_leases_take_two_gpus_and_a_third_is_refused(tmp_path):
    first = GpuLease.acquire([A, B], folder=tmp_path)
    second = GpuLease.acquire([A, B], folder=tmp_path)
    assert {first.gpu, second.gpu} == {A, B}
    assert first.as_dict()["cuda_visible_devices"] == A.uuid and first.as_dict()["index"] == 0
    t0 = time.monotonic()
    with pytest.raises(UserError) as e:
        GpuLease.acquire([A, B], wait_s=0.3, folder=tmp_path)
    assert time.monotonic() - t0 >= 0.3  # it waited for one to be given back
    msg = str(e.value)
    assert e.value.where == "gpu" and "\n" not in msg
    assert msg.startswith("gpu: no free GPU on this node: GPU 0 (pid ") and f"GPU 1 (pid {os.getpid()})" in msg
    second.release()
    third = GpuLease.acquire([A, B], folder=tmp_path)
    assert third.gpu == second.gpu
    for lease in (first, third):
        lease.release()
    with pytest.raises(UserError, match="^gpu: this node has no GPU to give"):
        GpuLease.acquire([], folder=tmp_path)


HOLD = """
import sys, time
from pathlib import Path
from trt_ray_bench.control.gpus import Gpu, GpuLease
lease = GpuLease.acquire([Gpu(0, sys.argv[1])], folder=Path(sys.argv[2]))
print("held", flush=True)
time.sleep(float(sys.argv[3]))
"""


def _holder(tmp_path, hold_s: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, A.uuid, str(tmp_path), str(hold_s)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_holder_killed_with_sigkill_gives_the_gpu_back(tmp_path):
    """What a run killed hard (OOM killer, kill -9 of a Monitor) leaves: nothing held."""
    p = _holder(tmp_path, 300)
    try:
        with pytest.raises(UserError, match=rf"GPU 0 \(pid {p.pid}\) each run another experiment"):
            GpuLease.acquire([A], folder=tmp_path)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        lease = GpuLease.acquire([A], folder=tmp_path)
        assert lease.gpu == A and lease.held
        lease.release()
        assert not lease.held
    finally:
        p.kill()
        p.wait()


def test_a_new_experiment_waits_for_the_last_ones_exit(tmp_path):
    """The experiment before may still be exiting when the next one starts on its slot."""
    p = _holder(tmp_path, 0.5)
    try:
        lease = GpuLease.acquire([A], wait_s=20, folder=tmp_path)
        assert p.poll() is not None  # got it once the holder had gone
        lease.release()
    finally:
        p.kill()
        p.wait()


def test_lock_folder_is_shared_by_every_user(tmp_path):
    folder = tmp_path / "locks"
    GpuLease.acquire([A], folder=folder).release()
    assert (folder.stat().st_mode & 0o7777) == 0o1777
    assert (folder / f"{A.uuid}.lock").stat().st_mode & 0o666 == 0o666


def test_on_the_fake_orin(fake_jetson, monkeypatch, tmp_path):
    """A Jetson's one GPU: counted without NVML, hidden by CUDA_VISIBLE_DEVICES="", leased
    by number (CUDA_VISIBLE_DEVICES=0 for the experiment: no UUID without NVML)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert detect_gpus() == 1
    lease = GpuLease.acquire(visible_gpus(), folder=tmp_path)
    assert lease.as_dict()["cuda_visible_devices"] == "0" and lease.as_dict()["uuid"] is None
    assert lease.path.name == "gpu0.lock"
    lease.release()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == 0


AS_OTHER_USER = """
import os, sys, time
from pathlib import Path
from trt_ray_bench.control.gpus import Gpu, GpuLease
from trt_ray_bench.errors import UserError
os.setgid(65534)  # nobody, after every import (the interpreter's files may not be theirs to read)
os.setuid(65534)
t0 = time.monotonic()
try:
    lease = GpuLease.acquire([Gpu(0, sys.argv[1])], wait_s=float(sys.argv[3]), folder=Path(sys.argv[2]))
except UserError as exc:
    print("refused", round(time.monotonic() - t0, 2), exc, flush=True)
else:
    print("held", os.getuid(), flush=True)
    time.sleep(float(sys.argv[4]))
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="switching users needs root")
def test_two_users_share_the_lease(tmp_path):
    """Two users' runs on one GPU: another user (nobody) waits for the GPU root holds and
    is refused in one line naming root's holder after its wait; once given back it takes
    the GPU (root's lock file is lockable by it) and root is then refused; its process
    killed, root takes it again. A lock file another user cannot write (0644) still locks."""
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="trb-gpu-users-", dir="/tmp"))  # outside root's 0700 pytest folder
    os.chmod(base, 0o755)
    folder = base / "locks"

    def other(wait_s: float, hold_s: float = 0.0) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", AS_OTHER_USER, A.uuid, str(folder), str(wait_s), str(hold_s)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")

    try:
        mine = GpuLease.acquire([A], folder=folder)  # root makes the folder and the file
        p = other(0.5)
        out, err = p.communicate(timeout=60)
        assert out.startswith("refused "), out + err
        waited = float(out.split()[1])
        assert waited >= 0.5 and out.count("\n") == 1
        assert f"GPU 0 (pid {os.getpid()}) each run another experiment (waited 0.5 s for one to be given back" in out
        mine.release()
        for mode in (0o666, 0o644):  # 0644: nobody opens it read-only, and flock works all the same
            os.chmod(folder / f"{A.uuid}.lock", mode)
            p = other(5.0, 300.0)
            try:
                assert p.stdout.readline().split() == ["held", "65534"], p.stderr.read() if p.poll() else ""
                with pytest.raises(UserError, match="no free GPU on this node: GPU 0 "):
                    GpuLease.acquire([A], wait_s=0.2, folder=folder)
            finally:
                p.kill()
                p.wait()
            lease = GpuLease.acquire([A], wait_s=5.0, folder=folder)  # the kernel gave it back
            lease.release()
    finally:
        shutil.rmtree(base, ignore_errors=True)
