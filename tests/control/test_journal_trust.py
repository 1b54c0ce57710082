"""The node's journal folder is shared by the users of a lab board (sticky, world-writable),
so a file there may be anyone's. A restore runs as root (``sudo -n tee`` of a devfreq node,
``sudo jetson_clocks --restore FILE``): it must act only on what trb itself changes, never
on a path a planted file names, and another user's file that is not such a journal must
not stop anyone's run.

The board is conftest's ``fake_jetson`` (an AGX Orin under TRB_ROOT / TRB_SYSFS_ROOT with
``jetson_clocks``, ``nvpmodel`` and ``sudo`` stand-ins first on PATH, recording their argv),
so "nothing was written as root" is the stand-ins' calls and the victim folder's files."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from trt_ray_bench.control import journal
from trt_ray_bench.errors import UserError

NOBODY = 65534


def _plant(d: Path, name: str, entries: list, pid: int = 999_999_999) -> Path:
    """A journal whose writer is gone (no such pid), as a killed run leaves one."""
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(json.dumps({"version": 1, "pid": pid, "host": socket.gethostname(), "entries": entries}))
    return p


def _victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim"
    v.mkdir()
    return v


def test_a_devfreq_entry_naming_another_path_is_never_written(fake_jetson, tmp_path, monkeypatch):
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))
    victim = _victim(tmp_path)
    p = _plant(tmp_path / "journal", "GPU-x.json", [{"kind": "devfreq", "node": str(victim), "previous": [7, 1337]}])
    # this user's (root's, on CI) own file: refused in one line before anything, as any unreadable journal
    with pytest.raises(UserError, match=r"not a trb journal: entries\[0\] \(devfreq\) names .*victim.*, not a "
                                        r"devfreq device of this machine"):
        journal.restore_left_behind()
    assert list(victim.iterdir()) == [] and fake_jetson.sequence() == [] and p.exists()
    # the board's real GPU node is one trb may restore
    node = str(fake_jetson.node.resolve())
    _plant(tmp_path / "journal", "GPU-x.json", [{"kind": "devfreq", "node": node, "previous": [306000000, 1300500000]}])
    assert journal.target_problem(journal.found()[0]) is None


def test_jetson_clocks_restores_only_settings_stored_in_trbs_own_folder(fake_jetson, tmp_path, monkeypatch):
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))
    crafted = tmp_path / "crafted.conf"  # what jetson_clocks --restore would write, as root, where it says
    crafted.write_text("/etc/sudoers ALL ALL=(ALL) NOPASSWD: ALL\n")
    for stored in (str(crafted), str(tmp_path / "trb-jetson-clocks-x" / ".." / "crafted.conf")):
        _plant(tmp_path / "journal", "board.json", [{"kind": "jetson_clocks", "stored": stored}])
        with pytest.raises(UserError, match=r"is not a file trb's jetson_clocks control writes"):
            journal.restore_left_behind()
    # in a folder of trb's name that others may write in: not trusted either
    shared = tmp_path / "trb-jetson-clocks-shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "l4t_dfs.conf").write_text("x\n")
    _plant(tmp_path / "journal", "board.json", [{"kind": "jetson_clocks", "stored": str(shared / "l4t_dfs.conf")}])
    with pytest.raises(UserError, match=r"is not a private folder"):
        journal.restore_left_behind()
    assert fake_jetson.sequence() == []  # jetson_clocks --restore never ran


def test_a_planted_symbolic_link_is_not_followed(fake_jetson, tmp_path, monkeypatch):
    d = tmp_path / "journal"
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(d))
    target = _plant(tmp_path / "elsewhere", "real.json", [{"kind": "nvpmodel", "previous": 0}])
    d.mkdir()
    (d / "GPU-l.json").symlink_to(target)
    [j] = journal.found()
    assert j["error"] == "a symbolic link, not a file trb writes"
    assert fake_jetson.sequence() == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making another user's file needs root")
def test_another_users_planted_file_is_reported_not_obeyed_and_blocks_no_run(fake_jetson, tmp_path, monkeypatch):
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))
    victim = _victim(tmp_path)
    bad = _plant(tmp_path / "journal", "GPU-a.json", [{"kind": "devfreq", "node": str(victim), "previous": [7, 1]}])
    junk = tmp_path / "journal" / "zz.json"
    junk.write_text("{")
    for f in (bad, junk):
        os.chown(f, NOBODY, NOBODY)
    assert journal.left_behind() == [] and journal.restore_left_behind() == []  # no refusal: runs go on
    assert list(victim.iterdir()) == [] and fake_jetson.sequence() == []
    reported = {Path(j["path"]).name: j for j in journal.found()}  # what trb doctor lists
    assert set(reported) == {"GPU-a.json", "zz.json"} and all("error" in j for j in reported.values())
    assert all(j["owner"] == NOBODY for j in reported.values())
    # the same junk as this user's (root's) own: refused, as it may be a killed run's record
    os.chown(junk, 0, 0)
    with pytest.raises(UserError, match=r"zz\.json cannot be read \(not valid JSON"):
        journal.left_behind()


def test_each_user_journals_in_a_file_of_their_own_and_another_users_is_restored_in_place(fake_nvidia, tmp_path,
                                                                                            monkeypatch):
    """Two users' runs of one GPU: the files are per user (the sticky folder lets neither
    replace nor remove the other's), a run finds every user's file of its GPU, and restores
    another user's killed run without failing on the file it may not remove (the sticky
    bit's refusal is raised here by a stand-in ``unlink``: these tests run as root, whom the
    bit does not stop)."""
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))
    mine = journal.Journal("GPU-1")
    assert mine.path.name == f"GPU-1.u{os.geteuid()}.json"
    theirs = _plant(tmp_path / "journal", f"GPU-1.u{NOBODY}.json",
                    [{"kind": "nvidia-smi-clocks", "gpu": 0, "reset": ["gpu"]}])
    assert [Path(j["path"]).name for j in journal.found("GPU-1")] == [theirs.name]
    real_unlink = Path.unlink

    def sticky(self, *a, **k):
        if self == theirs:
            raise PermissionError(1, "Operation not permitted", str(self))
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", sticky)
    [line] = journal.restore_left_behind("GPU-1")
    assert line.startswith("restored what a killed run left: GPU 0 clocks locked")
    assert f"its journal {theirs} is another user's (uid " in line and "each run restores it again" in line
    assert "-rgc" in fake_nvidia.smi() and theirs.exists()
    mine.write([{"kind": "nvidia-smi-clocks", "gpu": 0, "reset": ["gpu"]}])  # beside theirs, not over it
    assert sorted(p.name for p in (tmp_path / "journal").glob("*.json")) == sorted([theirs.name, mine.path.name])


def test_jetson_clocks_settings_gone_with_a_reboot_are_taken_as_undone(fake_jetson, tmp_path, monkeypatch):
    """jetson_clocks lasts until a reboot: a journal from before this boot whose stored
    settings are gone leaves nothing of jetson_clocks to put back, and its other entries
    (the power mode, which a reboot keeps) are still restored. From this boot, gone settings
    are a journal trb cannot restore (refused, as any)."""
    d = tmp_path / "journal"
    monkeypatch.setenv("TRB_JOURNAL_DIR", str(d))
    gone = str(d / "trb-jetson-clocks-abc" / "l4t_dfs.conf")
    entries = [{"kind": "nvpmodel", "previous": 3}, {"kind": "jetson_clocks", "stored": gone}]
    p = _plant(d, "gpu0.json", entries)
    doc = json.loads(p.read_text())
    p.write_text(json.dumps({**doc, "written_at": "2000-01-01T00:00:00+00:00"}))
    [line] = journal.restore_left_behind()
    assert line.startswith("restored what a killed run left: power mode changed (was mode 3); jetson_clocks "
                           "(undone by the reboot since)")
    assert "nvpmodel -m 3" in fake_jetson.sequence() and "jetson_clocks --restore" not in fake_jetson.sequence()
    p = _plant(d, "gpu0.json", entries)
    p.write_text(json.dumps({**json.loads(p.read_text()), "written_at": "2999-01-01T00:00:00+00:00"}))
    with pytest.raises(UserError, match=r"entries\[1\] \(jetson_clocks\): the stored settings .* are gone"):
        journal.restore_left_behind()


def test_two_restorers_of_one_journal_restore_it_once_and_spare_a_new_runs(fake_nvidia, tmp_path, monkeypatch):
    """Two restorers read the same dead journal (two runs starting at once, or a run and
    ``trb doctor --restore``). The second waits for the first's lock on the file, then finds
    it gone, or another run's journal written there since: it restores nothing, so it never
    resets the clocks that new run locked. The second restorer's earlier reading is replayed
    by a substituted ``left_behind``; the lock is held by a thread of this process (flock
    locks of two opens exclude each other, as two processes' do)."""
    import fcntl
    import threading
    import time

    monkeypatch.setenv("TRB_JOURNAL_DIR", str(tmp_path / "journal"))
    mine = journal.Journal("GPU-1")
    _plant(tmp_path / "journal", mine.path.name, [{"kind": "nvidia-smi-clocks", "gpu": 0, "reset": ["gpu"]}])
    stale = journal.left_behind("GPU-1")
    assert len(stale) == 1

    # the first restorer holds the file's lock: the second waits for it
    fd = os.open(str(mine.path), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    out = {}
    second = threading.Thread(target=lambda: out.setdefault("lines", journal.restore_left_behind("GPU-1")))
    second.start()
    time.sleep(0.5)
    assert second.is_alive() and "-rgc" not in fake_nvidia.smi()
    os.close(fd)
    second.join(10)
    assert len(out["lines"]) == 1 and fake_nvidia.smi().count("-rgc") == 1 and not mine.path.exists()

    # a new run of this GPU has since locked its clocks and written its journal at that path
    mine.write([{"kind": "nvidia-smi-clocks", "gpu": 0, "reset": ["gpu"]}])
    monkeypatch.setattr(journal, "left_behind", lambda key=None: stale)
    assert journal.restore_left_behind("GPU-1") == []
    assert fake_nvidia.smi().count("-rgc") == 1 and mine.path.exists()
    mine.path.unlink()
    assert journal.restore_left_behind("GPU-1") == []  # gone: restored by the other, nothing to do
    assert fake_nvidia.smi().count("-rgc") == 1
