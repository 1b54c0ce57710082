"""CUDA MPS: the control daemon around a run that asks for it.

Started (``nvidia-cuda-mps-control -d``) only when none is running, stopped afterwards
(``quit`` on its stdin) only if we started it: on a shared machine a daemon that was
already there belongs to someone else and is left alone, and recorded.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, List

from ..errors import UserError
from ._command import run, which

CONTROL = "nvidia-cuda-mps-control"
PROC = Path("/proc")


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


def _wait(until_running: bool, timeout_s: float) -> bool:
    t_end = time.monotonic() + timeout_s
    while bool(daemon_pids()) != until_running:
        if time.monotonic() > t_end:
            return False
        time.sleep(0.05)
    return True


class MpsDaemon:
    """The MPS control daemon of this machine: ``apply(True)`` makes sure one runs for the
    run's CUDA processes (which must start after it), ``restore()`` stops ours."""

    name = "mps"

    def __init__(self):
        self.notes: List[str] = []
        self.ours = False

    def available(self) -> bool:
        return which(CONTROL) is not None

    def read(self) -> Dict[str, object]:
        pids = daemon_pids()
        return {"running": bool(pids), "pids": pids, "ours": self.ours,
                "pipe_dir": os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")}

    def check(self, on: bool) -> None:
        """Refuse ``mps: true`` where MPS cannot be started. Changes nothing."""
        if on and not daemon_pids() and not self.available():
            raise UserError("mps", f"{CONTROL} not found on PATH: MPS needs the CUDA MPS tools of the NVIDIA "
                                   "driver (Linux); use mps: false")

    def apply(self, on: bool) -> str:
        """The MPS state of the run: ``off``, ``started`` or ``running (not ours)``."""
        if daemon_pids():
            if not on:
                self.notes.append("mps: an MPS control daemon (not started by trb) is running although mps: false; "
                                  "the models ran as its clients")
            return "running (not ours)"
        if not on:
            return "off"
        a = run([CONTROL, "-d"])
        if not a.ok:
            raise UserError("mps", f"could not start the MPS control daemon ({CONTROL} -d: {a.first_line()})")
        self.ours = True
        if not _wait(until_running=True, timeout_s=5.0):
            self.notes.append(f"mps: {CONTROL} -d returned but no daemon process is visible in /proc")
        return "started"

    def restore(self) -> None:
        """Stop the daemon if we started it (``quit`` through stdin, no shell pipe)."""
        if not self.ours:
            return
        a = run([CONTROL], input="quit\n", timeout_s=60.0)  # it waits for its clients to finish
        if not a.ok:
            raise RuntimeError(f"MPS control daemon not stopped ({CONTROL} quit: {a.first_line()})")
        self.ours = False
        if not _wait(until_running=False, timeout_s=10.0):
            self.notes.append("mps: the MPS control daemon was told to quit but is still running")
