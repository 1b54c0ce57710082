"""The node's journal of machine changes: what no signal handler can restore.

Before a run changes a clock, a power mode or MPS, it writes here how to undo each change
(one file per GPU, or per board on a Jetson); it removes the file after the restore. A
file that is still here when nobody holds it (its process is gone: SIGKILL, the OOM
killer, a crash, a power cut) is a machine left changed: the next run restores it before
it reads or records any state, and ``trb doctor`` / ``trb node start`` say so and how
(``trb doctor --restore``).

Where: ``$TRB_JOURNAL_DIR``, else ``/var/tmp/trt_ray_bench/journal`` (under ``TRB_ROOT``
for the tests): local to the node, kept across reboots (nvpmodel's mode is too), shared
by the users of a lab board (the folder is sticky and world-writable, like /tmp).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import socket
from pathlib import Path
from typing import List, Optional

from ._paths import system_path

VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def journal_dir() -> Path:
    return Path(os.environ.get("TRB_JOURNAL_DIR") or system_path("/var/tmp/trt_ray_bench/journal"))


def _ensure_dir() -> Path:
    d = journal_dir()
    if not d.is_dir():
        d.mkdir(parents=True, exist_ok=True)
        try:
            d.chmod(0o1777)  # every user of the board may journal; each removes only its own files
        except OSError:
            pass
    return d


def _start_time(pid: int) -> Optional[str]:
    """The process's start time (clock ticks after boot, /proc/PID/stat field 22): with the
    pid, it names one process, so a reused pid is not taken for the writer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def holder_alive(journal: dict) -> bool:
    pid = int(journal.get("pid") or 0)
    if pid <= 0 or journal.get("host") != socket.gethostname():
        return False
    return _start_time(pid) is not None and _start_time(pid) == journal.get("pid_start")


class Journal:
    """One GPU's (or board's) journal file, written by the process that changes it."""

    def __init__(self, key: str):
        self.key = _SAFE.sub("_", key)
        self.path = journal_dir() / f"{self.key}.json"

    def write(self, entries: List[dict], info: Optional[dict] = None) -> None:
        """Atomically: how to undo ``entries`` (in the order they will be applied)."""
        _ensure_dir()
        doc = {"version": VERSION, "key": self.key, "host": socket.gethostname(), "pid": os.getpid(),
               "pid_start": _start_time(os.getpid()), "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
               "entries": entries, **(info or {})}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def read(self) -> Optional[dict]:
        return _read(self.path)


def _read(path: Path) -> Optional[dict]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    doc["path"] = str(path)
    return doc


def found(key: Optional[str] = None) -> List[dict]:
    """Journals on this node (of ``key`` only, if given), each with its ``path`` and
    whether its writer still runs (``alive``)."""
    d = journal_dir()
    paths = [d / f"{_SAFE.sub('_', key)}.json"] if key else (sorted(d.glob("*.json")) if d.is_dir() else [])
    out = []
    for p in paths:
        doc = _read(p)
        if doc is not None:
            doc["alive"] = holder_alive(doc)
            out.append(doc)
    return out


def left_behind(key: Optional[str] = None) -> List[dict]:
    """Journals whose writer is gone: machines left changed."""
    return [j for j in found(key) if not j["alive"]]


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
    return problems


def restore_left_behind(key: Optional[str] = None) -> List[str]:
    """Restore every journal left behind (of ``key``); returns one line per journal, what
    was done or what failed. A journal that cannot be restored raises UserError."""
    from ..errors import UserError

    lines = []
    for j in left_behind(key):
        problems = restore(j)
        if problems:
            raise UserError("journal", f"a run killed on this node left it changed and it could not be restored: "
                                       f"{'; '.join(problems)} ({j['path']}); fix it by hand, then remove that file")
        lines.append(f"restored what a killed run left: {describe(j)}")
    return lines
