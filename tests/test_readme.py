"""The README's pandas examples run as written, on the real H100 result trees shipped in
tests/data/h100 (the README's `results/...` paths point there)."""

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "h100"


def _block(after: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    m = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    return m.group(1)


def test_pandas_api_block_runs_on_real_results(capsys):
    code = _block("### The pandas API")
    code = code.replace('"results/seed001_gap_study"', repr(str(DATA / "seed001_gap_study")))
    code = code.replace('results.load("results",', f"results.load({str(DATA)!r},")
    assert str(DATA) in code and "\"results" not in code  # every path of the example is mapped
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - our own README's example
    every, j = ns["every"], ns["j"]
    assert len(every) == 150 and {"gpu_alone_together", "seed001_gap_study",
                                  "seed002_inference_vs_validation"} <= set(every.experiment)
    t2, st = ns["t2"].set_index("model"), ns["st"]
    assert t2.loc["yolov8n-pose", "validation_alone_ms"] == pytest.approx(9.82, abs=0.01)  # the README's H100 table
    assert t2.loc["yolov8n-obb", "without_val_together_ms"] == pytest.approx(15.12, abs=0.01)
    assert len(st) == 20 and st.metrics_ms.notna().sum() == 10
    assert isinstance(j, pd.DataFrame) and j.gpu_freq_mhz.notna().mean() > 0.9
    assert "speedup" in capsys.readouterr().out  # the rendered versus table


def test_diagnostics_block_runs_on_real_results(capsys):
    from trt_ray_bench import results

    code = _block("### Diagnostics and explanations")
    code = code.replace('"results/gpu_alone_together"', repr(str(DATA / "gpu_alone_together")))
    assert '"results' not in code
    ns = {"results": results}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - our own README's example
    assert set(ns["d"].diagnostics.str["code"]) >= {"cv"}
    out = capsys.readouterr().out
    assert "yolov8n together vs alone, MPS off: p50 +396 %" in out and "GPU utilization" in out
