"""The node's journal of machine changes: what no signal handler can restore.

Before a run changes a clock, a power mode or MPS, it writes here how to undo each change
(one file per GPU, or per board on a Jetson); it removes the file after the restore. A
file that is still here when nobody holds it (its process is gone: SIGKILL, the OOM
killer, a crash, a power cut) is a machine left changed: the next run restores it before
it reads or records any state, and ``trb doctor`` / ``trb node start`` say so and how
(``trb doctor --restore``).

Where: ``$TRB_JOURNAL_DIR``, else ``/var/tmp/trt_ray_bench/journal`` (under ``TRB_ROOT``
for the tests): local to the node, kept across reboots (nvpmodel's mode is too), shared
by the users of a lab board (the folder is sticky and world-writable, like /tmp). So a
file there may be anyone's: a restore acts only on what trb itself changes (this machine's
devfreq devices, settings that ``jetson_clocks --store`` wrote as root into trb's private
folder, nvidia-smi's clock locks, the power mode, trb's MPS daemon), never on a path a file
names otherwise, and another user's file that is not such a journal is reported, not obeyed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import socket
import stat
from pathlib import Path
from typing import Iterator, List, Optional

from ..errors import UserError
from ._paths import ensure_journal_dir as _ensure_dir
from ._paths import journal_dir, sysfs_path
from .devfreq import DEVFREQ

VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _booted_after(written_at: Optional[str]) -> bool:
    """Whether this machine started after ``written_at`` (a journal's ISO time)."""
    try:
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime > _dt.datetime.fromisoformat(str(written_at)).timestamp()
    except (OSError, StopIteration, ValueError, IndexError):
        return False


def _stat(pid: int) -> Optional[List[str]]:
    """/proc/PID/stat's fields after the command name (field 3 onwards), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _start_time(pid: int) -> Optional[str]:
    """The process's start time (clock ticks after boot, /proc/PID/stat field 22): with the
    pid, it names one process, so a reused pid is not taken for the writer."""
    f = _stat(pid)
    return f[19] if f and len(f) > 19 else None


#: /proc states of a process that has exited, whatever its entry still says: Z (zombie), X (dead)
EXITED = ("Z", "X")


def process_state(pid: int) -> Optional[str]:
    """The process's state letter (/proc/PID/stat field 3; None: no such process here)."""
    f = _stat(pid)
    return f[0] if f else None


def holder_alive(journal: dict) -> bool:
    """Whether the process that wrote ``journal`` still runs. A killed writer whose parent
    died too stays a zombie until init reaps it, and in a container whose first process reaps
    nothing it stays one: it has exited, and its changes are left for the doctor."""
    pid = int(journal.get("pid") or 0)
    if pid <= 0 or journal.get("host") != socket.gethostname():
        return False
    f = _stat(pid)  # one read: the start time and the state of the same process
    return bool(f) and len(f) > 19 and f[19] == journal.get("pid_start") and f[0] not in EXITED


def _fsync_dir(d: Path) -> None:
    """A rename in ``d`` on disk (where the file system lets a folder be synced)."""
    try:
        fd = os.open(str(d), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Journal:
    """One GPU's (or board's) journal file, written by the process that changes it."""

    def __init__(self, key: str):
        self.key = _SAFE.sub("_", key)
        # one file per user: in the shared, sticky folder another user's file of the same GPU
        # (a run of theirs that was killed) can be neither replaced nor removed by this one
        self.path = journal_dir() / f"{self.key}.u{os.geteuid()}.json"

    def write(self, entries: List[dict], info: Optional[dict] = None) -> None:
        """Atomically: how to undo ``entries`` (in the order they will be applied)."""
        _ensure_dir()
        doc = {"version": VERSION, "key": self.key, "host": socket.gethostname(), "pid": os.getpid(),
               "pid_start": _start_time(os.getpid()), "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
               "entries": entries, **(info or {})}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        with open(tmp, "w") as f:
            f.write(json.dumps(doc, indent=1))
            f.flush()
            os.fsync(f.fileno())  # on disk before the change it records is made: a power cut keeps it
        try:  # readable by every user of the board, whatever the writer's umask: theirs refuse one they cannot read
            tmp.chmod(0o644)
        except OSError:
            pass
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def read(self) -> Optional[dict]:
        return _read(self.path)


#: what each kind of entry must carry (``control_of`` and ``entry_text`` read these):
#: name -> accepted types; and what it may carry (absent or null allowed)
_ENTRY_FIELDS = {
    "nvidia-smi-clocks": {"gpu": (int,)},
    "jetson_clocks": {"stored": (str,)},
    "devfreq": {"node": (str,), "previous": (list,)},
    "nvpmodel": {"previous": (int,)},
    "mps": {},
}
_ENTRY_OPTIONAL = {"nvidia-smi-clocks": {"reset": (list,)}, "jetson_clocks": {"dir": (str,)},
                   "mps": {"gpu": (str,), "pipe_dir": (str,), "log_dir": (str,)}}


def _is(value, types) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


def shape_problem(doc) -> Optional[str]:
    """What makes ``doc`` (parsed JSON) not a journal this trb can restore, in words; None
    where it is one."""
    if not isinstance(doc, dict):
        return f"a JSON {type(doc).__name__}, not a journal object"
    version = doc.get("version", VERSION)
    if not _is(version, (int,)) or version > VERSION:
        return f"version {version!r}: written by another trb (this one reads version {VERSION})"
    if not _is(doc.get("pid"), (int,)) or doc["pid"] < 0:
        return f"pid {doc.get('pid')!r} is not a process id"
    if not isinstance(doc.get("host"), str):
        return f"host {doc.get('host')!r} is not a host name"
    for name in ("written_at", "run_id", "pid_start"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            return f"{name} {doc[name]!r:.40} is not text"
    entries = doc.get("entries")
    if not isinstance(entries, list):
        return f"entries {entries!r} is not a list"
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("kind") not in _ENTRY_FIELDS:
            return f"entries[{i}] is not a change trb makes ({e!r:.60})"
        for name, types in _ENTRY_FIELDS[e["kind"]].items():
            if not _is(e.get(name), types):
                return f"entries[{i}] ({e['kind']}) has no valid {name} ({e.get(name)!r:.40})"
        for name, types in _ENTRY_OPTIONAL.get(e["kind"], {}).items():
            if e.get(name) is not None and not _is(e[name], types):
                return f"entries[{i}] ({e['kind']}) has no valid {name} ({e[name]!r:.40})"
        if e["kind"] == "nvidia-smi-clocks" and not set(e.get("reset") or []) <= {"gpu", "mem"}:
            return f"entries[{i}] (nvidia-smi-clocks) resets {e['reset']!r:.40}, not gpu / mem"
        if e["kind"] == "devfreq" and not (len(e["previous"]) == 2 and all(_is(v, (int,)) for v in e["previous"])):
            return f"entries[{i}] (devfreq) has no valid previous range"
    return None


def _devfreq_devices() -> List[str]:
    """The real paths of this machine's devfreq devices (what a devfreq entry may name)."""
    try:
        return [str(e.resolve()) for e in sysfs_path(DEVFREQ).iterdir()]
    except OSError:
        return []


def _stored_problem(stored: str) -> Optional[str]:
    """Why ``stored`` is not settings that ``jetson_clocks --store`` wrote for trb (run as
    root, into a folder trb made that nobody else can write), ``"gone"`` where no such file
    is there, or None. ``jetson_clocks --restore`` writes, as root, whatever values to
    whatever paths the file holds."""
    p = Path(stored)
    if not p.is_absolute() or ".." in p.parts or p.name != "l4t_dfs.conf" \
            or not p.parent.name.startswith("trb-jetson-clocks-"):
        return f"stored {stored!r:.80} is not a file trb's jetson_clocks control writes"
    try:
        d, f = os.lstat(str(p.parent)), os.lstat(str(p))
    except FileNotFoundError:
        return "gone"
    except OSError as exc:
        return f"stored settings {stored} cannot be checked ({exc.strerror or exc})"
    if not stat.S_ISDIR(d.st_mode) or stat.S_IMODE(d.st_mode) & 0o022:
        return f"the folder of stored settings {stored} is not a private folder (others may write in it)"
    if not stat.S_ISREG(f.st_mode) or f.st_uid not in (0, os.geteuid()):
        return f"stored settings {stored} are not a file root (jetson_clocks --store) or this user wrote"
    return None


def target_problem(doc: dict) -> Optional[str]:
    """What in a journal of the right shape names something trb never changes (a file a
    restore would write as root), or None: only this machine's devfreq devices and settings
    stored by ``jetson_clocks --store`` into trb's own folder are acted on."""
    devices = None
    for i, e in enumerate(doc.get("entries", [])):
        if e["kind"] == "devfreq":
            devices = _devfreq_devices() if devices is None else devices
            if e["node"] not in devices:
                return f"entries[{i}] (devfreq) names {e['node']!r:.80}, not a devfreq device of this machine"
        elif e["kind"] == "jetson_clocks":
            why = _stored_problem(e["stored"])
            if why == "gone" and _booted_after(doc.get("written_at")):
                e["gone"] = True  # jetson_clocks lasts until a reboot, and the board has rebooted since
            elif why == "gone":
                return f"entries[{i}] (jetson_clocks): the stored settings {e['stored']} are gone"
            elif why:
                return f"entries[{i}] (jetson_clocks): {why}"
    return None


def _read(path: Path) -> dict:
    """The journal at ``path`` with its ``path`` and its file's ``owner`` (uid); one that
    cannot be read, is not a journal or names what trb never changes (``target_problem``)
    comes back as ``{"path": ..., "owner": uid, "error": why}``, never as nothing: it may
    be a killed run's record, and is left where it is. A symbolic link is not followed."""
    try:
        owner = os.lstat(str(path)).st_uid
    except OSError:
        owner = None
    try:
        fd = os.open(str(path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        if os.path.islink(str(path)):
            return {"path": str(path), "owner": owner, "error": "a symbolic link, not a file trb writes"}
        return {"path": str(path), "owner": owner, "error": _os_problem(path, exc)}
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"not valid JSON: {exc}"
        return {"path": str(path), "owner": owner, "error": f"{why}; {len(raw)} bytes"}
    problem = shape_problem(doc)
    if problem is None:
        problem = target_problem(doc)
    if problem is not None:
        return {"path": str(path), "owner": owner, "error": f"not a trb journal: {problem}"}
    doc["path"], doc["owner"] = str(path), owner
    return doc


def trusted(journal: dict) -> bool:
    """Whether ``journal``'s file is this user's or root's. Another user's file that is not
    a journal trb can restore is reported (``trb doctor``), never a reason to refuse a run:
    anyone may put a file in the shared folder, and its sticky bit keeps it there."""
    return journal.get("owner") in (None, 0, os.geteuid())


def _os_problem(path: Path, exc: OSError) -> str:
    """``exc`` in words; for a permission problem, with the mode and the owner."""
    why = exc.strerror or str(exc)
    if not isinstance(exc, PermissionError):
        return why
    try:
        st = path.stat()
        return f"{why}; mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}, this process uid {os.geteuid()}"
    except OSError:
        return why


def unreadable(journal: dict) -> UserError:
    """The one-line refusal for a journal that cannot be read: the file, why, what it may
    have left changed, how to check, how to clear it. Nothing is removed by trb."""
    path = journal["path"]
    return UserError("journal", f"{path} cannot be read ({journal['error']}). A run keeps there how to undo its "
                                "clock, MPS and power-mode changes, so a killed run may have left this machine "
                                "changed: check it (nvidia-smi -q -d CLOCK; on a Jetson jetson_clocks --show and "
                                "nvpmodel -q), put back by hand what is changed (nvidia-smi -rgc -rmc; "
                                "sudo jetson_clocks --restore; sudo nvpmodel -m N), then remove the file (as its owner "
                                f"or root): rm {'-r ' if os.path.isdir(path) else ''}{path}")


def found(key: Optional[str] = None) -> List[dict]:
    """Journals on this node (of ``key`` only, if given), each with its ``path`` and
    whether its writer still runs (``alive``); one that cannot be read is in the list with
    its ``error`` (``unreadable``). A journal folder that cannot be listed raises
    UserError."""
    d = journal_dir()
    if key:
        k = _SAFE.sub("_", key)
        mine = re.compile(rf"^{re.escape(k)}(\.u\d+)?\.json$")  # every user's file of this key
        try:
            names = sorted(os.listdir(str(d))) if d.is_dir() else []
        except OSError:
            names = []
        paths = [d / n for n in names if mine.match(n)]
    else:
        try:
            names = sorted(os.listdir(str(d))) if d.is_dir() else []
        except OSError as exc:
            raise UserError("journal", f"the journal folder {d} cannot be listed ({_os_problem(d, exc)}): it should "
                                       f"be mode 1777 (chmod 1777 {d}, as root), so that every user's runs can record "
                                       "and find what they change") from None
        paths = [d / n for n in names if n.endswith(".json") and not n.startswith(".")]
    out = []
    for p in paths:
        doc = _read(p)
        if "error" not in doc:
            doc["alive"] = holder_alive(doc)
        out.append(doc)
    return out


def left_behind(key: Optional[str] = None) -> List[dict]:
    """Journals whose writer is gone: machines left changed. A journal of this user or
    root that cannot be read raises UserError (``unreadable``): whether it was left changed
    cannot be told, and it is never passed over; another user's is (``trusted``)."""
    out = []
    for j in found(key):
        if "error" in j:
            if trusted(j):
                raise unreadable(j)
            continue  # another user's file that trb would not act on: trb doctor lists it
        if not j["alive"]:
            out.append(j)
    return out


def describe(journal: dict) -> str:
    """One line: what was left changed, by which run."""
    what = "; ".join(entry_text(e) for e in journal.get("entries", [])) or "nothing"
    run = journal.get("run_id")
    who = f"run {run} " if run else ""
    return f"{what} (left by {who}pid {journal.get('pid')} since {journal.get('written_at', '?')[:19]}Z)"


def entry_text(entry: dict) -> str:
    kind = entry.get("kind")
    if kind == "nvidia-smi-clocks":
        return f"GPU {entry.get('gpu')} clocks locked ({', '.join(entry.get('reset', []))}; nvidia-smi -rgc/-rmc resets)"
    if kind == "jetson_clocks":
        if entry.get("gone"):
            return "jetson_clocks (undone by the reboot since)"
        return f"jetson_clocks in force (settings stored in {entry.get('stored')})"
    if kind == "devfreq":
        lo, hi = entry.get("previous", [0, 0])
        return f"GPU devfreq held (was {lo / 1e6:g}-{hi / 1e6:g} MHz)"
    if kind == "nvpmodel":
        return f"power mode changed (was mode {entry.get('previous')})"
    if kind == "mps":
        return f"an MPS daemon started by trb ({entry.get('pipe_dir') or 'default pipe directory'})"
    return str(kind)


def control_of(entry: dict):
    """The control an entry undoes, with its restore state set: ``restore()`` undoes it."""
    kind = entry.get("kind")
    if kind == "nvidia-smi-clocks":
        from .clocks import NvidiaSmiClocks

        c = NvidiaSmiClocks(int(entry["gpu"]))
        c.locked = {which: (0, 0) for which in entry.get("reset", ["gpu"])}
        return c
    if kind == "jetson_clocks":
        from .jetson_clocks import JetsonClocks

        c = JetsonClocks()
        if entry.get("gone"):  # nothing to put back: restore() does nothing
            return c
        c.stored, c._dir = Path(entry["stored"]), entry.get("dir")
        return c
    if kind == "devfreq":
        from .devfreq import GpuDevfreq

        c = GpuDevfreq(Path(entry["node"]))
        c.previous = (int(entry["previous"][0]), int(entry["previous"][1]))
        return c
    if kind == "nvpmodel":
        from .nvpmodel import NvpModel

        c = NvpModel()
        c.previous = int(entry["previous"])
        return c
    if kind == "mps":
        from .mps import MpsDaemon

        return MpsDaemon.from_journal(entry)
    raise ValueError(f"{kind}: unknown change")


def restore(journal: dict) -> List[str]:
    """Undo a journal's entries, last first; the file is removed when all succeeded.
    Returns the problems (empty: restored)."""
    problems = []
    for entry in reversed(journal.get("entries", [])):
        try:
            control_of(entry).restore()
        except Exception as exc:  # noqa: BLE001 - every entry gets its chance
            problems.append(f"{entry_text(entry)}: {exc}")
    if not problems:
        try:
            Path(journal["path"]).unlink()
        except (KeyError, FileNotFoundError):
            pass
        except PermissionError:  # another user's, in the sticky folder: restored, left for them
            journal["kept"] = True
    return problems


#: what tells one journal from another written at the same path after it
_IDENTITY = ("pid", "pid_start", "written_at", "entries")


@contextlib.contextmanager
def _held(journal: dict) -> Iterator[bool]:
    """Whether ``journal`` is still at its path, unchanged and left behind, under an
    exclusive lock on its file: two restorers (two runs starting at once, a run and
    ``trb doctor --restore``) that both read it restore it once, and neither undoes the
    changes of a run that wrote its own journal there since. The other waits for the
    lock, then finds the file gone or another run's."""
    path = journal["path"]
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        yield False  # restored and removed by another restorer since it was read
        return
    except OSError:
        yield True  # as it was read (another user's file this one may open no more): no lock to take
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        now = _read(Path(path))
        yield ("error" not in now and all(now.get(k) == journal.get(k) for k in _IDENTITY)
               and not holder_alive(now))
    finally:
        os.close(fd)  # the lock goes with it


def restore_left_behind(key: Optional[str] = None) -> List[str]:
    """Restore every journal left behind (of ``key``); returns one line per journal, what
    was done or what failed. A journal that cannot be restored raises UserError; one that
    cannot be read raises UserError before anything is restored. Each is restored under
    a lock on its file, once (``_held``)."""
    lines = []
    for j in left_behind(key):  # every journal read first: an unreadable one refuses before any change
        with _held(j) as still:
            problems = restore(j) if still else None
        if problems is None:
            continue
        if problems:
            raise UserError("journal", f"a run killed on this node left it changed and it could not be restored: "
                                       f"{'; '.join(problems)} ({j['path']}); fix it by hand, then remove that file")
        lines.append(f"restored what a killed run left: {describe(j)}" + (
            f"; its journal {j['path']} is another user's (uid {j.get('owner')}): they or root remove it (each run "
            "restores it again until then)" if j.get("kept") else ""))
    return lines
