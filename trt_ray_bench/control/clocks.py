"""Clocks of a desktop or datacenter NVIDIA GPU, through nvidia-smi.

A run at ``max`` or at a fixed clock locks the graphics clock (``-lgc N,N``) and, where
asked and where the GPU allows it, the memory clock (``-lmc M,M``); afterwards only what
was locked is reset (``-rgc``, ``-rmc``). nvidia-smi cannot report an existing lock, so a
lock someone else set before the run is reset to the driver's default, not re-applied.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple, Union

from ..errors import UserError
from ._command import Answer, run, which

SMI = "nvidia-smi"
#: ``--query-gpu`` fields, and the names they get in the recorded state.
QUERY = {
    "name": "name",
    "clocks.sm": "sm_mhz",
    "clocks.mem": "mem_mhz",
    "clocks.max.sm": "max_sm_mhz",
    "clocks.max.mem": "max_mem_mhz",
    "clocks.applications.graphics": "app_sm_mhz",
    "clocks.applications.memory": "app_mem_mhz",
    "persistence_mode": "persistence_mode",
}
_SUPPORTED = re.compile(r"^\s*(Memory|Graphics)\s*:\s*(\d+)\s*MHz\s*$", re.IGNORECASE)
#: nvidia-smi's exit statuses (man nvidia-smi, RETURN VALUE).
RC_NOT_SUPPORTED, RC_NO_PERMISSION = 3, 4

Mode = Union[str, Dict[str, Optional[int]], object]


def parse_supported(text: str) -> Dict[int, List[int]]:
    """``nvidia-smi -q -d SUPPORTED_CLOCKS``: each memory clock with the graphics clocks
    allowed with it (highest first). Empty where the GPU says ``N/A``."""
    table: Dict[int, List[int]] = {}
    mem = None
    for line in text.splitlines():
        m = _SUPPORTED.match(line)
        if not m:
            continue
        mhz = int(m.group(2))
        if m.group(1).lower() == "memory":
            mem = mhz
            table.setdefault(mem, [])
        elif mem is not None:
            table[mem].append(mhz)
    return {k: sorted(set(v), reverse=True) for k, v in table.items() if v}


def parse_query(line: str) -> Dict[str, object]:
    """One ``--query-gpu`` csv line (noheader, nounits): numbers as int, ``[N/A]`` as None."""
    out: Dict[str, object] = {}
    for key, raw in zip(QUERY.values(), line.split(",")):
        v = raw.strip()
        if not v or v.startswith("[") or v.upper() == "N/A":
            out[key] = None
        elif key != "name" and re.fullmatch(r"\d+(\.\d+)?", v):
            out[key] = int(float(v))
        else:
            out[key] = v
    return out


def nearest(values: List[int], mhz: int, k: int = 2) -> List[int]:
    """The ``k`` supported values closest to ``mhz``, ascending."""
    return sorted(sorted(values, key=lambda v: (abs(v - mhz), v))[:k])


def _targets(mode: Mode) -> Tuple[Union[str, int], Optional[Union[str, int]]]:
    """(gpu, mem) asked for: ``max`` -> ("max", "max"); a ClockSpec or dict -> its MHz."""
    if mode == "max":
        return "max", "max"
    if hasattr(mode, "model_dump"):
        mode = mode.model_dump()
    if isinstance(mode, dict) and isinstance(mode.get("gpu_mhz"), int):
        return mode["gpu_mhz"], mode.get("mem_mhz")
    raise UserError("clocks", f"{mode!r}: expected default, max or {{gpu_mhz: N}} / {{gpu_mhz: N, mem_mhz: M}}")


class NvidiaSmiClocks:
    """The graphics and memory clocks of one GPU (``nvidia-smi -i``): checked against
    the clocks it supports, locked for a run, read back, reset."""

    name = "clocks"

    def __init__(self, gpu_index: int = 0):
        self.gpu = str(gpu_index)
        self.notes: List[str] = []
        self.locked: Dict[str, Tuple[int, int]] = {}  # "gpu" / "mem": the range we set
        self._plan: Optional[Tuple[int, Optional[int]]] = None

    def _smi(self, *args: str) -> Answer:
        return run([SMI, "-i", self.gpu, *args])

    def available(self) -> bool:
        return which(SMI) is not None

    def read(self) -> Dict[str, object]:
        """The clocks now, as nvidia-smi reports them (an idle GPU reads below its lock)."""
        a = self._smi(f"--query-gpu={','.join(QUERY)}", "--format=csv,noheader,nounits")
        if not a.ok or not a.out.strip():
            raise UserError("clocks", f"nvidia-smi could not read the clocks of GPU {self.gpu}: {a.first_line()}")
        return {"gpu": int(self.gpu), **parse_query(a.out.strip().splitlines()[0])}

    def supported(self) -> Dict[int, List[int]]:
        a = self._smi("-q", "-d", "SUPPORTED_CLOCKS")
        if not a.ok:
            raise UserError("clocks", f"nvidia-smi -i {self.gpu} -q -d SUPPORTED_CLOCKS: {a.first_line()}")
        table = parse_supported(a.out)
        if not table:
            raise UserError("clocks", f"GPU {self.gpu} reports no supported clocks (nvidia-smi -q -d "
                                      "SUPPORTED_CLOCKS says N/A): it cannot be held at a clock; use clocks: default")
        return table

    def check(self, mode: Mode) -> Tuple[int, Optional[int]]:
        """The (graphics, memory or None) MHz to lock for ``mode``, refused in words naming
        the supported values if the GPU cannot run at them. Changes nothing."""
        if not self.available():
            raise UserError("clocks", f"{SMI} not found on PATH: clock modes need the NVIDIA driver of a "
                                      "desktop or datacenter GPU; use clocks: default")
        gpu, mem = _targets(mode)
        table = self.supported()
        mems = sorted(table, reverse=True)
        if mem == "max":
            mem = mems[0]
        elif mem is not None and mem not in table:
            raise UserError("clocks.mem_mhz", f"{mem} MHz is not a memory clock GPU {self.gpu} supports; "
                                              f"supported: {', '.join(map(str, mems))} MHz")
        allowed = table[mem] if mem is not None else sorted({g for gs in table.values() for g in gs}, reverse=True)
        if gpu == "max":
            gpu = allowed[0]
        elif gpu not in allowed:
            with_mem = f" with memory at {mem} MHz" if mem is not None and len(table) > 1 else ""
            raise UserError(
                "clocks.gpu_mhz",
                f"{gpu} MHz is not a graphics clock GPU {self.gpu} supports{with_mem}; nearest: "
                f"{', '.join(map(str, nearest(allowed, gpu)))} MHz (supported: {allowed[-1]}..{allowed[0]} MHz, "
                f"{len(allowed)} values; nvidia-smi -q -d SUPPORTED_CLOCKS lists them)",
            )
        self._plan = (gpu, mem)
        return self._plan

    def journal_entry(self, mode: Mode) -> Dict[str, object]:
        """How to undo ``apply`` (for the node's journal): the resets of what it locks."""
        gpu, mem = self._plan or self.check(mode)
        return {"kind": "nvidia-smi-clocks", "gpu": int(self.gpu), "reset": ["gpu"] + (["mem"] if mem is not None else [])}

    def apply(self, mode: Mode) -> Dict[str, object]:
        """Lock, then read back: the clocks in force and the ranges locked."""
        gpu, mem = self._plan or self.check(mode)
        self._lock("gpu", "-lgc", gpu)
        if mem is not None:
            self._lock("mem", "-lmc", mem)
        state = self.read()
        state["locked_gpu_mhz"] = list(self.locked["gpu"])
        state["locked_mem_mhz"] = list(self.locked["mem"]) if "mem" in self.locked else (
            "not supported" if mem is not None else None)
        return state

    def _lock(self, which_clock: str, flag: str, mhz: int) -> None:
        # noted before the tool runs: a signal that arrives while it does must still reset it
        # (a reset of a clock that was not locked is harmless), and the journal be kept till then
        self.locked[which_clock] = (mhz, mhz)
        a = self._smi(flag, f"{mhz},{mhz}")
        refused = a.rc in (RC_NO_PERMISSION, RC_NOT_SUPPORTED) or a.says("permission") or a.says("not supported")
        if refused or not a.ok:
            del self.locked[which_clock]  # (nothing locked)
        what = "graphics" if which_clock == "gpu" else "memory"
        if a.rc == RC_NO_PERMISSION or a.says("permission"):
            raise UserError("clocks", f"no permission to lock GPU clocks (nvidia-smi {flag}: {a.first_line()}); "
                                      "run as root (CAP_SYS_ADMIN in a container), or use clocks: default")
        if a.rc == RC_NOT_SUPPORTED or a.says("not supported"):
            if which_clock == "mem":  # HBM and many GeForce GPUs: the driver keeps the memory clock
                self.notes.append(f"clocks: GPU {self.gpu} cannot lock its memory clock ({a.first_line()}); "
                                  "the memory clock was left to the driver")
                return
            raise UserError("clocks", f"GPU {self.gpu} cannot lock its {what} clock (nvidia-smi {flag}: "
                                      f"{a.first_line()}); use clocks: default")
        if not a.ok:
            raise UserError("clocks", f"nvidia-smi {flag} {mhz},{mhz} failed: {a.first_line()}")

    def restore(self) -> None:
        """Reset what ``apply`` locked, and only that. Every reset is tried; a failed one
        stays recorded, so calling again retries it."""
        failed = []
        for which_clock, flag in (("gpu", "-rgc"), ("mem", "-rmc")):
            if which_clock in self.locked:
                a = self._smi(flag)
                if a.ok:
                    del self.locked[which_clock]
                else:
                    failed.append(f"nvidia-smi {flag}: {a.first_line()}")
        if failed:
            raise RuntimeError(f"GPU {self.gpu} clocks not reset ({'; '.join(failed)})")
