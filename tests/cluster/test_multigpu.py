"""A node with two GPUs, on a real local Ray started as ``trb run`` starts one
(``connect``): two slots, an experiment per GPU, each pinned to its GPU (its model
processes, its Monitor's lease, its clocks and MPS).

The two GPUs are the stand-in ``nvidia-smi`` of ``tests/control/standins`` configured with
``gpus: 2`` (two H100s with their own clock state, every call recorded with its argv and
time), first on PATH, listed by it (``TRB_GPU_SOURCE=nvidia-smi``: no NVML on a machine
without a GPU). The models run on ONNX Runtime's CPU provider: the pinning is the
environment and the controls, which are checkable without a GPU; what the model's
process saw of CUDA_VISIBLE_DEVICES is recorded in every run."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import spec_from_dict, sweep_from_dict

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _control_conftest():
    """The stand-ins' helpers of tests/control (FakeNvidia, _install), by path."""
    spec = importlib.util.spec_from_file_location("trb_control_conftest", ROOT / "tests/control/conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def two_gpus(tmp_path_factory):
    """The machine (stand-ins, lock and MPS folders of its own) and its local Ray, started
    by ``connect(None)``: ``num_gpus`` and ``trb_slot`` as detected, no other help."""
    import ray

    from trt_ray_bench.cluster.node_run import connect

    cc = _control_conftest()
    base = tmp_path_factory.mktemp("two-gpus")
    bin_dir = base / "bin"
    bin_dir.mkdir()
    for name, source in (("nvidia-smi", "nvidia_smi.py"), ("nvidia-cuda-mps-control", "nvidia_cuda_mps_control.py")):
        cc._install(bin_dir, name, source)
    fake = cc.FakeNvidia(bin_dir)
    fake.configure(gpus=2)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "TRB_GPU_SOURCE": "nvidia-smi",
           "TRB_GPU_LOCK_DIR": str(base / "gpu-locks"), "TRB_MPS_DIR": str(base / "mps")}
    saved = {k: os.environ.get(k) for k in [*env, "CUDA_VISIBLE_DEVICES"]}
    os.environ.update(env)
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    had_local = ray.is_initialized()  # the session's ray_local: put back afterwards
    if had_local:
        ray.shutdown()
    try:
        assert connect(None)
        fake.env = env
        yield fake
    finally:
        ray.shutdown()
        for pid in fake.daemon_pids().values():
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if had_local:
            ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, namespace="trb",
                     logging_level="ERROR", log_to_driver=False)


def _base(tmp_path, onnx, **over) -> dict:
    return {"name": "mg", "output": str(tmp_path / "results"), "schedule": "alone",
            "models": [{"path": str(onnx), "name": "cls", "options": {"threads": 1}}],
            "timing": {"iterations": 20, "warmup": 1}, "telemetry": {"interval_s": 0.1}, **over}


def test_the_node_offers_two_gpus_and_two_slots(two_gpus):
    import ray

    res = ray.cluster_resources()
    assert res["GPU"] == 2 and res["trb_slot"] == 2


def test_each_experiment_leases_its_own_gpu(two_gpus, tmp_path, cls_onnx, monkeypatch):
    """Two Monitors (two experiments) on the node hold its two GPUs; a third is refused
    in one line before anything changes; killing a holder (ray.kill: SIGKILL of its
    process) gives its GPU back to the next experiment."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from trt_ray_bench.cluster import node_run

    monkeypatch.setattr(node_run, "LEASE_WAIT_S", 2.0)
    spec = spec_from_dict(_base(tmp_path, cls_onnx))
    place = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    m1, prov1, _, g1 = node_run._start_monitor(spec, place, 2.0)
    m2, _, _, g2 = node_run._start_monitor(spec, place, 2.0)
    try:
        assert sorted([g1["index"], g2["index"]]) == [0, 1]
        assert {g1["uuid"], g2["uuid"]} == set(two_gpus.uuids())
        assert g1["cuda_visible_devices"] == g1["uuid"] and g1["name"] == "NVIDIA H100 80GB HBM3"
        assert prov1["gpu_name"] == "NVIDIA H100 80GB HBM3"  # named by nvidia-smi where NVML is missing
        with pytest.raises(UserError) as e:
            node_run._start_monitor(spec, place, 2.0)
        assert e.value.where == "gpu" and "\n" not in str(e.value)
        assert "no free GPU on this node: GPU 0 (pid " in str(e.value) and "GPU 1 (pid " in str(e.value)
        ray.kill(m1)
        m3, _, _, g3 = node_run._start_monitor(spec, place, 2.0)
        assert g3["uuid"] == g1["uuid"]
        ray.kill(m3)
    finally:
        ray.kill(m1)
        ray.kill(m2)


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_four_points_two_at_a_time_each_on_its_own_gpu(two_gpus, tmp_path, cls_onnx):
    """The issue's proof, on CPU: a 4-point sweep on one node with two GPUs runs two points
    at a time, never three; points that overlap hold different GPUs, their model
    processes saw their own GPU's UUID; the point with ``clocks: {gpu_mhz: 1410}`` locked
    its own GPU (``nvidia-smi -i <its index>``) while it ran, and the other GPU was never
    touched."""
    from trt_ray_bench import results
    from trt_ray_bench.cluster.sweep import run_sweep

    two_gpus.forget_calls()
    uuids = two_gpus.uuids()
    smi_log = tmp_path / "smi.csv"
    with open(smi_log, "w") as f:  # the proof's own witness (gpu_proof.sh multigpu), here the stand-in's
        smi = subprocess.Popen([str(two_gpus.bin / "nvidia-smi"), "--query-gpu=timestamp,index,uuid,utilization.gpu,"
                                "clocks.sm", "--format=csv", "-lms", "100"], stdout=f,
                               env={**os.environ, "TRB_STANDIN_NOLOG": "1"})
    sw = sweep_from_dict({
        "name": "mg4",
        "base": _base(tmp_path, cls_onnx, timing={"iterations": None, "duration_s": 2.0, "warmup": 1}),
        "axes": {"timing.gap_s": [0, 0.001, 0.002]},
        "include": [{"clocks": {"gpu_mhz": 1410}}],
    }, "sweep.yaml")
    lines = []
    try:
        out = run_sweep(sw, log=lines.append, poll_s=0.1)
    finally:
        smi.terminate()
        smi.wait()
    assert [r["status"] for r in out["records"]] == ["ok"] * 4, out["records"]
    assert any("2 GPUs, 2 points at once" in s for s in lines), lines
    runs = results.load(out["root"], samples=False, telemetry=False).runs
    assert (runs.cuda_visible_devices == runs.gpu_uuid).all()  # each model process pinned to its point's GPU
    assert set(runs.gpu_uuid) <= set(uuids)
    assert all(uuids[i] == u for i, u in zip(runs.gpu_index, runs.gpu_uuid))
    pts = runs.drop_duplicates("run_id")
    win = {r.point_id: (r.point_started_at, r.point_ended_at) for r in pts.itertuples()}
    gpu = {r.point_id: r.gpu_uuid for r in pts.itertuples()}
    # never three at once; two at once at some point; overlapping points on different GPUs
    for t in [w[0] for w in win.values()]:
        assert sum(1 for s, e in win.values() if s <= t < e) <= 2
    pairs = [(a, b) for a in win for b in win if a < b and _overlap(win[a], win[b])]
    assert pairs, win
    # points whose models measured at the same time did so on different GPUs (a point's
    # own span also holds its tabulation after its lease ends: a busy machine may start
    # the next point on the GPU just given back while that runs)
    span = runs.groupby("point_id").agg(s=("window_start_ns", "min"), e=("window_end_ns", "max"))
    measured = {p: (r.s, r.e) for p, r in span.iterrows()}
    assert all(gpu[a] != gpu[b] for a in measured for b in measured if a < b and _overlap(measured[a], measured[b]))
    assert any(_overlap(measured[a], measured[b]) for a in measured for b in measured if a < b), measured
    # the clocked point: its GPU alone, locked inside its window
    clocked = pts[pts.clocks_mode == "gpu_mhz=1410"]
    assert len(clocked) == 1
    g = int(clocked.gpu_index.iloc[0])
    assert json.loads(clocked.clocks_in_force.iloc[0])["gpu"] == g
    assert two_gpus.smi_by_gpu() == {g: ["supported", "query", "-lgc 1410,1410", "query", "-rgc", "query"]}
    assert two_gpus.locks(1 - g) == {"locked_gpu": None, "locked_mem": None}
    start, end = (t.to_pydatetime().timestamp() for t in win[clocked.point_id.iloc[0]])
    locks = [c["t"] for c in two_gpus.calls() if c["tool"] == "nvidia-smi" and c["argv"][2:3] in (["-lgc"], ["-rgc"])]
    assert len(locks) == 2 and all(start <= t <= end for t in locks)
    log = [json.loads(s) for s in (out["root"] / "sweep-log.jsonl").read_text().splitlines()]
    assert {r["point_id"]: r["gpu_uuid"] for r in log} == gpu
    _proof_check(out["root"], smi_log, g)


def _proof_check(root: Path, smi_log: Path, clocked_gpu: int) -> None:
    """benchmarks/multigpu_check.py, the 2-GPU machine's verdicts, on this CPU sweep and the
    stand-in's nvidia-smi log (a GPU busy while a model process pinned to it runs its
    loop): all OK but NVML's, which a machine without a GPU cannot have. Then NVML rows
    copied from each point's own GPU's log pass, and from the other GPU's fail."""
    from trt_ray_bench import results

    spec = importlib.util.spec_from_file_location("multigpu_check", ROOT / "benchmarks/multigpu_check.py")
    mc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mc)
    table, ok, fail = mc.check(root, smi_log)
    assert len(table) == 4 and fail == [f for f in fail if "no NVML telemetry" in f] and len(fail) == 4, fail
    assert any(f"meanwhile GPU {1 - clocked_gpu}" in s and "not held at 1410" in s for s in ok), ok
    assert sum("measured at once on GPUs" in s for s in ok) >= 1 and "2 points ran at once at most" in ok[0]
    smi = mc.read_smi(smi_log)
    assert set(smi["index"]) == {0, 1} and smi.util.max() == 100  # the stand-in saw the pinned loops

    res = results.load(root)
    for own in (True, False):
        rows = []
        for p in mc.point_windows(res).itertuples():
            tel = res.telemetry[res.telemetry.run_id.isin(res.runs[res.runs.point_id == p.point_id].run_id)]
            offset = mc._ts(res.runs[res.runs.point_id == p.point_id].started_at.iloc[0]).value - int(tel.t_ns.min())
            g = p.gpu_index if own else 1 - p.gpu_index
            for r in smi[(smi["index"] == g) & smi.t.between(p.w0, p.w1)].itertuples():
                t_ns = r.t.value - offset + 30_000_000  # NVML polled 30 ms after nvidia-smi
                rows += [{"run_id": tel.run_id.iloc[0], "t_ns": t_ns, "source": "nvml", "metric": m, "value": v,
                          "unit": u} for m, v, u in (("gpu_util_pct", r.util, "%"), ("gpu_freq_mhz", r.sm, "MHz"))]
        faked = dataclasses.replace(res, telemetry=pd.concat([res.telemetry, pd.DataFrame(rows)], ignore_index=True))
        _, ok, fail = mc.check(root, smi_log, res=faked)
        follows = [s for s in ok + fail if "NVML telemetry follows" in s]
        assert len(follows) == 4 and all(s.startswith("OK" if own else "FAIL") for s in follows), follows


def test_mps_is_a_daemon_of_the_experiments_gpu(two_gpus, tmp_path, cls_onnx):
    """On a machine with two GPUs ``mps: true`` starts a daemon for the leased GPU alone
    (CUDA_VISIBLE_DEVICES=<its UUID>, its own pipe folder), the model processes are its
    clients through that folder, and it is stopped after the run."""
    import ray

    from trt_ray_bench.cluster.node_run import build_tables, execute
    from trt_ray_bench.cluster.plan import make_plan
    from trt_ray_bench.control.mps import daemon_pids

    two_gpus.forget_calls()
    plan = make_plan(spec_from_dict(_base(tmp_path, cls_onnx, mps=True)))
    result = execute(plan, log=lambda s: None)
    lease = result["gpu"]
    pipe = str(Path(two_gpus.env["TRB_MPS_DIR"]) / lease["uuid"] / "pipe")
    mps = [c for c in two_gpus.calls() if c["tool"] == "nvidia-cuda-mps-control"]
    assert [(c["argv"], c["stdin"]) for c in mps] == [(["-d"], ""), ([], "quit\n")]
    assert all(c["env"]["CUDA_VISIBLE_DEVICES"] == lease["uuid"] and c["env"]["CUDA_MPS_PIPE_DIRECTORY"] == pipe
               for c in mps)
    assert result["info"]["cls"]["mps_pipe_dir"] == pipe
    assert result["info"]["cls"]["cuda_visible_devices"] == lease["uuid"]
    assert daemon_pids() == [] and ray.is_initialized()
    runs = build_tables(plan, result)["runs"]
    assert (runs.mps_state == "started").all() and (runs.gpu_uuid == lease["uuid"]).all()


def test_trb_run_under_cuda_visible_devices_uses_that_gpu(two_gpus, tmp_path, cls_onnx):
    """The issue's failure: ``CUDA_VISIBLE_DEVICES=1 trb run`` on the 2-GPU host. Its own
    local Ray gets one GPU (Ray refused the 2 it was given before), the run records GPU 1
    and locks GPU 1's clocks, nobody else's."""
    from trt_ray_bench import results

    two_gpus.forget_calls()
    spec = tmp_path / "exp.yaml"
    spec.write_text(json.dumps(_base(tmp_path, cls_onnx, clocks={"gpu_mhz": 1410})))
    env = {**os.environ, **two_gpus.env, "CUDA_VISIBLE_DEVICES": "1"}
    p = subprocess.run([sys.executable, "-m", "trt_ray_bench.cli", "run", str(spec)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    runs = results.load(tmp_path / "results").runs
    assert list(runs.gpu_index) == [1] and runs.gpu_uuid.iloc[0] == two_gpus.uuids()[1]
    # asked once before anything starts (the driver's preflight of a local run on one
    # visible GPU), then by the node that applies the lock; only GPU 1 is ever touched
    assert two_gpus.smi_by_gpu() == {1: ["supported", "supported", "query", "-lgc 1410,1410", "query", "-rgc",
                                         "query"]}
    assert "gpu      1 GPU-" in p.stderr
