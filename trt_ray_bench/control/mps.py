"""CUDA MPS: the control daemon around a run that asks for it.

Started (``nvidia-cuda-mps-control -d``) only when none is running, stopped afterwards
(``quit`` on its stdin) only if we started it: on a shared machine a daemon that was
already there belongs to someone else and is left alone, and recorded.

On a machine with one GPU that is the machine's daemon (the environment's
``CUDA_MPS_PIPE_DIRECTORY``, default ``/tmp/nvidia-mps``). On a machine with several, each
experiment owns one GPU, so it gets a daemon of that GPU alone: started with
``CUDA_VISIBLE_DEVICES=<its UUID>`` and its own pipe and log folders under
``TRB_MPS_DIR`` (default ``/tmp/trb-mps``), ``<dir>/<UUID>/pipe`` and ``.../log``; the
experiment's model processes are its clients through that pipe folder. A daemon is told
apart from the others by the pipe folder in its environment (``/proc/<pid>/environ``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import UserError
from ._command import run, which

CONTROL = "nvidia-cuda-mps-control"
PROC = Path("/proc")
PIPE_ENV, LOG_ENV = "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"
DEFAULT_PIPE_DIR = "/tmp/nvidia-mps"
MPS_DIR = "/tmp/trb-mps"


def mps_dir() -> Path:
    """Where per-GPU daemons keep their pipe and log folders."""
    return Path(os.environ.get("TRB_MPS_DIR") or MPS_DIR)


def daemon_pipe_dir(pid: int, proc: Path = PROC) -> Optional[str]:
    """The pipe folder of daemon ``pid`` (its environment's, or the default); None where
    its environment cannot be read (another user's daemon)."""
    try:
        env = (proc / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(PIPE_ENV.encode() + b"="):
            return os.path.normpath(item.split(b"=", 1)[1].decode(errors="replace")) or DEFAULT_PIPE_DIR
    return DEFAULT_PIPE_DIR


def daemon_pids(proc: Path = PROC) -> List[int]:
    """Processes that are an MPS control daemon (``nvidia-cuda-mps-control -d`` or ``-f``).

    Read from /proc, executing nothing: ``pgrep -x`` matches the kernel's 15-character
    process name and can never match this 23-character one; the daemon's argv is exact."""
    pids = []
    try:
        entries = list(proc.iterdir())
    except OSError:  # no /proc (not Linux): no MPS either
        return []
    for d in entries:
        if not d.name.isdigit():
            continue
        try:
            argv = [a for a in (d / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if argv and os.path.basename(argv[0]) == CONTROL and {"-d", "-f"} & set(argv[1:]):
            pids.append(int(d.name))
    return sorted(pids)


def _wait(until_running: bool, timeout_s: float, pids=None) -> bool:
    pids = pids or daemon_pids
    t_end = time.monotonic() + timeout_s
    while bool(pids()) != until_running:
        if time.monotonic() > t_end:
            return False
        time.sleep(0.05)
    return True


class MpsDaemon:
    """The MPS control daemon of this machine: ``apply(True)`` makes sure one runs for the
    run's CUDA processes (which must start after it), ``restore()`` stops ours.

    ``gpu`` (a CUDA device id, the leased GPU's UUID) makes it that GPU's own daemon, for
    a machine with several GPUs; ``pipe_dir`` is then the folder the experiment's clients
    must be given (``client_pipe_dir`` after ``apply``)."""

    name = "mps"

    def __init__(self, gpu: Optional[str] = None, root: Optional[Path] = None):
        self.notes: List[str] = []
        self.ours = False
        self.gpu = gpu
        base = (root or mps_dir()) / gpu if gpu else None
        self.pipe_dir = str(base / "pipe") if base else None
        self.log_dir = str(base / "log") if base else None
        #: the pipe folder the run's model processes must use (None: their environment's)
        self.client_pipe_dir: Optional[str] = None

    def _env(self) -> Optional[Dict[str, str]]:
        """The environment our daemon is started and told to quit with: the GPU, its pipe
        and log folders for a per-GPU daemon; None (ours, unchanged) for the machine's."""
        if not self.gpu:
            return None
        return {**os.environ, PIPE_ENV: self.pipe_dir, LOG_ENV: self.log_dir, "CUDA_VISIBLE_DEVICES": self.gpu,
                "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}

    def _own_pids(self) -> List[int]:
        """Daemons serving this GPU's pipe folder (per-GPU only)."""
        return [p for p in daemon_pids() if daemon_pipe_dir(p) == self.pipe_dir]

    def _machine_pids(self) -> List[int]:
        """Daemons a client without a pipe folder of ours would join: all of them for the
        machine's daemon; for a per-GPU one, those not serving some GPU's folder of ours."""
        pids = daemon_pids()
        if not self.gpu:
            return pids
        root = os.path.dirname(os.path.dirname(self.pipe_dir))
        return [p for p in pids if not (daemon_pipe_dir(p) or "").startswith(root + os.sep)]

    def available(self) -> bool:
        return which(CONTROL) is not None

    def read(self) -> Dict[str, object]:
        pids = self._own_pids() if self.gpu else daemon_pids()
        state = {"running": bool(pids), "pids": pids, "ours": self.ours,
                 "pipe_dir": self.pipe_dir or os.environ.get(PIPE_ENV, DEFAULT_PIPE_DIR)}
        if self.gpu:
            state["gpu"] = self.gpu
        return state

    def check(self, on: bool) -> None:
        """Refuse ``mps: true`` where MPS cannot be started. Changes nothing."""
        running = self._machine_pids() or (self._own_pids() if self.gpu else [])
        if on and not running and not self.available():
            raise UserError("mps", f"{CONTROL} not found on PATH: MPS needs the CUDA MPS tools of the NVIDIA "
                                   "driver (Linux); use mps: false")

    def journal_entry(self, on: bool) -> Optional[Dict[str, object]]:
        """How to undo ``apply`` (for the node's journal): where ``apply`` will start a
        daemon, the one to quit; None where it starts none."""
        if not on or self._machine_pids() or (self.gpu and self._own_pids()):
            return None
        return {"kind": "mps", "gpu": self.gpu, "pipe_dir": self.pipe_dir, "log_dir": self.log_dir}

    @classmethod
    def from_journal(cls, entry: Dict[str, object]) -> "MpsDaemon":
        """The daemon a journal says a killed run started: ``restore()`` quits it (if it
        still runs)."""
        d = cls(entry.get("gpu"))
        if entry.get("pipe_dir"):
            d.pipe_dir, d.log_dir = entry["pipe_dir"], entry.get("log_dir")
        d.ours = bool(d._own_pids() if d.gpu else daemon_pids())
        return d

    def apply(self, on: bool) -> str:
        """The MPS state of the run: ``off``, ``started`` or ``running (not ours)``."""
        machine = self._machine_pids()
        if machine:  # the machine's own daemon: every client without a folder of ours joins it
            if not on:
                self.notes.append("mps: an MPS control daemon (not started by trb) is running although mps: false; "
                                  "the models ran as its clients")
            return "running (not ours)"
        if not on:
            return "off"
        if self.gpu and self._own_pids():  # left by a run of this GPU that was killed
            self.client_pipe_dir = self.pipe_dir
            return "running (not ours)"
        if self.gpu:
            for d in (self.pipe_dir, self.log_dir):
                os.makedirs(d, exist_ok=True)
        self.ours = True  # before the tool runs: a signal while it does must still quit what it starts
        a = run([CONTROL, "-d"], env=self._env())
        if not a.ok:
            self.ours = False
            raise UserError("mps", f"could not start the MPS control daemon ({CONTROL} -d: {a.first_line()})")
        self.client_pipe_dir = self.pipe_dir
        if not _wait(until_running=True, timeout_s=5.0, pids=self._own_pids if self.gpu else daemon_pids):
            self.notes.append(f"mps: {CONTROL} -d returned but no daemon process is visible in /proc")
        return "started"

    def restore(self) -> None:
        """Stop the daemon if we started it (``quit`` through stdin, no shell pipe)."""
        if not self.ours:
            return
        a = run([CONTROL], input="quit\n", timeout_s=60.0, env=self._env())  # it waits for its clients to finish
        if not a.ok and (self._own_pids() if self.gpu else daemon_pids()):  # (none running: it never started)
            raise RuntimeError(f"MPS control daemon not stopped ({CONTROL} quit: {a.first_line()})")
        self.ours = False
        if not _wait(until_running=False, timeout_s=10.0, pids=self._own_pids if self.gpu else daemon_pids):
            self.notes.append("mps: the MPS control daemon was told to quit but is still running")
