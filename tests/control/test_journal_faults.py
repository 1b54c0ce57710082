"""A node journal that cannot be read (not JSON, random bytes, JSON of another shape, a
folder in its place, a file this user may not read) is named in one line, with what to
check and how to clear it, by `trb run` (before Ray starts, before anything changes:
exit 2), by the run's Monitor on the node (the same line, never a traceback), by
`trb node start`, and by `trb doctor` (a FIX line; `--restore` cannot restore it and
exits non-zero). It is never passed over and never removed: it may be a killed run's
only record of a GPU left locked.

The GPU is the stand-in ``nvidia-smi`` of conftest's ``fake_nvidia`` (a hardware-only
command: a small executable first on PATH that keeps the clock state in a file and
records its argv), so "nothing changed" is its calls and its state."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trt_ray_bench.control import journal
from trt_ray_bench.errors import EXIT_DOCTOR, UserError

BAD = {  # name: (what is in the file, why it is refused)
    "random bytes": (b"\x8f\x00\xffgarbage", "not UTF-8 text; 10 bytes"),
    "not JSON": (b"{not json", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
                               "(char 1); 9 bytes"),
    "a list": (b"[1, 2, 3]", "not a trb journal: a JSON list, not a journal object"),
    "a pid that is not one": (b'{"pid": "abc"}', "not a trb journal: pid 'abc' is not a process id"),
    "no entries": (b'{"version": 1, "pid": 12, "host": "h"}', "not a trb journal: entries None is not a list"),
    "an unknown change": (b'{"version": 1, "pid": 12, "host": "h", "entries": [{"kind": "overclock"}]}',
                          "not a trb journal: entries[0] is not a change trb makes ({'kind': 'overclock'})"),
    "a newer trb's": (b'{"version": 7, "pid": 12, "host": "h", "entries": []}',
                      "not a trb journal: version 7: written by another trb (this one reads version 1)"),
}


def refusal(path: Path, why: str, rm: str = "rm") -> str:
    """The one line (less ``trb: error: ``)."""
    return (f"journal: {path} cannot be read ({why}). A run keeps there how to undo its clock, MPS and power-mode "
            "changes, so a killed run may have left this machine changed: check it (nvidia-smi -q -d CLOCK; on a "
            "Jetson jetson_clocks --show and nvpmodel -q), put back by hand what is changed (nvidia-smi -rgc -rmc; "
            f"sudo jetson_clocks --restore; sudo nvpmodel -m N), then remove the file (as its owner or root): {rm} {path}")


def changes(fake) -> list:
    """The stand-ins' calls that change something (clock locks and resets, MPS): doctor's
    reads (``query``, ``supported``) left out."""
    return [c for c in fake.sequence() if c not in ("query", "supported")]


def _bad_journal(tmp_path: Path, content: bytes) -> Path:
    d = tmp_path / "journal"
    d.mkdir(exist_ok=True)
    p = d / "GPU-0123.json"
    p.write_bytes(content)
    return p


def _spec(tmp_path: Path, onnx) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump({"name": "j", "output": str(tmp_path / "results"), "schedule": "alone",
                                 "timing": {"iterations": 3, "warmup": 1}, "telemetry": {"nvml": False},
                                 "models": [{"path": str(onnx), "name": "cls", "options": {"threads": 1}}]}))
    return p


@pytest.mark.parametrize("case", list(BAD))
def test_every_command_names_it_in_one_line_and_changes_nothing(case, fake_nvidia, trb, tmp_path, cls_onnx):
    content, why = BAD[case]
    path = _bad_journal(tmp_path, content)
    line = refusal(path, why)
    # trb doctor: a FIX line; --restore cannot restore it and says so, exit non-zero
    for args in (("doctor",), ("doctor", "--restore")):
        code, out, err = trb(*args)
        assert code == EXIT_DOCTOR, (args, err)
        assert [x for x in out.splitlines() if x.startswith("journal")] == [f"journal       FIX: {line[9:]}"]
    # trb run: before the plan is printed and before Ray starts
    code, out, err = trb("run", _spec(tmp_path, cls_onnx))
    assert (code, out, err.splitlines()) == (2, "", [f"trb: error: {line}"])
    assert not (tmp_path / "results").exists()
    # trb node start (dry run: what the real one would refuse)
    code, out, err = trb("node", "start", "--head", "--dry-run")
    assert (code, out, err.splitlines()) == (2, "", [f"trb: error: {line}"])
    # never removed, never changed; no control command ran
    assert path.read_bytes() == content
    assert changes(fake_nvidia) == [] and fake_nvidia.locks()["locked_gpu"] is None


def test_a_folder_in_its_place(fake_nvidia, trb, tmp_path):
    path = tmp_path / "journal" / "GPU-0123.json"
    path.mkdir(parents=True)
    code, out, err = trb("doctor")
    line = next(x for x in out.splitlines() if x.startswith("journal"))
    assert code == EXIT_DOCTOR and line == f"journal       FIX: {refusal(path, 'Is a directory', 'rm -r')[9:]}"
    with pytest.raises(UserError) as e:
        journal.left_behind()
    assert str(e.value) == refusal(path, "Is a directory", "rm -r") and path.is_dir()


def test_a_journal_this_user_may_not_read(fake_nvidia, tmp_path, cls_onnx):
    """Mode 0000. Root reads any file: as root the commands run without the capabilities
    that let it (``setpriv --bounding-set -dac_override,-dac_read_search``), as the
    owner of a 0000 file they are refused like anyone."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: root reads a file of mode 0000")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    path = _bad_journal(tmp_path, json.dumps({"version": 1, "pid": 1, "host": "h", "entries": []}).encode())
    path.chmod(0)
    try:
        why = f"Permission denied; mode 0000, owner uid {os.geteuid()}, this process uid {os.geteuid()}"
        for args, code in ((["doctor", "--restore"], EXIT_DOCTOR), (["run", str(_spec(tmp_path, cls_onnx))], 2)):
            p = subprocess.run(prefix + [sys.executable, "-m", "trt_ray_bench.cli", *args], capture_output=True,
                               text=True, timeout=300)
            assert p.returncode == code, (args, p.stdout[-2000:], p.stderr[-2000:])
            if args[0] == "doctor":
                assert f"journal       FIX: {refusal(path, why)[9:]}" in p.stdout.splitlines()
            else:
                assert (p.stdout, p.stderr.splitlines()) == ("", [f"trb: error: {refusal(path, why)}"])
    finally:
        path.chmod(0o644)
    assert changes(fake_nvidia) == [] and not (tmp_path / "results").exists()


def test_a_killed_runs_journal_is_not_restored_past_an_unreadable_one(fake_nvidia, trb, tmp_path, cls_onnx):
    """A real left-behind journal (GPU 0 locked by a run whose process is gone) beside an
    unreadable one: the run refuses before restoring anything; doctor lists both; --restore
    puts back the one it can read and still exits non-zero for the other."""
    (fake_nvidia.bin / "state.json").write_text(json.dumps({"locked_gpu": [1410, 1410], "locked_mem": None}))
    d = tmp_path / "journal"
    d.mkdir()
    good = d / "GPU-aaaa.json"
    good.write_text(json.dumps({"version": 1, "key": "GPU-aaaa", "host": socket.gethostname(), "pid": 2 ** 22 + 7,
                                "pid_start": "1", "written_at": "2026-12-01T10:00:00+00:00", "run_id": "r1",
                                "entries": [{"kind": "nvidia-smi-clocks", "gpu": 0, "reset": ["gpu"]}]}))
    bad = _bad_journal(tmp_path, b"[1, 2, 3]")
    code, out, err = trb("run", _spec(tmp_path, cls_onnx))
    assert code == 2 and err.splitlines() == [f"trb: error: {refusal(bad, BAD['a list'][1])}"]
    assert changes(fake_nvidia) == [] and fake_nvidia.locks()["locked_gpu"] == [1410, 1410] and good.exists()
    code, out, err = trb("doctor")
    lines = [x for x in out.splitlines() if x.startswith("journal")]
    assert code == EXIT_DOCTOR and len(lines) == 2
    assert lines[0].endswith(f"rm {bad}") and "GPU 0 clocks locked" in lines[1] and "trb doctor --restore" in lines[1]
    code, out, err = trb("doctor", "--restore")
    lines = [x for x in out.splitlines() if x.startswith("journal")]
    assert code == EXIT_DOCTOR and lines[0].endswith(f"rm {bad}") and lines[1].startswith("journal       restored: GPU 0")
    assert changes(fake_nvidia) == ["-rgc"] and fake_nvidia.locks()["locked_gpu"] is None
    assert not good.exists() and bad.read_bytes() == b"[1, 2, 3]"


@pytest.mark.ray
def test_the_monitor_refuses_it_in_one_line_not_a_traceback(fake_nvidia, tmp_path, cls_onnx, ray_local):
    """Where the driver's preflight did not see it (a journal that appeared since, another
    node's): the Monitor's check on the node, the same line, as a UserError."""
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.spec import load_spec

    plan = make_plan(load_spec(str(_spec(tmp_path, cls_onnx))))
    path = _bad_journal(tmp_path, b"[1, 2, 3]")
    with pytest.raises(UserError) as e:
        run_plan(plan, log=lambda s: None)
    assert type(e.value) is UserError and str(e.value) == refusal(path, BAD["a list"][1])
    assert not (tmp_path / "results").exists() and path.read_bytes() == b"[1, 2, 3]"
    assert changes(fake_nvidia) == []


def test_journals_are_written_readable_by_every_user(tmp_path, monkeypatch):
    """Whatever the writer's umask: another user's run must read it, or it refuses."""
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))
    old = os.umask(0o077)
    try:
        j = journal.Journal("GPU-1")
        j.write([{"kind": "nvidia-smi-clocks", "gpu": 0, "reset": ["gpu"]}])
    finally:
        os.umask(old)
    assert oct(j.path.stat().st_mode & 0o777) == "0o644"
    assert j.read()["entries"] == [{"kind": "nvidia-smi-clocks", "gpu": 0, "reset": ["gpu"]}]
    assert journal.found() == [{**j.read(), "alive": True}]
