"""examples/NN_name/: each folder is a README (what it shows, how to run it, what it prints)
and its specs; the CPU ones run here, shortened, and print what their README shows. Every
spec's dry run is tests/test_cli.py's (test_every_shipped_experiment_validates and
test_every_shipped_sweep_dry_runs, over examples/*/*.yaml)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FOLDERS = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and re.match(r"\d\d_", p.name))


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_example_says_what_it_shows_how_to_run_it_and_what_it_prints(folder):
    readme = (folder / "README.md").read_text(encoding="utf-8")
    for part in ("**What it shows.**", "**Run it", "**What it prints.**"):
        assert part in readme, f"{folder.name}/README.md lacks {part}"
    specs = sorted(folder.glob("*.yaml"))
    assert specs, folder
    for spec in specs:  # each spec is run by its README, from the repository root
        assert f"examples/{folder.name}/{spec.name}" in readme, f"{folder.name}/README.md never runs {spec.name}"
    assert f"[{folder.name}]({folder.name}/README.md)" in (EXAMPLES / "README.md").read_text(encoding="utf-8")


def test_the_examples_are_numbered_in_order():
    assert [int(p.name[:2]) for p in FOLDERS] == list(range(1, len(FOLDERS) + 1))


def _trb():
    exe = shutil.which("trb", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("the trb console script is not installed (pip install -e .)")
    return exe


def _run(*args, timeout=900):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TRB_PROGRESS="0")
    p = subprocess.run([_trb(), *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=timeout)
    assert p.returncode == 0, f"trb {' '.join(map(str, args))}\n{p.stdout}\n{p.stderr}"
    return p.stdout, p.stderr


def _header(readme: Path, after: str) -> str:
    """The first table header line the README shows after ``after``."""
    text = readme.read_text(encoding="utf-8")
    return next(line for line in text[text.index(after):].splitlines() if line.startswith("| "))


def _cells(line: str):
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.mark.slow
@pytest.mark.ray
def test_example_04_inference_vs_validation_runs_on_the_cpu(tmp_path):
    """Shortened: 4 generated images per model, 4 inferences, at the suite's small input
    sizes (exported by other tests too: the example's own are the quickstart's)."""
    spec = "examples/04_inference_vs_validation/inference_vs_validation.yaml"
    _run("run", spec, "--set", "data.synthetic=4", "--set", "timing.iterations=4", "--set", "timing.warmup=1",
         "--set", "models.*.imgsz=96", "--set", "models.0.imgsz=64", "--output", tmp_path)
    out, _ = _run("compare", tmp_path / "inference_vs_validation", "--by", "mode")
    shown = _cells(_header(EXAMPLES / "04_inference_vs_validation" / "README.md", "`--by mode`, first columns"))
    printed = _cells(next(line for line in out.splitlines() if line.startswith("| model")))
    assert printed[:len(shown) - 1] == shown[:-1]  # the README cuts the table with "..."
    rows = [_cells(line)[0] for line in out.splitlines() if line.startswith("| yolov8n")]
    assert rows == ["yolov8n-cls", "yolov8n", "yolov8n-pose", "yolov8n-seg", "yolov8n-obb"]
    out, _ = _run("compare", tmp_path / "inference_vs_validation", "--by", "stage")
    assert _cells(next(line for line in out.splitlines() if line.startswith("| model"))) == _cells(
        _header(EXAMPLES / "04_inference_vs_validation" / "README.md", "and `--by stage`"))


@pytest.mark.slow
@pytest.mark.ray
def test_example_07_precision_runs_on_the_cpu(tmp_path):
    pytest.importorskip("onnx")  # the convert extra
    _run("run", "examples/07_precision/precision_cpu.yaml", "--set", "timing.iterations=5", "--set",
         "timing.warmup=1", "--output", tmp_path)
    out, _ = _run("compare", tmp_path / "precision_cpu", "--baseline", "fp32")
    header = next(line for line in out.splitlines() if line.startswith("| model"))
    assert _cells(header) == _cells(_header(EXAMPLES / "07_precision" / "README.md", "--baseline fp32` on a"))
    assert [_cells(line)[0] for line in out.splitlines() if re.match(r"\| (fp|int)", line)] == ["fp32", "fp16", "int8"]


@pytest.mark.slow
@pytest.mark.ray
def test_example_08_sweep_runs_on_the_cpu(tmp_path):
    out, err = _run("sweep", "examples/08_sweep_lab/sweep_cpu.yaml", "--set", "timing.iterations=5", "--set",
                    "timing.warmup=1", "--output", tmp_path)
    assert "sweep cpu_sweep: 4 ok, 0 failed, 0 skipped" in out
    from trt_ray_bench import results
    from trt_ray_bench.cluster.sweep import point_columns

    w = point_columns(results.load(tmp_path / "cpu_sweep", samples=False, telemetry=False).runs)
    assert set(w["axis:models.*.options.threads"]) == {1, 2} and set(w["axis:timing.gap_s"]) == {0, 0.02}


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.alone  # frames on a clock, served by the CPU: under two workers (-n 2) the other one waits
def test_example_12_keep_up_runs_on_the_cpu(tmp_path):
    """Shortened: 40 frames a model and phase; the table shows the open-loop columns the
    README shows."""
    _run("run", "examples/12_keep_up/keep_up_cpu.yaml", "--set", "timing.iterations=40", "--set",
         "timing.warmup=2", "--output", tmp_path)
    out, _ = _run("compare", tmp_path / "keep_up_cpu")
    printed = _cells(next(line for line in out.splitlines() if line.startswith("| model")))
    shown = _cells(_header(EXAMPLES / "12_keep_up" / "README.md", "first columns and the open-loop ones"))
    assert [c for c in shown if c != "..."] == [c for c in printed if c in shown]
    rows = {_cells(line)[0]: _cells(line) for line in out.splitlines() if line.startswith("| yolov8n")}
    assert set(rows) == {"yolov8n-cls", "yolov8n"}
    missed = printed.index("alone_missed")
    # a rate, with its interval where the misses' dependence allows one (where the misses are
    # too dependent for 40 frames, the rate alone: timing._queueing.miss_interval)
    assert all(re.fullmatch(r"\d+\.\d%( \[\d+\.\d, \d+\.\d\])?", rows[m][missed]) for m in rows), \
        {m: rows[m][missed] for m in rows}
