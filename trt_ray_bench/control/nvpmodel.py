"""A Jetson's power mode, through NVIDIA's ``nvpmodel``.

The modes a board defines are read from ``/etc/nvpmodel.conf`` (under ``TRB_ROOT``),
one header per mode::

    < POWER_MODEL ID=0 NAME=MAXN >
    ...
    < PM_CONFIG DEFAULT=2 >

``nvpmodel -q`` prints the mode in force, its name then its id (an unprivileged query
may add ``NVPM ERROR`` lines about files it cannot read, which do not matter here)::

    NV Power Mode: MAXN
    0

``nvpmodel -m N`` sets a mode (root). On boards whose modes differ in the GPU's power
gating, once the GPU has been used, it asks before rebooting::

    NVPM WARN: Golden image context is already created
    NVPM WARN: Reboot required for changing to this power mode: 1
    NVPM WARN: DO YOU WANT TO REBOOT NOW? enter YES/yes to confirm:

trb runs nvpmodel with stdin closed, so the question reads end-of-file and is declined
(nvpmodel then fails and changes nothing); the run is refused with what to do instead.
trb never reboots a board (it never passes ``--force``, with which nvpmodel reboots
without asking). A mode that is already in force is not set again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import UserError
from ._command import Answer, run, which
from ._paths import system_path
from ._privilege import check_root, run_as_root

TOOL = "nvpmodel"
CONF = "/etc/nvpmodel.conf"
_MODEL = re.compile(r"^<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+)\s*>")
_DEFAULT = re.compile(r"^<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>")


def parse_conf(text: str) -> Tuple[Dict[int, str], Optional[int]]:
    """The modes of an nvpmodel.conf ({id: name}) and its boot default."""
    modes: Dict[int, str] = {}
    default = None
    for line in text.splitlines():
        m = _MODEL.match(line.strip())
        if m:
            modes[int(m.group(1))] = m.group(2)
            continue
        m = _DEFAULT.match(line.strip())
        if m:
            default = int(m.group(1))
    return dict(sorted(modes.items())), default


def parse_query(text: str) -> Optional[Dict[str, object]]:
    """``nvpmodel -q``: {"id": 0, "name": "MAXN"}, or None if it names no mode."""
    lines = [ln.strip() for ln in text.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip()
            nxt = next((ln for ln in lines[i + 1:] if ln), "")
            return {"id": int(nxt) if nxt.isdigit() else None, "name": name}
    return None


def mode_text(state: Optional[dict]) -> str:
    """``MAXN (0)``: how a mode is shown and stored in the runs table."""
    if not state:
        return ""
    return f"{state.get('name')} ({state.get('id')})" if state.get("id") is not None else str(state.get("name"))


def modes_text(modes: Dict[int, str]) -> str:
    return ", ".join(f"{i} ({n})" for i, n in modes.items())


def _reason(a: Answer) -> str:
    """nvpmodel's most telling line: the reboot request, else its first error."""
    lines = [ln.strip() for ln in a.out.splitlines() if ln.strip()]
    for key in ("Reboot required", "NVPM ERROR"):
        hit = next((ln for ln in lines if key.lower() in ln.lower()), None)
        if hit:
            return hit
    return a.first_line()


class NvpModel:
    """``power_mode: N``: checked against the board's modes, set, read back, set back."""

    name = "power_mode"

    def __init__(self, conf: Optional[Path] = None):
        self.conf = Path(conf) if conf else system_path(CONF)
        self.notes: List[str] = []
        self.previous: Optional[int] = None  # the mode to set back, while ours is in force

    def available(self) -> bool:
        return which(TOOL) is not None

    def modes(self) -> Dict[int, str]:
        """The modes this board defines ({id: name})."""
        try:
            text = self.conf.read_text(errors="replace")
        except OSError as exc:
            raise UserError("power_mode", f"cannot read the board's power modes from {self.conf} "
                                          f"({exc.strerror or exc})") from None
        modes, _ = parse_conf(text)
        if not modes:
            raise UserError("power_mode", f"{self.conf} defines no power mode (no '< POWER_MODEL ID=N NAME=... >')")
        return modes

    def read(self) -> Dict[str, object]:
        a = run([TOOL, "-q"])
        state = parse_query(a.out)
        if state is None or state["id"] is None:
            raise UserError("power_mode", f"nvpmodel -q did not say the power mode: {a.first_line()}")
        return state

    def check(self, mode: int) -> None:
        """Refuse a mode the board does not define, or one we could not set. Changes nothing."""
        if not self.available():
            raise UserError("power_mode", f"{TOOL} not found on PATH (Jetson Linux installs it in /usr/sbin); "
                                          "leave power_mode out")
        modes = self.modes()
        if mode not in modes:
            raise UserError("power_mode", f"{mode} is not a power mode of this board; its modes: "
                                          f"{modes_text(modes)} ({self.conf})")
        if self.read()["id"] != mode:
            check_root([TOOL, "-m", str(mode)], "power_mode", TOOL)

    def journal_entry(self, mode: int) -> Optional[Dict[str, object]]:
        """How to undo ``apply`` (for the node's journal); None where ``mode`` is in force."""
        before = self.read()
        return None if before["id"] == mode else {"kind": "nvpmodel", "previous": int(before["id"])}

    def apply(self, mode: int) -> Dict[str, object]:
        """Set ``mode`` (unless in force already) and read back the mode in force."""
        before = self.read()
        if before["id"] == mode:
            return before
        self.previous = int(before["id"])  # a half-failed nvpmodel may have changed some clocks
        a = run_as_root([TOOL, "-m", str(mode)], timeout_s=120.0)
        if a.says("reboot required"):
            self.previous = None  # it asked, was told no (end of input), and changed nothing
            raise UserError("power_mode", f"this board needs a reboot to change to mode {mode} ({_reason(a)}); "
                                          f"trb does not reboot: run sudo nvpmodel -m {mode}, reboot, and run again")
        if not a.ok or a.says("NVPM ERROR"):
            raise UserError("power_mode", f"nvpmodel -m {mode} failed: {_reason(a)}")
        now = self.read()
        if now["id"] != mode:
            raise UserError("power_mode", f"nvpmodel -m {mode} returned but the board reports {mode_text(now)}")
        return now

    def restore(self) -> None:
        """Set the previous mode back; a failure keeps it for the next try."""
        if self.previous is None:
            return
        a = run_as_root([TOOL, "-m", str(self.previous)], timeout_s=120.0)
        if not a.ok or a.says("NVPM ERROR", "reboot required"):
            raise RuntimeError(f"power mode {self.previous} not set back (nvpmodel -m {self.previous}: {_reason(a)})")
        self.previous = None


def current_mode_text() -> str:
    """The mode in force as ``MAXN (0)``, or "" (no nvpmodel, no answer). For provenance."""
    if which(TOOL) is None:
        return ""
    try:
        return mode_text(parse_query(run([TOOL, "-q"], timeout_s=10.0).out))
    except Exception:  # noqa: BLE001 - provenance must not fail a run
        return ""
