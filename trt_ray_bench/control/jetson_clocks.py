"""A Jetson's clocks at their maximum, through NVIDIA's ``jetson_clocks``.

``clocks: max`` first stores the board's clock settings in a file of a private temporary
folder (``jetson_clocks --store FILE``), then pins CPU, GPU and memory (EMC) clocks at the
highest the current power mode allows (``jetson_clocks``; it also turns the fan to full
speed), and afterwards puts the stored settings back (``jetson_clocks --restore FILE``).
The state is read with ``jetson_clocks --show``. All of it needs root.

``--show`` prints, on an AGX Orin with Jetson Linux 35 (one line per CPU, abridged)::

    SOC family:tegra234  Machine:Jetson AGX Orin
    Online CPUs: 0-11
    cpu0: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=1 c7=1
    GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000
    EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=2133000000 FreqOverride=0
    DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
    FAN Dynamic Speed control=active hwmon2_pwm1=55
    NV Power Mode: MAXN

CPU frequencies are in kHz, GPU and EMC in Hz. Older boards differ slightly (TX1:
``cpu0: Gonvernor=interactive MinFreq=...`` without ``Online=``); what is missing is left out.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import UserError
from ._command import which
from ._paths import ensure_journal_dir
from ._privilege import check_root, run_as_root

TOOL = "jetson_clocks"
_KV = re.compile(r"(\w+)=(\S+)")
_CPU = re.compile(r"^cpu(\d+):\s*(.*)$")
_SOC = re.compile(r"SOC family:\s*(\S+)\s+Machine:\s*(.*)$")


def _freqs(fields: Dict[str, str], scale: float) -> Dict[str, float]:
    """MinFreq/MaxFreq/CurrentFreq as MHz (``scale``: the unit in MHz)."""
    out = {}
    for key, name in (("MinFreq", "min_mhz"), ("MaxFreq", "max_mhz"), ("CurrentFreq", "cur_mhz")):
        if fields.get(key, "").isdigit():
            out[name] = round(int(fields[key]) * scale, 3)
    return out


def parse_show(text: str) -> Dict[str, object]:
    """``jetson_clocks --show`` as a dict: ``gpu_min_mhz/gpu_max_mhz/gpu_cur_mhz``,
    ``emc_*_mhz`` and ``emc_override``, ``cpus`` (online, governor, MHz per CPU),
    ``cpus_online``, ``soc``, ``machine`` and ``power_mode`` (nvpmodel's name)."""
    state: Dict[str, object] = {}
    cpus: Dict[str, dict] = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = _SOC.search(line)
        if m:
            state["soc"], state["machine"] = m.group(1), m.group(2).strip()
            continue
        if line.startswith("Online CPUs:"):
            state["cpus_online"] = line.split(":", 1)[1].split(",")[0].strip()
            continue
        if line.startswith("NV Power Mode:"):
            state["power_mode"] = line.split(":", 1)[1].strip()
            continue
        m = _CPU.match(line)
        if m:
            fields = dict(_KV.findall(m.group(2).split("IdleStates:")[0]))
            cpu = {"online": int(fields["Online"])} if fields.get("Online", "").isdigit() else {}
            governor = fields.get("Governor") or fields.get("Gonvernor")  # sic, on TX1
            if governor:
                cpu["governor"] = governor
            cpu.update(_freqs(fields, 1e-3))
            cpus[f"cpu{m.group(1)}"] = cpu
            continue
        for unit in ("GPU", "EMC"):
            if line.startswith(unit + " ") and "Freq=" in line:
                fields = dict(_KV.findall(line))
                state.update({f"{unit.lower()}_{k}": v for k, v in _freqs(fields, 1e-6).items()})
                if unit == "EMC" and fields.get("FreqOverride", "").isdigit():
                    state["emc_override"] = int(fields["FreqOverride"])
    if cpus:
        state["cpus"] = dict(sorted(cpus.items(), key=lambda kv: int(kv[0][3:])))
    return state


class JetsonClocks:
    """``clocks: max`` on a Jetson: ``jetson_clocks`` between ``--store`` and ``--restore``."""

    name = "clocks"

    def __init__(self):
        self.notes: List[str] = []
        self.stored: Optional[Path] = None  # the settings to put back, while applied
        self._dir: Optional[str] = None

    def available(self) -> bool:
        return which(TOOL) is not None

    def read(self) -> Dict[str, object]:
        a = run_as_root([TOOL, "--show"])
        if not a.ok:
            raise UserError("clocks", f"jetson_clocks --show failed: {a.first_line()}")
        return {"tool": TOOL, **parse_show(a.out)}

    def check(self, mode) -> None:
        """Refuse where ``jetson_clocks`` cannot be run as root. Changes nothing."""
        if mode != "max":
            raise UserError("clocks", f"{mode!r}: jetson_clocks holds the clocks at their maximum (clocks: max)")
        if not self.available():
            raise UserError("clocks", f"{TOOL} not found on PATH (Jetson Linux installs it in /usr/bin); "
                                      "use clocks: default")
        check_root([TOOL], "clocks", TOOL)

    def journal_entry(self, mode) -> Dict[str, object]:
        """How to undo ``apply`` (for the node's journal): the settings stored first."""
        self._store()
        return {"kind": "jetson_clocks", "stored": str(self.stored), "dir": self._dir}

    def _store(self) -> None:
        if self.stored is not None:
            return
        # beside the node's journal, not in /tmp: a board that loses power keeps what to put back
        self._dir = tempfile.mkdtemp(prefix="trb-jetson-clocks-", dir=str(ensure_journal_dir()))
        store = Path(self._dir) / "l4t_dfs.conf"
        a = run_as_root([TOOL, "--store", str(store)])
        if not a.ok:
            self._forget()
            raise UserError("clocks", f"jetson_clocks --store failed: {a.first_line()}")
        self.stored = store  # from here on restore() has something to put back

    def apply(self, mode) -> Dict[str, object]:
        """Store the settings (unless done for the journal), pin the clocks, read back what
        is in force."""
        self._store()
        a = run_as_root([TOOL], timeout_s=60.0)
        if not a.ok:
            raise UserError("clocks", f"jetson_clocks failed: {a.first_line()}")
        return self.read()

    def restore(self) -> None:
        """Put the stored settings back; a failure keeps them for the next try."""
        if self.stored is None:
            return
        a = run_as_root([TOOL, "--restore", str(self.stored)], timeout_s=60.0)
        if not a.ok:
            raise RuntimeError(f"jetson_clocks --restore {self.stored}: {a.first_line()}")
        self._forget()

    def _forget(self) -> None:
        self.stored = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)  # root's file in our folder: ours to remove
            self._dir = None
