"""The commands as a user types them."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trt_ray_bench import results

ROOT = Path(__file__).resolve().parents[1]


def _trb_exe():
    exe = shutil.which("trb", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("the trb console script is not installed (pip install -e .)")
    return exe


@pytest.mark.slow
@pytest.mark.ray
def test_run_then_compare_as_a_user(tmp_path, cls_onnx, det_onnx):
    """`trb run` starts its own local Ray in a fresh process, writes a run, and
    `trb compare` prints the alone vs together table from it."""
    spec = tmp_path / "exp.yaml"
    spec.write_text(
        f"name: clitest\noutput: {tmp_path / 'results'}\n"
        f"models:\n  - {{path: {cls_onnx}, name: cls}}\n  - {{path: {det_onnx}, name: det}}\n"
        "timing: {iterations: 200, warmup: 1}\n"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.run([_trb_exe(), "run", str(spec), "--set", "timing.iterations=8"], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    # the table on stdout (aligned where COLUMNS is set), the progress lines on stderr
    assert "wrote" in p.stderr and re.search(r"^\| cls +\|", p.stdout, re.M), p.stdout
    r = results.load(tmp_path / "results" / "clitest")
    assert set(r.runs.n[r.runs.phase == "alone"]) == {8}  # the --set override took effect
    c = subprocess.run([_trb_exe(), "compare", str(tmp_path / "results" / "clitest"), "--format", "csv"],
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stderr
    lines = c.stdout.strip().splitlines()
    assert lines[0].startswith("model,alone_mean_ms,together_mean_ms,increase_mean_pct")
    assert [l.split(",")[0] for l in lines[1:]] == ["cls", "det"]


def test_dry_run_of_the_quickstart_spec(trb, tmp_path):
    code, out, err = trb("run", ROOT / "examples" / "01_first_cpu_run" / "quickstart.yaml", "--dry-run", "--output", tmp_path / "r")
    assert code == 0, err
    for name in ("yolov8n-cls", "yolov8n-pose", "yolov8n-seg", "yolov8n-obb", "1024x1024", "together", "random weights"):
        assert name in out
    assert not (tmp_path / "r").exists()


def test_compare_errors_are_one_line(trb, tmp_path):
    code, out, err = trb("compare", tmp_path / "missing")
    assert code == 2 and err.strip().count("\n") == 0 and "no such results folder" in err


def test_compare_by_stage_on_the_h100_seed002_run(trb):
    """Where each pipeline row's time goes, from a real H100 run (TensorRT, 3 repeats)."""
    import io

    import pandas as pd

    h100 = Path(__file__).parent / "data" / "h100"
    code, out, err = trb("compare", h100 / "seed002_inference_vs_validation", "--by", "stage",
                         "--run", "20261123-171820-bc490b", "--format", "csv")
    assert code == 0, err
    t = pd.read_csv(io.StringIO(out))
    assert list(t.columns) == ["model", "mode", "phase", "load_ms", "pre_ms", "infer_ms", "post_ms", "metrics_ms",
                               "stages_ms", "p50_ms", "gpu_ms", "vs_first_p50_pct", "vs_first_p50_lo_pct",
                               "vs_first_p50_hi_pct", "verdict", "why"]  # each Δ, its interval and verdict
    assert len(t) == 20 and list(t["mode"].unique()) == ["validation", "without_val"]  # inference rows have no stages
    assert list(t.model[:5]) == ["yolov8n-cls", "yolov8n", "yolov8n-pose", "yolov8n-seg", "yolov8n-obb"]
    assert t[t["mode"] == "without_val"].metrics_ms.isna().all() and (t[t["mode"] == "validation"].metrics_ms > 0).all()
    # the stages account for the measured time per image (p50s do not add exactly)
    assert ((t.stages_ms - t.p50_ms).abs() <= 0.05 * t.p50_ms).all()
    code, out, err = trb("compare", h100 / "gpu_alone_together", "--by", "stage")
    assert code == 2 and err.count("\n") == 1 and "needs pipeline or validation runs" in err


def test_explain_as_a_user(trb, tmp_path):
    """One sentence per model of a real H100 run (together against alone), as text and JSON;
    a --by that is not a runs column is one line."""
    import json

    h100 = Path(__file__).parent / "data" / "h100"
    code, out, err = trb("explain", h100 / "gpu_alone_together")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 5 and all(" together vs alone: p50 +" in x and "in the same windows GPU utilization" in x
                                   for x in lines)
    code, out, err = trb("explain", h100 / "gpu_alone_together", "--json")
    assert code == 0 and json.loads(out)["sentences"] == lines
    code, out, err = trb("explain", h100 / "gpu_alone_together", "--by", "nope")
    assert code == 2 and out == "" and err.strip() == ("trb: error: --by: 'nope': the runs here have no such "
                                                        "condition (conditions that vary here: phase)")
    # a statistic, a list or the model itself is no condition: one line, nothing printed (compare too)
    for cmd, by in (("explain", "warnings"), ("compare", "n"), ("compare", "mean_ms"), ("compare", "model"),
                    ("compare", "diagnostics")):
        code, out, err = trb(cmd, h100 / "gpu_alone_together", "--by", by)
        assert code == 2 and out == "" and err.count("\n") == 1, (by, out, err)
        assert err.startswith(f"trb: error: --by: '{by}': ") and "(conditions that vary here: phase)" in err
        if by != "diagnostics":  # (a column a run's rows get when its tree is read)
            assert f"'{by}': is not a condition (a statistic, a list or the model itself)" in err
    # the --by mode table tests means (seed 002's ms per image), and its header says so
    code, out, err = trb("compare", h100 / "seed002_inference_vs_validation", "--by", "mode")
    assert code == 0 and "the ratio of the two conditions' means" in out


def test_doctor_reports_this_machine(trb):
    code, out, err = trb("doctor")
    assert code == 0
    assert "platform" in out and "ray" in out and "onnxruntime" in out


@pytest.mark.slow
def test_models_make(trb, tmp_path):
    code, out, err = trb("models", "make", "--arch", "yolov8n", "--task", "cls", "--imgsz", "32", "--out", tmp_path)
    assert code == 0, err
    made = list(tmp_path.glob("yolov8n-cls-32x32-b1-*.onnx"))
    assert len(made) == 1 and "random weights" in out
    code, out, err = trb("models", "make", "--arch", "yolov8n", "--task", "nope")
    assert code == 2 and "--task" in err
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    for args, says in ((["--imgsz", "0"], "--imgsz: 0: must be at least 8 pixels"),
                       (["--imgsz", "-5"], "--imgsz: -5: must be at least 8 pixels"),
                       (["--batch", "0"], "--batch: 0: must be 1 or more"),
                       (["--out-dir", str(afile)], f"--out-dir: {afile} is a file: expected a folder")):
        code, out, err = trb("models", "make", "--arch", "yolov8n", "--task", "cls", *args)
        assert code == 2 and err.strip() == f"trb: error: {says}" + (
            " (leave it out for the task's usual size)" if "imgsz" in says else ""), err


@pytest.mark.slow
@pytest.mark.ray
def test_run_joins_an_existing_cluster(tmp_path, cls_onnx):
    """`--address` joins a running Ray (a real head node started for the test) instead of
    starting one; the run happens on that cluster's node."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        spec = tmp_path / "exp.yaml"
        spec.write_text(f"name: joined\noutput: {tmp_path / 'results'}\nschedule: alone\n"
                        f"models:\n  - {{path: {cls_onnx}, name: cls}}\ntiming: {{iterations: 5, warmup: 1}}\n")
        p = subprocess.run([_trb_exe(), "run", str(spec), "--address", cluster.address], capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert cluster.address in p.stderr  # the plan: a progress line
        runs = results.load(tmp_path / "results").runs
        head = getattr(cluster.head_node, "node_id", None)
        if head is None:  # Ray 2.10 (Python 3.8): the node's ID from the cluster itself
            head = subprocess.run([sys.executable, "-c", "import ray; ray.init(address=%r, logging_level='ERROR'); "
                                   "print(ray.nodes()[0]['NodeID'])" % cluster.address], capture_output=True,
                                  text=True, timeout=120, check=True).stdout.split()[-1]
        assert runs.node_id.iloc[0] == head
    finally:
        cluster.shutdown()


def test_unreachable_address_is_refused_fast(trb, tmp_path):
    spec = tmp_path / "exp.yaml"
    spec.write_text("name: x\nmodels: [{path: m.onnx}]\n")
    code, out, err = trb("run", spec, "--address", "127.0.0.1:1")
    assert code == 2 and "--address: 127.0.0.1:1: no Ray cluster answers there" in err


def _shipped(sweeps: bool):
    """examples/*/*.yaml: the experiment specs, or the sweep specs (those with axes, or a
    base: a search), as ``trb`` tells them apart."""
    import yaml

    return [p for p in sorted((ROOT / "examples").glob("*/*.yaml"))
            if bool({"axes", "base", "base_file"} & set(yaml.safe_load(p.read_text()))) == sweeps]


@pytest.mark.parametrize("spec", _shipped(sweeps=False), ids=lambda p: p.stem)
def test_every_shipped_experiment_validates(trb, tmp_path, spec):
    """Each study's spec is valid as shipped (a dry run exports and writes nothing)."""
    code, out, err = trb("run", spec, "--dry-run", "--output", tmp_path / "r")
    assert code == 0, err
    assert "phases" in out and not (tmp_path / "r").exists()


@pytest.mark.parametrize("spec", _shipped(sweeps=True), ids=lambda p: p.stem)
def test_every_shipped_sweep_dry_runs(trb, tmp_path, monkeypatch, spec):
    """Each sweep's points are valid as shipped, on any machine: the dry run lists them and
    says what a run here would lack (no GPU, no TensorRT), exporting and writing nothing."""
    monkeypatch.chdir(tmp_path)
    code, out, err = trb("sweep", spec, "--dry-run")
    assert code == 0, err
    assert out.rstrip().endswith("dry run: nothing measured, nothing written") and not (tmp_path / "results").exists()
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        if "tensorrt" in spec.read_text():
            assert "note        not runnable on this machine: tensorrt: not installed" in out


def test_the_models_and_clocks_sweep():
    """The design's main use: the five YOLO tasks at their sizes as TensorRT FP16, alone and
    together, at clocks default / max x gap 0 / 50 ms, on every node."""
    from trt_ray_bench.spec import load_sweep
    from trt_ray_bench.spec._sweep import expand

    sweep = load_sweep(ROOT / "examples" / "08_sweep_lab" / "sweep_models_clocks.yaml")
    points = expand(sweep)
    assert sweep.nodes == "all" and [p.values for p in points] == [
        {"clocks": c, "timing.gap_s": g} for c in ("default", "max") for g in (0, 0.05)]
    for p in points:
        assert [(m.task, m.imgsz, m.backend, m.precision) for m in p.spec.models] == [
            ("classify", 224, "tensorrt", "fp16"), ("detect", 640, "tensorrt", "fp16"),
            ("pose", 640, "tensorrt", "fp16"), ("segment", 640, "tensorrt", "fp16"), ("obb", 1024, "tensorrt", "fp16")]
        assert tuple(p.spec.phases) == ("alone", "together") and p.spec.timing.gap_s == p.values["timing.gap_s"]


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_models_share_a_node_gpu(tmp_path):
    """A node that advertises one GPU (what `trb node start` does on a Jetson, whose GPU
    Ray cannot see) runs several GPU-backend models at once, each with a share of it.
    The torch backend falls back to the CPU here, so this runs without a GPU."""
    pytest.importorskip("torch")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1,
                                                            "include_dashboard": False})
    try:
        spec = tmp_path / "exp.yaml"
        spec.write_text(
            f"name: shared\noutput: {tmp_path / 'results'}\nschedule: together\ntelemetry: {{nvml: false}}\n"
            "timing: {iterations: 3, warmup: 1}\nmodels:\n"
            "  - {arch: yolov8n, task: classify, imgsz: 64, backend: torch, name: a}\n"
            "  - {arch: yolov8n, task: classify, imgsz: 64, backend: torch, name: b}\n")
        p = subprocess.run([_trb_exe(), "run", str(spec), "--address", cluster.address], capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stderr + p.stdout
        runs = results.load(tmp_path / "results").runs
        assert set(runs.status) == {"ok"} and len(runs) == 2
    finally:
        cluster.shutdown()


def test_ray_cluster_file_binds_to_the_lab_network():
    """The shipped cluster-launcher file: local provider, every node started with
    `trb node start` bound to its own address, the dashboard never exposed."""
    import yaml

    c = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    assert c["provider"]["type"] == "local" and c["provider"]["head_ip"] and c["provider"]["worker_ips"]
    cmds = c["head_start_ray_commands"] + c["worker_start_ray_commands"]
    starts = [x for x in cmds if "node start" in x]
    assert len(starts) == 2 and all("--node-ip" in x for x in starts)
    assert not any("dashboard-host" in x or "0.0.0.0" in x for x in cmds)
    assert "SECURITY" in (ROOT / "ray_cluster.yaml").read_text()


def test_ray_cluster_file_installs_the_jetson_way(tmp_path):
    """Boards get a venv made from the system's python3 with --system-site-packages (it
    sees JetPack's TensorRT), the jetson extra and never pip's TensorRT; every start
    command uses that venv's ray and trb. The venv command is run here as written."""
    import re

    import yaml

    from trt_ray_bench.control.jetpack import venv_sees_system

    c = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    make, _, install = c["setup_commands"]
    assert "--system-site-packages ~/trb-venv" in make
    assert install.split(" ")[1] == "~/trb-venv/bin/pip" and '"$HOME/trt_ray_bench[jetson' in install
    starts = c["head_start_ray_commands"] + c["worker_start_ray_commands"]
    for cmd in c["setup_commands"] + c["head_setup_commands"] + c["worker_setup_commands"] + starts:
        assert "[tensorrt" not in cmd and not re.search(r"pip install .*\btensorrt\b", cmd), cmd
    assert [x.split(" && ")[0] for x in starts] == ["~/trb-venv/bin/ray stop", ". ~/trb-venv/bin/activate"] * 2
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3 here")
    subprocess.run(["bash", "-c", make], env=dict(os.environ, HOME=str(tmp_path)), check=True, timeout=300)
    assert venv_sees_system(str(tmp_path / "trb-venv")) is True


def test_node_start_passes_launcher_arguments(trb):
    code, out, err = trb("node", "start", "--head", "--num-gpus", "1", "--dry-run", "--",
                         "--autoscaling-config=~/ray_bootstrap_config.yaml")
    argv = out.splitlines()[0]  # the command; a "# ..." line after it says what auth does
    assert code == 0 and argv.endswith("--autoscaling-config=~/ray_bootstrap_config.yaml")
    assert "--include-dashboard=false" in argv and all(line.startswith("# ") for line in out.splitlines()[1:])
