"""The documentation is right about the code: the reference pages written from the code
name everything the code has, every YAML block is a valid spec (or at least YAML), every
Python block runs on the result trees in tests/data, and every `trb ...` command parses.
The strict site build itself is `.ci/run`'s (and ``test_the_site_builds_strictly`` where
mkdocs is installed)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
H100 = DATA / "h100"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "hooks" / "reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REF = _hooks()


# ---------------------------------------------------------------- the markdown files
def _md_files() -> List[Path]:
    files = sorted((ROOT / "docs").rglob("*.md")) + sorted((ROOT / "examples").rglob("README.md"))
    return files + [ROOT / "README.md", ROOT / "CHANGELOG.md"]


_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)


def _blocks(lang: Tuple[str, ...]) -> Iterator[Tuple[str, int, str]]:
    """(file, line, body) of every fenced block whose info string is one of ``lang``."""
    for f in _md_files():
        text = f.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            if m.group(1) in lang:
                yield str(f.relative_to(ROOT)), text.count("\n", 0, m.start()) + 1, m.group(2)


def _ids(items):
    return [f"{f}:{n}" for f, n, _ in items]


# ---------------------------------------------------------------- generated reference pages
def test_every_generated_page_is_written():
    for uri, make in REF.PAGES.items():
        text = make()
        assert len(text) > 200, uri


def test_the_cli_page_names_every_command_and_option():
    page = REF.cli_page()
    for words, parser, _ in REF.cli_commands():
        if REF._is_group(parser):
            continue
        assert f"## {words} " in page, words
        for a in parser._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            for opt in a.option_strings:
                assert f"`{opt}" in page, f"{words} {opt}"
    for a in _parser()._actions:  # trb's own options (--version, -q, -v)
        if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            for opt in a.option_strings:
                assert f"`{opt}" in page, opt


def test_the_spec_page_names_every_field_option_and_sweep_key():
    page = REF.spec_page()
    for row in REF.spec_fields():
        assert f"`{row['path']}`" in page and row["text"], row
    for backend, known in REF.backend_options().items():
        for k in known:
            assert f"`{k}`" in page, (backend, k)
    for k in REF.sweep_keys():
        assert f"`{k}`" in page, k
    import json

    schema = json.loads(REF.spec_schema_json())
    assert "models" in schema["properties"]


def test_the_results_page_names_every_column():
    from trt_ray_bench.results import schema

    page = REF.results_page()
    for table, arrow in schema.TABLES.items():
        for f in arrow:
            assert f"`{f.name}`" in page, (table, f.name)
    for rows in REF.results_columns().values():
        assert all(text for _, _, text in rows)


def test_the_diagnostics_page_names_every_code_and_threshold():
    from trt_ray_bench.results.diagnose import CODES, THRESHOLDS

    page = REF.diagnostics_page()
    for code in CODES:
        assert f"`{code}`" in page
    for key in THRESHOLDS:
        assert f"`{key}`" in page


def test_the_environment_page_names_every_variable_the_code_reads():
    page = REF.environment_page()
    found = REF.env_names()
    assert {"TRB_CACHE_DIR", "TRB_CUDA", "TRB_SUDO", "TRB_GPU_SOURCE", "TRB_JOURNAL_DIR"} <= set(found)
    for name in found:
        assert f"`{name}`" in page, name


def test_the_exit_codes_page_follows_the_code():
    rows, where = REF.exit_codes()
    page = REF.exit_codes_page()
    codes = [c for c, _, _ in rows]
    assert "0" in codes and "2" in codes
    for c in codes:
        assert f"`{c}`" in page
    import trt_ray_bench.errors as errors

    if hasattr(errors, "EXIT_CODES"):  # the code's own table, once it has one
        assert where == "`trt_ray_bench.errors.EXIT_CODES`"
        assert codes == [str(c) for c, _ in errors.EXIT_CODES]


def test_every_refusal_is_listed():
    ref = REF.refusals()
    assert sum(len(v) for v in ref.values()) > 100
    page = REF.messages_page()
    assert "give exactly one of 'path' (a model file) and 'arch' (e.g. yolov8n)" in page


def test_troubleshooting_explains_every_doctor_fix_line():
    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    missing = [t for _, t in REF.fix_lines() if len(REF.fix_key(t)) >= 12 and REF.fix_key(t) not in text]
    assert not missing, "FIX lines of trb doctor that docs/troubleshooting.md does not quote:\n" + "\n".join(missing)


def test_a_new_field_without_words_fails_the_docs(monkeypatch):
    """The generators refuse to describe something they have no words for."""
    monkeypatch.setitem(REF.COLUMN_TEXT, "no_such_column", "x")
    with pytest.raises(REF.MissingText, match="no_such_column"):
        REF.results_columns()


# ---------------------------------------------------------------- YAML blocks
YAML_BLOCKS = list(_blocks(("yaml", "yml")))


@pytest.mark.parametrize("where,line,body", YAML_BLOCKS, ids=_ids(YAML_BLOCKS))
def test_every_yaml_block_is_valid(where, line, body):
    """An experiment spec (it has models) validates; a sweep (it has axes) validates and
    expands into its points; anything else at least parses as YAML."""
    from trt_ray_bench.spec import expand, spec_from_dict, sweep_from_dict

    data = yaml.safe_load(body)
    assert data is not None, f"{where}:{line}: an empty YAML block"
    if isinstance(data, dict) and "axes" in data:
        sweep = sweep_from_dict(data, f"{where}:{line}", base_dir=ROOT)
        assert expand(sweep)
    elif isinstance(data, dict) and "models" in data:
        spec_from_dict(data, f"{where}:{line}")


def test_the_docs_have_yaml_blocks_of_each_kind():
    kinds = {("axes" in d) * 2 + ("models" in d) for d in (yaml.safe_load(b) for _, _, b in YAML_BLOCKS)
             if isinstance(d, dict)}
    assert {0, 1, 2} <= kinds  # fragments, experiment specs and sweeps are all checked


# ---------------------------------------------------------------- Python blocks
#: the docs' result folders -> the real trees kept in tests/data
RESULTS = {
    "results/gap_study": H100 / "seed001_gap_study",
    "results/gpu_alone_together": H100 / "gpu_alone_together",
    "results/inference_vs_validation": H100 / "seed002_inference_vs_validation",
    # alone / together runs of five models, as the quickstart, timing pitfalls and the
    # Jetson run write them (with NVML telemetry standing in for tegrastats)
    "results/quickstart": H100 / "gpu_alone_together",
    "results/timing_pitfalls": H100 / "gpu_alone_together",
    "results/jetson_first_run": H100 / "gpu_alone_together",
    "results/cpu_sweep": DATA / "cpu" / "cpu_sweep",
}

PY_BLOCKS = list(_blocks(("python",)))


def _mapped(code: str) -> str:
    for path, tree in sorted(RESULTS.items(), key=lambda kv: -len(kv[0])):
        code = code.replace(f'"{path}"', repr(str(tree)))
    code = code.replace('results.load("results",', f"results.load({str(H100)!r},")
    return code


@pytest.mark.parametrize("where,line,body", PY_BLOCKS, ids=_ids(PY_BLOCKS))
def test_every_python_block_runs_on_real_results(where, line, body, capsys, tmp_path, monkeypatch):
    code = _mapped(body)
    assert '"results' not in code, f"{where}:{line}: a results path the test does not map to tests/data"
    monkeypatch.chdir(tmp_path)  # a block that writes, writes here
    ns: dict = {}
    exec(compile(code, f"{where}:{line}", "exec"), ns)  # noqa: S102 - our own documentation's example
    capsys.readouterr()


def _run_block(path: str, marker: str) -> dict:
    """The namespace of the first Python block after ``marker`` in ``path``, run mapped."""
    text = (ROOT / path).read_text(encoding="utf-8")
    m = re.compile(r"```python\n(.*?)```", re.S).search(text, text.index(marker))
    ns: dict = {}
    exec(compile(_mapped(m.group(1)), path, "exec"), ns)  # noqa: S102
    return ns


def test_the_pandas_guide_gives_the_h100_tables(capsys):
    ns = _run_block("docs/guides/pandas-analysis.md", "## Load, filter, compare")
    every, j = ns["every"], ns["j"]
    assert len(every) == 150 and {"gpu_alone_together", "seed001_gap_study",
                                  "seed002_inference_vs_validation"} <= set(every.experiment)
    t2, st = ns["t2"].set_index("model"), ns["st"]
    # the H100 table of the inference vs validation guide
    assert t2.loc["yolov8n-pose", "validation_alone_ms"] == pytest.approx(9.82, abs=0.01)
    assert t2.loc["yolov8n-obb", "without_val_together_ms"] == pytest.approx(15.12, abs=0.01)
    assert len(st) == 20 and st.metrics_ms.notna().sum() == 10
    assert j.gpu_freq_mhz.notna().mean() > 0.9
    assert "speedup" in capsys.readouterr().out


def test_the_pandas_guide_explains_what_else_differed(capsys):
    ns = _run_block("docs/guides/pandas-analysis.md", "## What to distrust")
    assert set(ns["d"].diagnostics.str["code"]) >= {"cv"}
    out = capsys.readouterr().out
    assert "yolov8n together vs alone, MPS off: p50 +396 %" in out and "GPU utilization" in out


def test_the_idle_gap_guide_prints_its_table(capsys):
    _run_block("docs/guides/idle-gap-slowdown.md", "## 1. Measure the slowdown")
    out = capsys.readouterr().out
    text = (ROOT / "docs" / "guides" / "idle-gap-slowdown.md").read_text(encoding="utf-8")
    for line in out.splitlines()[2:]:  # the rows the guide shows, as printed
        assert line.strip() in text, line


# ---------------------------------------------------------------- trb commands
def _parser():
    from trt_ray_bench.cli import build_parser

    return build_parser()


def _commands_in(body: str) -> Iterator[str]:
    """The `trb ...` commands of a shell block: continuation lines joined, each segment of
    `&&`, `;` and `|` that starts with trb (after VAR=value assignments)."""
    text = body.replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        seg: List[str] = []
        for tok in tokens + ["&&"]:
            if tok in ("&&", ";", "|", "||", ">", ">>", "<", "2>", "2>&1", "&"):
                while seg and re.match(r"^[A-Z_][A-Z0-9_]*=", seg[0]):
                    seg = seg[1:]
                if seg and seg[0] == "trb":
                    yield shlex.join(seg)
                seg = []
            else:
                seg.append(tok)


SHELL = [(f, n, c) for f, n, b in _blocks(("bash", "sh", "console", "shell")) for c in _commands_in(b)]


@pytest.mark.parametrize("where,line,command", SHELL, ids=_ids(SHELL))
def test_every_trb_command_in_the_docs_parses(where, line, command, capsys):
    argv = shlex.split(command)[1:]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        pytest.fail(f"{where}:{line}: {command}: {err.strip() or exc}")
    for value in (getattr(args, "spec", None),):  # a spec the docs name must exist
        if isinstance(value, str) and value.startswith("examples/"):
            assert (ROOT / value).is_file(), f"{where}:{line}: {value} does not exist"


def _inline_commands() -> Iterator[Tuple[str, int, str]]:
    for f in _md_files():
        text = f.read_text(encoding="utf-8")
        outside = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for m in re.finditer(r"(?<!`)`(trb(?: [^`]+)?)`(?!`)", outside):
            yield str(f.relative_to(ROOT)), outside.count("\n", 0, m.start()) + 1, m.group(1)


INLINE = list(_inline_commands())


@pytest.mark.parametrize("where,line,command", INLINE, ids=_ids(INLINE))
def test_every_inline_trb_command_names_real_commands_and_flags(where, line, command):
    """Prose names commands in part (`trb node start --address`): the words must be a
    command and each flag one of its options."""
    parser = _parser()
    tokens = shlex.split(command)[1:]
    while tokens:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or tokens[0] not in sub.choices:
            break
        parser = sub.choices[tokens.pop(0)]
    if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions) and tokens:
        pytest.fail(f"{where}:{line}: `{command}`: {tokens[0]!r} is not a command of {parser.prog}")
    options = {o for a in parser._actions for o in a.option_strings}
    for tok in tokens:
        if tok == "--":
            break
        if tok.startswith("-") and not re.match(r"^-\d", tok):
            assert tok.split("=", 1)[0] in options, f"{where}:{line}: `{command}`: {parser.prog} has no {tok}"


def test_the_docs_name_every_command():
    """Every command appears in the hand-written pages too, not only in the reference."""
    text = " ".join(f.read_text(encoding="utf-8") for f in _md_files())
    for words, parser, _ in REF.cli_commands():
        if not REF._is_group(parser) and words not in ("trb completion",):
            assert f"`{words}" in text or f"{words} " in text, words


# ---------------------------------------------------------------- words users never need
@pytest.mark.parametrize("path", _md_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_history_or_rig_in_the_users_pages(path):
    """Users read docs, not history: no issue numbers, no 'the old behaviour', no borrowed
    machines, no paths outside the repository; the original notes' study names appear in
    one mapping table only; the GPU rig's script only on the contributors' testing page."""
    rel = str(path.relative_to(ROOT))
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bissue \d+|\bissues \d+", text, re.I), rel
    assert "old behaviour" not in text and "lent " not in text, rel
    assert "../shared/" not in text, rel
    if rel not in ("docs/concepts/studies.md",):
        assert not re.search(r"\bseed 00\d", text, re.I), rel
    if rel not in ("docs/contributing/testing.md",):
        assert "gpu_proof.sh" not in text, rel


# ---------------------------------------------------------------- the site
def test_the_site_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]'); CI builds the site in .ci/run")
    exe = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    p = subprocess.run([exe, "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    pages = list((tmp_path / "site").rglob("index.html"))
    assert len(pages) > 40
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "CHANGELOG.md"] + sorted((ROOT / "examples").rglob("README.md")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_repository_pages_link_to_files_that_exist(path):
    """README.md and the examples' READMEs are read on the repository too, not only on the
    site (whose links the strict build checks): their relative links name real files."""
    for m in re.finditer(r"\]\(([^)#\s]+)(#[^)]*)?\)", path.read_text(encoding="utf-8")):
        if not m.group(1).startswith(("http://", "https://")):
            assert (path.parent / m.group(1)).exists(), f"{path.relative_to(ROOT)}: {m.group(1)}"
