"""The report's per-model table has a baseline only where one makes sense: the models are
variants of one model (one task, size, batch and network, run differently: seed 001's
gaps, seed 003's backends), or the user names it (`trb report --baseline MODEL`). Five
unrelated YOLO tasks get no speedup column (it used to read 0.02x, +7417 %), and the
table's note names only what the data holds (GPU times from CUDA events only where a row
has them). On the real H100 trees; the CPU-only tree is in test_report.py (a real run)."""

import shutil
from pathlib import Path

import pytest

from trt_ray_bench import results
from trt_ray_bench.report.content import variants_of_one_model

H100 = Path(__file__).resolve().parents[1] / "data" / "h100"
AGAINST = ("| speedup |", "| vs_baseline_p50", "| verdict |", "| p |", "| detectable |")  # columns


def per_model(md: str) -> str:
    """The per-model table and its note, as the markdown page has them."""
    return md[md.index("### Per model"):md.index("## Diagnostics")]


def header(section: str) -> str:
    return next(x for x in section.splitlines() if x.startswith("| "))


def test_unrelated_models_have_no_baseline(trb, tmp_path):
    out = tmp_path / "r.md"
    code, stdout, err = trb("report", H100 / "gpu_alone_together", "--out", out)
    assert code == 0, err
    table = per_model(out.read_text())
    assert not any(w in header(table) + " |" for w in AGAINST), header(table)
    assert header(table).startswith("| mps | phase | model | n | k | mean |") and "gpu_p50" in header(table)
    assert table.strip().splitlines()[-1] == (
        "_Host ms per batch; gpu_p50: GPU time from CUDA events; fps: latency-bound (batch x 1000 / mean); p50 CI: "
        "across the model's runs where it has several, else the run's own. No speedup: these models are not variants "
        "of one model (their task, input size or network differ), so none is the others' baseline; trb report "
        "--baseline MODEL names one._")


def test_variants_of_one_model_are_compared_with_the_first(trb, tmp_path):
    out = tmp_path / "r.md"
    assert trb("report", H100 / "seed001_gap_study", "--out", out)[0] == 0
    table = per_model(out.read_text())
    assert "| speedup | vs_baseline_p50 % |" in header(table) and "| verdict |" in header(table)
    assert "speedup = p50 of gap-0 (the first of these variants of one model) / p50 of the row" in table


def test_baseline_given(trb, tmp_path):
    out = tmp_path / "r.md"
    code, stdout, err = trb("report", H100 / "gpu_alone_together", "--out", out, "--baseline", "yolov8n")
    assert code == 0, err
    table = per_model(out.read_text())
    assert "| speedup |" in header(table) and "| verdict |" in header(table)
    assert "speedup = p50 of yolov8n (given) / p50 of the row; vs_baseline: the p50 against yolov8n's" in table
    r = results.load(H100 / "gpu_alone_together")
    t = results.versus(r.runs[r.runs.status == "ok"], "yolov8n", samples=r.samples)
    assert (t.loc[t.model == "yolov8n", "speedup"] == 1).all()  # the table the page shows


@pytest.mark.parametrize("args, says", [
    (["--baseline", "nosuch"], "trb: error: --baseline: 'nosuch' has no successful run here (models: yolov8n-cls, "
                               "yolov8n, yolov8n-pose, yolov8n-seg, yolov8n-obb)"),
    (["--baseline", ""], "trb: error: --baseline: "),
])
def test_a_bad_baseline_is_one_line_and_writes_nothing(trb, tmp_path, args, says):
    tree = tmp_path / "tree"
    shutil.copytree(H100 / "gpu_alone_together", tree)
    before = sorted(p for p in tree.rglob("*"))
    code, out, err = trb("report", tree, *args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith(says), err
    assert sorted(p for p in tree.rglob("*")) == before


def test_the_rule(tmp_path):
    ok = results.load(H100 / "seed001_gap_study", samples=False, telemetry=False).runs
    assert variants_of_one_model(ok)  # one network, one size: five gaps
    assert not variants_of_one_model(ok[ok.model == "gap-0"])  # one model: nothing to compare
    other = ok.copy()
    other.loc[other.model == "gap-0.2", "imgsz_h"] = 640  # the same network at another size: not a variant
    assert not variants_of_one_model(other)
    other = ok.copy()
    other.loc[other.model == "gap-0.2", ["source", "onnx_sha256"]] = ["yolov8n.yaml", "x"]
    assert not variants_of_one_model(other)
    other = ok.copy()
    other.loc[other.model == "gap-0.2", "backend"] = "onnxruntime"  # run differently: still a variant
    assert variants_of_one_model(other)
    unrelated = results.load(H100 / "gpu_alone_together", samples=False, telemetry=False).runs
    assert not variants_of_one_model(unrelated)
