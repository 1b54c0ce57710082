"""One consistent CLI (issue 19): --version, exit codes, one-line refusals, internal errors
in one line with the traceback in a log, JSON outputs, dry runs that contact nothing,
the spec kind a command was given, completion scripts, the run's table fitted to the
terminal. The runs here are real (ONNX Runtime on the CPU, a local Ray)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trt_ray_bench import __version__
from trt_ray_bench.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[1]
H100 = ROOT / "tests" / "data" / "h100"


def _cli(*args, env=None, timeout=120, cwd=None) -> subprocess.CompletedProcess:
    """``trb ARGS`` in a process of its own (``python -m trt_ray_bench.cli``: this
    interpreter's package, installed or not)."""
    return subprocess.run([sys.executable, "-m", "trt_ray_bench.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd)


def _no_nan(text: str):
    """JSON that must not hold NaN / Infinity (they are null): parsing them fails here."""
    def refuse(name):
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- --version, --help, exit codes ------------------------------------------------------


def test_version():
    p = _cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"trb {__version__}", p.stdout + p.stderr


def test_help_lists_every_exit_code_and_the_environment():
    p = _cli("--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    for code, what in EXIT_CODES:
        assert f"{code} {' '.join(what.split())}" in text, code
    for env in ("TRB_CACHE_DIR", "TRB_LOG_DIR", "TRB_PROGRESS", "COLUMNS", "trb completion bash"):
        assert env in text


def test_usage_mistakes_are_one_line_exit_2(trb, tmp_path):
    for args, needle in (
        (["compare", tmp_path, "--run", "x", "--all"], "not allowed with argument"),
        (["compare", tmp_path, "--format", "xml"], "invalid choice"),
        (["run"], "the following arguments are required: spec"),
        (["nope"], "invalid choice"),
    ):
        p = _cli(*args)
        assert p.returncode == 2 and needle in _one_line(p.stderr) and p.stdout == "", (args, p.stderr)
    code, out, err = trb("-q", "-v", "doctor")
    assert code == 2 and "-q and -v" in _one_line(err)


def test_conflicting_compare_options_are_refused(trb):
    run = H100 / "gpu_alone_together"
    for by in ("mode", "stage", "gap"):
        code, out, err = trb("compare", run, "--by", by, "--baseline", "yolov8n")
        assert code == 2 and f"--baseline: not used by --by {by}" in _one_line(err) and out == ""
    code, out, err = trb("compare", run, "--json", "--format", "csv")
    assert code == 2 and "--json: conflicts with --format csv" in _one_line(err)


def test_an_empty_path_option_is_refused(trb, tmp_path):
    spec = tmp_path / "exp.yaml"
    spec.write_text("name: x\nmodels: [{path: m.onnx}]\n")
    for args, flag in ((["run", spec, "--output", ""], "--output"), (["sweep", spec, "--output", " "], "--output"),
                       (["models", "make", "--arch", "yolov8n", "--task", "cls", "--out-dir", ""], "--out-dir"),
                       (["report", tmp_path, "--out", ""], "--out"), (["tegrastats", spec, "--out", ""], "--out")):
        code, out, err = trb(*args)
        assert code == 2 and _one_line(err).startswith(f"trb: error: {flag}: empty"), (args, err)
    assert not (tmp_path / "results").exists()


def test_models_convert_of_a_file_that_is_not_onnx_is_one_clean_line(trb, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    code, out, err = trb("models", "convert", notes, "--precision", "fp16")
    line = _one_line(err)
    assert code == 2 and line.startswith(f"trb: error: {notes}: expected an .onnx file") and ".txt" in line
    assert "pydantic" not in err and "http" not in err
    code, out, err = trb("models", "convert", tmp_path / "missing.onnx", "--precision", "fp16")
    assert code == 2 and _one_line(err) == f"trb: error: {tmp_path / 'missing.onnx'}: no such file"
    code, out, err = trb("engine", "build", notes)
    assert code == 2 and "expected an .onnx file" in _one_line(err)


# --- an internal error ----------------------------------------------------------------------


def test_an_internal_error_is_one_line_with_its_traceback_in_a_log(tmp_path):
    """A bug (here: provenance collection raising) is exit 3, one line naming the type, the
    message and a log file (owner-only) that holds the whole traceback."""
    code = ("import sys, trt_ray_bench.control as c\n"
            "def broken(*a, **k):\n    return {}['no such key']\n"
            "c.collect_provenance = broken\n"
            "from trt_ray_bench.cli import main\nsys.exit(main(['doctor']))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "TRB_LOG_DIR": str(tmp_path / "logs")})
    assert p.returncode == 3, p.stderr
    line = _one_line(p.stderr)
    assert line.startswith("trb: internal error: KeyError: 'no such key' (full traceback: "), line
    log = Path(line.rsplit("(full traceback: ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "logs" and log.is_file()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text and "command: trb doctor" in text


def test_an_internal_error_in_process_and_with_v(trb, tmp_path, monkeypatch):
    import trt_ray_bench.control as control

    monkeypatch.setenv("TRB_LOG_DIR", str(tmp_path))

    def broken(*a, **k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(control, "collect_provenance", broken)
    code, out, err = trb("doctor")
    assert code == 3 and _one_line(err).startswith("trb: internal error: ZeroDivisionError: boom (full traceback: ")
    code, out, err = trb("doctor", "-v")  # -v: the traceback printed as well
    assert code == 3 and "Traceback (most recent call last)" in err and len(list(tmp_path.glob("trb-*.log"))) == 2


# --- doctor ----------------------------------------------------------------------------------


def test_doctor_json_and_its_exit_code_agree_with_its_lines(trb):
    code, out, err = trb("doctor")
    problems = [x for x in out.splitlines() if "FIX:" in x or "MISSING" in x or "BROKEN" in x]
    assert code == (4 if problems else 0), out
    code_j, out_j, err_j = trb("doctor", "--json")
    d = _no_nan(out_j)
    assert code_j == code and d["exit_code"] == code and d["trb_version"] == __version__
    assert [c["status"] for c in d["checks"]].count("ok") == len(d["checks"]) - len(problems)
    assert len(d["problems"]) == len(problems)
    assert any(c["label"] == "backend" and c["text"].startswith("onnxruntime: ok") for c in d["checks"])


# --- a spec given to the other command --------------------------------------------------------


def test_run_given_a_sweep_and_sweep_given_an_experiment(trb, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: s\nbase: {name: x, models: [{path: m.onnx}]}\naxes: {timing.gap_s: [0, 0.01]}\n")
    code, out, err = trb("run", sweep)
    assert code == 2 and _one_line(err) == (f"trb: error: {sweep} is a sweep spec (it has axes): run it with "
                                            f"trb sweep {sweep}")
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: x\nmodels: [{path: m.onnx}]\n")
    code, out, err = trb("sweep", exp)
    assert code == 2 and _one_line(err) == (f"trb: error: {exp} is an experiment spec (it has models, no axes): "
                                            f"run it with trb run {exp}")


# --- dry runs contact nothing -----------------------------------------------------------------


def _listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    s.settimeout(0.5)
    return s


def _accepted(s: socket.socket) -> bool:
    try:
        conn, _ = s.accept()
    except socket.timeout:
        return False
    conn.close()
    return True


def test_node_start_dry_run_with_an_address_contacts_nothing(trb):
    """Nothing listens at 127.0.0.1:1 (a real join would be refused in one line, exit 2);
    the dry run prints the command and says what it did not check. A listener of our own
    sees no connection."""
    code, out, err = trb("node", "start", "--address", "127.0.0.1:1", "--dry-run")
    assert code == 0, err
    argv, note = out.splitlines()[:2]
    assert argv.startswith("ray start --address=127.0.0.1:1")
    assert note.startswith("# not checked (a dry run contacts nothing): that a head answers at 127.0.0.1:1")
    code, out, err = trb("node", "start", "--address", "127.0.0.1:1")
    assert code == 2 and "no Ray cluster answers there" in _one_line(err)  # what the dry run skipped
    s = _listener()
    try:
        port = s.getsockname()[1]
        code, out, err = trb("node", "start", "--address", f"127.0.0.1:{port}", "--dry-run")
        assert code == 0 and not _accepted(s), err
    finally:
        s.close()


def test_run_and_sweep_dry_runs_with_an_address_contact_nothing(trb, tmp_path, cls_onnx):
    spec = tmp_path / "exp.yaml"
    spec.write_text(f"name: dry\noutput: {tmp_path / 'results'}\nmodels: [{{path: {cls_onnx}}}]\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: sw\nbase_file: exp.yaml\naxes: {{timing.gap_s: [0, 0.01]}}\n")
    s = _listener()
    try:
        port = s.getsockname()[1]
        for args in (["run", spec], ["sweep", sweep]):
            code, out, err = trb(*args, "--address", f"127.0.0.1:{port}", "--dry-run")
            assert code == 0, err
            assert f"not checked the cluster at 127.0.0.1:{port} (a dry run contacts nothing)" in out
            assert out.rstrip().endswith("dry run: nothing measured, nothing written")
        assert not _accepted(s)
        code, out, err = trb("run", spec, "--address", "127.0.0.1:1", "--dry-run")
        assert code == 0, err
    finally:
        s.close()
    assert not (tmp_path / "results").exists()
    code, out, err = trb("run", spec, "--dry-run", "--json")
    d = _no_nan(out)
    assert code == 0 and d["dry_run"] is True and d["experiment"] == "dry" and len(d["models"]) == 1
    assert [p["phase"] for p in d["phases"]] == ["alone", "together"] and any("exports" in x for x in d["not_checked"])


# --- JSON of compare ------------------------------------------------------------------------


def test_compare_json_has_every_column_and_null_for_nan(trb):
    run = H100 / "gpu_alone_together"
    code, out, err = trb("compare", run, "--format", "json")
    assert code == 0, err
    d = _no_nan(out)
    assert d["by"] == "phase" and d["runs"] and d["confidence"] == 0.95
    rows = d["rows"]
    assert [r["model"] for r in rows] == ["yolov8n-cls", "yolov8n", "yolov8n-pose", "yolov8n-seg", "yolov8n-obb"]
    for col in ("alone_p50_ms", "together_p50_ms", "increase_p50_pct", "increase_p50_lo_pct", "increase_p50_hi_pct",
                "verdict", "why", "p_value", "detectable_pct", "status"):
        assert col in rows[0], col
    assert any(v is None for r in rows for v in r.values())  # NaN cells: null
    # the same table as the CSV, to the digit
    code, csv, err = trb("compare", run, "--format", "csv")
    import io

    import pandas as pd

    t = pd.read_csv(io.StringIO(csv))
    assert list(t.columns) == list(rows[0].keys())
    assert t["alone_p50_ms"].round(4).tolist() == [round(r["alone_p50_ms"], 4) for r in rows]
    code, out2, err = trb("compare", run, "--json")
    assert code == 0 and _no_nan(out2) == d


def test_compare_by_column_uses_baseline_and_json(trb):
    run = H100 / "seed002_inference_vs_validation"
    code, out, err = trb("compare", run, "--by", "mode", "--format", "json", "--run", "20261123-171820-bc490b")
    d = _no_nan(out)
    assert code == 0 and d["by"] == "mode" and d["rows"] and d["baseline"] is None


# --- completion -------------------------------------------------------------------------------


def _complete(script: str, words: list) -> list:
    """What bash offers for ``words`` (the last one being completed) with ``script`` loaded."""
    line = " ".join(words)
    prog = (f"{script}\nCOMP_WORDS=({line})\n" + ("COMP_WORDS+=('')\n" if words[-1] == "" else "")
            + "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_trb_complete\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    p = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [x for x in p.stdout.splitlines() if x]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_bash_completion_from_the_parser(trb):
    code, script, err = trb("completion", "bash")
    assert code == 0 and "complete -o default -F _trb_complete trb" in script
    assert set(_complete(script, ["trb", "co"])) == {"compare", "completion"}
    assert _complete(script, ["trb", "compare", "d", "--format", ""]) == ["md", "csv", "json"]
    assert set(_complete(script, ["trb", "sweep", "--s"])) == {"--set"}
    assert set(_complete(script, ["trb", "models", ""])) == {"make", "convert"}
    assert "--out-dir" in _complete(script, ["trb", "engine", "build", "--o"])
    assert _complete(script, ["trb", "run", ""]) == []  # a spec file: the shell's own file completion
    code, zsh, err = trb("completion", "zsh")
    assert code == 0 and "bashcompinit" in zsh and script in zsh
    code, out, err = trb("completion", "fish")
    assert code == 2 and "expected bash or zsh" in _one_line(err)


# --- the run's table in a terminal --------------------------------------------------------


def test_the_run_table_fits_80_columns():
    """The H100 run's alone vs together table (169 columns wide as markdown) fitted to 80:
    the p50s, their Δ and the verdict stay; what was left out is said."""
    from trt_ray_bench import results
    from trt_ray_bench.results.terminal import fit_table

    r = results.load(H100 / "gpu_alone_together", samples=True, telemetry=False).latest()
    table = results.alone_vs_together(r.runs, samples=r.samples)
    assert max(len(x) for x in results.render(table).splitlines()) > 150
    text = fit_table(table, 80)
    lines = text.splitlines()
    assert all(len(x) <= 80 for x in lines), [x for x in lines if len(x) > 80]
    head = lines[0]
    for col in ("model", "alone_p50", "together_p50", "Δ p50 %", "verdict"):
        assert col in head, head
    assert "alone_mean" not in head and any(x.startswith("left out to fit 80 columns: ") for x in lines)
    wide = fit_table(table, None)
    assert "alone_mean" in wide.splitlines()[0] and "left out" not in wide


# --- real runs: plain lines off a terminal, a live display on one ----------------------------


def _spec(tmp_path, onnx, **timing) -> Path:
    t = {"iterations": 30, "warmup": 2, **timing}
    spec = tmp_path / "exp.yaml"
    spec.write_text(json.dumps({"name": "cli19", "output": str(tmp_path / "results"), "schedule": "alone",
                                "models": [{"path": str(onnx), "name": "cls", "options": {"threads": 1}}],
                                "timing": t}))
    return spec


@pytest.mark.slow
@pytest.mark.ray
def test_run_json_and_plain_progress_lines(tmp_path, cls_onnx):
    """Off a terminal: stdout is the JSON summary alone; stderr has one plain line where
    each phase starts and ends (with its n and p50), never a redraw, and the warnings
    counted by kind, their messages left to -v and the report."""
    p = _cli("run", _spec(tmp_path, cls_onnx), "--json", timeout=300)
    assert p.returncode == 0, p.stderr
    d = _no_nan(p.stdout)
    assert Path(d["run_dir"]).is_dir() and d["exit_code"] == 0 and d["ok"] is True and d["experiment"] == "cli19"
    (row,) = d["rows"]
    assert row["model"] == "cls" and row["status"] == "ok" and row["n"] == 30 and row["p50_ms"] > 0
    assert row["p50_ci_lo_ms"] is None or row["p50_ci_lo_ms"] <= row["p50_ms"] <= row["p50_ci_hi_ms"]
    assert {w["code"] for w in row["warnings"]} >= {"few_samples"}  # 30 inferences: no p99
    assert d["warnings"]["cls"]["few_samples"] == 1 and d["table"][0]["model"] == "cls"
    err = p.stderr
    assert "\r" not in err and "\x1b[" not in err
    lines = err.splitlines()
    assert any(x.startswith("repeat 0  alone    cls") for x in lines)
    done = next(x for x in lines if x.startswith("done     repeat 0  alone"))
    assert f"cls: n 30, p50 {row['p50_ms']:.3g} ms" in done, done
    assert any(x.startswith("warnings (") for x in lines) and "  cls: " in err and "few_samples" in err
    assert "distribution-free" not in err  # the message itself: -v or the report


@pytest.mark.slow
@pytest.mark.ray
def test_run_on_a_terminal_draws_a_live_display_and_fits_its_table(tmp_path, cls_onnx):
    """Under a pseudo-terminal 80 columns wide (python's pty): the phase's live line is
    redrawn in place (inferences done / target), and the final table fits 80 columns."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TRB_PROGRESS")}
    env["TERM"] = "xterm"
    proc = subprocess.Popen([sys.executable, "-m", "trt_ray_bench.cli", "run", str(_spec(tmp_path, cls_onnx,
                            iterations=3000, warmup=5))], stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    chunks = []
    t_end = time.time() + 300
    while time.time() < t_end:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode("utf-8", "replace")
    redraws = [x for x in text.split("\r") if x.startswith("repeat 0 alone  cls ")]
    assert any("/3000" in x and "%" in x for x in redraws), text[-3000:]
    lines = [x for x in text.replace("\r\n", "\n").split("\n") if x.startswith("|")]
    assert lines and all(len(x) <= 80 for x in lines), lines
    assert "alone_p50" in lines[0] or "p50" in lines[0]


def test_a_file_the_machine_cannot_write_is_one_line_not_an_internal_error(trb, tmp_path, monkeypatch):
    """A full disk (ENOSPC, raised here by a substituted ``results.load``, as a tree on a
    failing disk would) is the machine's, not a bug: one line naming the file, exit 2, no
    crash log. Any other OSError is still an internal error."""
    import errno

    from trt_ray_bench import results

    monkeypatch.setenv("TRB_LOG_DIR", str(tmp_path / "logs"))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "/mnt/lab/results/x/runs.parquet")

    monkeypatch.setattr(results, "load", full)
    code, out, err = trb("compare", str(tmp_path))
    assert (code, _one_line(err)) == (2, "trb: error: /mnt/lab/results/x/runs.parquet: No space left on device")
    assert not (tmp_path / "logs").exists()

    def other(*a, **k):
        raise OSError(errno.ECONNRESET, "Connection reset by peer")

    monkeypatch.setattr(results, "load", other)
    code, out, err = trb("compare", str(tmp_path))
    assert code == 3 and _one_line(err).startswith("trb: internal error: ConnectionResetError: ")
