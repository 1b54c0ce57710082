"""The numbers ``trb compare`` and ``trb report`` print for the real trees of tests/data
are those they printed before the results were read a row and a few columns at a time
(issue 20): the outputs of that code are kept in tests/data/golden (its README says how
to regenerate them after a change meant to change them). They were printed by Python 3.11
with numpy 2 and pandas 3; another numpy sums in another order (the last digit of a
float) and pandas before 3 sorts ties in another order (rows of a table): the numbers are
compared to 1e-9, and under an older pandas the tables' rows and the report's lines
whatever their order (Python 3.8's CI)."""

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

#: how close a number must be to the one kept (numpy versions differ in the last digits)
REL = 1e-9
#: the pandas that printed them: another sorts ties (rows of a table) in another order
SAME_ORDER = int(pd.__version__.split(".")[0]) >= 3

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"
UPDATE = bool(os.environ.get("TRB_UPDATE_GOLDEN"))
COMPARE = json.loads((GOLDEN / "compare.json").read_text())
REPORTS = sorted(p.stem[len("report-"):] for p in GOLDEN.glob("report-*.md"))


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the command lines name the trees relative to the repository


@pytest.mark.parametrize("line", sorted(COMPARE))
def test_compare_prints_the_same_numbers(trb, at_root, line):
    code, out, err = trb(*line.split(), "--format", "json")
    assert code == 0, err
    got = json.loads(out)
    if UPDATE:
        COMPARE[line] = got
        lines = ["{"] + [f"{json.dumps(k)}: {json.dumps(v, sort_keys=True, ensure_ascii=False)}," for k, v in
                         sorted(COMPARE.items())]
        (GOLDEN / "compare.json").write_text("\n".join(lines)[:-1] + "\n}\n")
    want = COMPARE[line]
    if not SAME_ORDER:
        got, want = dict(got, rows=_sorted(got["rows"])), dict(want, rows=_sorted(want["rows"]))
    assert _same(got, want)


def _sorted(rows: list) -> list:
    """Rows in an order of their own (numbers to 9 digits)."""
    def key(r):
        return json.dumps({k: (f"{v:.9g}" if isinstance(v, float) else v) for k, v in r.items()}, sort_keys=True)
    return sorted(rows, key=key)


def _same(a, b) -> bool:
    """Equal, numbers to ``REL``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, (int, float)):
        return a == pytest.approx(b, rel=REL, abs=1e-12)
    return a == b


def _text(md: str) -> str:
    """The report without its figures' file names (where the figures go)."""
    return re.sub(r"\]\([^)]*_figures/", "](FIGURES/", md)


@pytest.mark.parametrize("name", REPORTS)
def test_report_prints_the_same_numbers_and_captions(trb, at_root, tmp_path, name):
    tree = "tests/data/" + name.replace("_", "/", 1)
    assert (ROOT / tree).is_dir(), tree
    out = tmp_path / f"{name}.md"
    code, _, err = trb("report", tree, "--out", out)
    assert code == 0, err
    want = GOLDEN / f"report-{name}.md"
    if UPDATE:
        want.write_text(out.read_text())
    got, kept = _text(out.read_text()).splitlines(), _text(want.read_text()).splitlines()
    assert sorted(got) == sorted(kept)
    if SAME_ORDER:
        assert got == kept
