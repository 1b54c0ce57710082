"""A run stopped by each of the four signals a user's run meets, for real: a `trb run`
process (its own local Ray, real ONNX Runtime models) holding a GPU clock lock, sent
SIGINT (Ctrl-C: to its process group, as a terminal does), SIGTERM, SIGHUP (an ssh
session that drops) or SIGKILL (the OOM killer, a crash). The GPU is the stand-in
``nvidia-smi`` of conftest's ``fake_nvidia`` (a hardware-only command: a small executable
first on PATH that keeps the clock state in a file and records its argv).

INT, TERM and HUP restore the clocks and exit 128 + the signal with no stack dump; KILL
cannot be caught: the node's journal is left, `trb doctor` and `trb node start` name it,
and the next run restores it before it records anything. No Ray process of the run
outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Set

import pytest

from trt_ray_bench import results

pytestmark = [pytest.mark.ray, pytest.mark.slow]

LOCKED = 1410


def _spec(tmp_path: Path, cls_onnx, clocks="{gpu_mhz: 1410}", timing="{duration_s: 120, warmup: 1}") -> Path:
    p = tmp_path / f"spec-{abs(hash(clocks)) % 1000}.yaml"
    p.write_text(f"name: signalled\noutput: {tmp_path / 'results'}\nschedule: together\nclocks: {clocks}\n"
                 f"telemetry: {{nvml: false, interval_s: 0.2}}\ntiming: {timing}\n"
                 f"models:\n  - {{path: {cls_onnx}, name: a, options: {{threads: 1}}}}\n"
                 f"  - {{path: {cls_onnx}, name: b, options: {{threads: 1}}}}\n")
    return p


def _descendants(pid: int) -> Set[int]:
    """Every process under ``pid`` (children's children too), from /proc."""
    children = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int(d.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _alive(pids: Set[int]) -> Set[int]:
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":  # a zombie has exited; its parent has not reaped it yet
            alive.add(p)
    return alive


def _exiting_agent(pid: int) -> bool:
    """Whether ``pid`` is one of Ray's two agents (dashboard, runtime env) that has seen its
    raylet die: its log says so. Such an agent then reports the death to the GCS, which is
    gone too, with a fixed 60-s timeout (``ray._private.utils.publish_error_to_driver``), and
    exits: Ray's own minute, which the test does not wait out."""
    logs = {"ray::DashboardAgent": "dashboard_agent.log", "ray::RuntimeEnvAgent": "runtime_env_agent.log"}
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
        if title not in logs:
            return False
        fds = Path(f"/proc/{pid}/fd")
        log = next(Path(t) for t in (os.readlink(f) for f in fds.iterdir()) if t.endswith("/" + logs[title]))
        return "The parent is dead" in log.read_text(errors="replace")
    except (OSError, StopIteration):  # gone meanwhile, or no log of its own open
        return not Path(f"/proc/{pid}").exists()


@contextmanager
def _killed_after(proc):
    """Whatever happens in the block, the run does not outlive the test."""
    try:
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _start(tmp_path, spec, fake_nvidia):
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "trt_ray_bench.cli", "run", str(spec)], stdout=fo, stderr=fe,
                                start_new_session=True)
    t_end = time.time() + 120
    while fake_nvidia.locks()["locked_gpu"] is None and time.time() < t_end and proc.poll() is None:
        time.sleep(0.2)
    assert fake_nvidia.locks()["locked_gpu"] == [LOCKED, LOCKED], out.read_text() + err.read_text()
    while "together" not in err.read_text() and time.time() < t_end:  # into the measured phase (a progress line)
        time.sleep(0.2)
    time.sleep(1.5)
    return proc, out, err


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_a_run_stopped_by_a_signal(sig, tmp_path, cls_onnx, fake_nvidia, monkeypatch):
    signum = getattr(signal, sig)
    proc, out, err = _start(tmp_path, _spec(tmp_path, cls_onnx), fake_nvidia)
    family = _descendants(proc.pid)  # the local Ray this run started, and its workers
    assert len(family) >= 4
    with _killed_after(proc):
        if sig == "SIGINT":
            os.killpg(proc.pid, signum)  # Ctrl-C in a terminal: the foreground process group
        else:
            os.kill(proc.pid, signum)
        code = proc.wait(timeout=180)
    stderr = err.read_text()
    journals = list((tmp_path / "journal").glob("*.json"))
    if sig == "SIGKILL":
        assert code == -signal.SIGKILL
        assert fake_nvidia.locks()["locked_gpu"] == [LOCKED, LOCKED]  # nobody could restore
        assert len(journals) == 1
    else:
        assert code == 128 + signum, (code, stderr[-3000:])
        assert "Traceback" not in stderr and "*** " not in stderr and "Stack trace" not in stderr, stderr[-3000:]
        if sig == "SIGINT":
            assert stderr.splitlines()[-1] == "trb: interrupted"
        elif sig == "SIGTERM":
            assert stderr.splitlines()[-1] == "trb: stopped by SIGTERM"
        # (SIGHUP: the terminal is gone; what trb prints after it goes to /dev/null)
        assert fake_nvidia.locks()["locked_gpu"] is None
        assert "-rgc" in fake_nvidia.smi()
        assert journals == []  # cleared after the restore
    # no half-written run: a complete run folder (what was measured) or none. A run is
    # written as it goes into a hidden folder: SIGKILL leaves that (no reader lists it),
    # the next run into the experiment's folder removes it (below)
    root = tmp_path / "results" / "signalled"
    hidden = [p for p in root.glob(".*") if p.is_dir()] if root.exists() else []
    if sig == "SIGKILL":
        assert len(hidden) <= 1 and not list(root.glob("*/runs.parquet"))
    else:
        assert not hidden
        runs = results.load(root).runs  # what was measured, written: here the together phase, cut short
        assert set(runs.status) == {"interrupted"}
    # every process of the run's local Ray dies with it (its agents check their raylet)
    t_end = time.time() + 90
    while time.time() < t_end:
        left = _alive(family)
        if all(_exiting_agent(p) for p in left):
            break
        time.sleep(0.5)
    assert all(_exiting_agent(p) for p in left), [Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in left
                                                   if Path(f"/proc/{p}").exists()]
    if sig != "SIGKILL":
        return

    # --- what a later user of this node sees
    from trt_ray_bench.cli import main

    p = subprocess.run([sys.executable, "-m", "trt_ray_bench.cli", "doctor"], capture_output=True, text=True)
    line = next(x for x in p.stdout.splitlines() if x.startswith("journal"))
    assert "FIX: GPU 0 clocks locked" in line and "trb doctor --restore" in line
    p = subprocess.run([sys.executable, "-m", "trt_ray_bench.cli", "node", "start", "--head", "--dry-run"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.splitlines()) == 1
    assert "a run killed on this node left it changed" in p.stderr and "trb doctor --restore" in p.stderr
    # the next run (clocks: default) restores it first and says so; it records no state it did not check
    fake_nvidia.forget_calls()
    assert main(["run", str(_spec(tmp_path, cls_onnx, clocks="default", timing="{iterations: 3, warmup: 1}"))]) == 0
    assert not [p for p in root.glob(".*") if p.is_dir()]  # the killed run's hidden folder: removed
    assert fake_nvidia.locks()["locked_gpu"] is None and fake_nvidia.smi()[0] == "-rgc"
    assert not list((tmp_path / "journal").glob("*.json"))
    runs = results.load(tmp_path / "results" / "signalled").latest().runs
    assert runs.warnings.map(lambda w: any("restored what a killed run left: GPU 0 clocks locked" in x
                                           for x in w)).all()


def test_a_second_ctrl_c_does_not_cut_the_restore_short(tmp_path, cls_onnx, fake_nvidia):
    """Ctrl-C, then Ctrl-C again while the clocks are being reset (the stand-in
    nvidia-smi's reset takes 4 s, as a busy driver's can): the second is ignored until the
    machine is restored, and what was measured is written."""
    fake_nvidia.configure(reset_delay_s=4)
    proc, out, err = _start(tmp_path, _spec(tmp_path, cls_onnx), fake_nvidia)
    with _killed_after(proc):
        os.killpg(proc.pid, signal.SIGINT)
        t_end = time.time() + 60
        while "-rgc" not in fake_nvidia.smi() and time.time() < t_end:  # the reset under way
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=180)
    stderr = err.read_text()
    assert code == 128 + signal.SIGINT, (code, stderr[-3000:])
    assert "a second Ctrl-C is ignored until the machine is restored" in stderr
    assert fake_nvidia.locks()["locked_gpu"] is None and not list((tmp_path / "journal").glob("*.json"))
    assert set(results.load(tmp_path / "results" / "signalled").runs.status) == {"interrupted"}


def test_a_monitor_killed_mid_run_fails_the_run_and_its_journal_restores_the_machine(tmp_path, cls_onnx, fake_nvidia):
    """The Monitor holds the machine's controls; the OOM killer's SIGKILL leaves no handler
    to restore them. The run goes on to record the failure (not a crash), and a task on the
    node restores the clocks from the Monitor's journal (the stand-in nvidia-smi records the
    reset). Killed during a together phase of 15 s."""
    proc, out, err = _start(tmp_path, _spec(tmp_path, cls_onnx, timing="{duration_s: 15, warmup: 1}"), fake_nvidia)
    with _killed_after(proc):
        monitor = [p for p in _descendants(proc.pid)
                   if Path(f"/proc/{p}/cmdline").exists()
                   and Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"ray::Monitor")]
        assert len(monitor) == 1, monitor
        os.kill(monitor[0], signal.SIGKILL)
        code = proc.wait(timeout=240)
    stderr = err.read_text()
    assert code == 1, (code, stderr[-3000:])
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert "the Monitor died during the run" in stderr
    assert fake_nvidia.locks()["locked_gpu"] is None and "-rgc" in fake_nvidia.smi()
    assert not list((tmp_path / "journal").glob("*.json"))
    assert "FAILED   the Monitor died during the run" in stderr.splitlines()[-1]
    runs = results.load(tmp_path / "results" / "signalled").runs  # the phase measured before is written
    assert set(runs.status) <= {"failed", "ok"}
    assert runs.error.dropna().str.startswith("the Monitor died during the run").all()


def test_ctrl_c_after_a_phase_keeps_that_phase(tmp_path, cls_onnx):
    """A run is written as it goes: Ctrl-C in its second phase leaves the first phase's rows
    and samples (its row group, written when it ended) and the rest ``interrupted``."""
    spec = tmp_path / "two.yaml"
    spec.write_text(f"name: signalled\noutput: {tmp_path / 'results'}\nschedule: both\n"
                    f"telemetry: {{nvml: false, interval_s: 0.2}}\ntiming: {{iterations: 20, warmup: 1}}\n"
                    f"models:\n  - {{path: {cls_onnx}, name: a, options: {{threads: 1}}}}\n"
                    f"  - {{path: {cls_onnx}, name: b, options: {{threads: 1}}, timing: {{gap_s: 1.0, iterations: 300}}}}\n")
    err = tmp_path / "err.txt"
    with open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "trt_ray_bench.cli", "-v", "run", str(spec)],
                                stdout=subprocess.DEVNULL, stderr=fe, start_new_session=True)
    with _killed_after(proc):
        t_end = time.time() + 120
        while "alone    b" not in err.read_text() and time.time() < t_end and proc.poll() is None:
            time.sleep(0.2)  # a's alone phase is done (written), b's 300 s one has begun
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=180)
    assert code == 128 + signal.SIGINT, err.read_text()[-3000:]
    root = tmp_path / "results" / "signalled"
    assert not [p for p in root.glob(".*") if p.is_dir()]
    r = results.load(root)
    status = r.runs.set_index(["model", "phase"]).status.to_dict()
    assert status == {("a", "alone"): "ok", ("b", "alone"): "interrupted", ("a", "together"): "interrupted",
                      ("b", "together"): "interrupted"}
    import pyarrow.parquet as pq

    assert pq.ParquetFile(root / r.run_ids[0] / "samples.parquet").metadata.num_row_groups == 1
    assert set(zip(r.samples.model, r.samples.phase)) == {("a", "alone")} and (r.runs.n.dropna() == 20).all()
