"""A Jetson's GPU held at one frequency, through its devfreq node in sysfs.

The node is the entry of ``/sys/class/devfreq`` whose device-tree node is the GPU
(``device/of_node/name``: ``ga10b`` Orin, ``gv11b`` Xavier, ``gp10b`` TX2, ``gm20b`` or
``gpu`` Nano/TX1 and Jetson Linux 36); e.g. ``17000000.ga10b``, ``57000000.gpu``. Its files
are in Hz: ``available_frequencies``, ``min_freq``, ``max_freq``, ``cur_freq``.

``clocks: {gpu_mhz: N}`` sets ``min_freq`` and ``max_freq`` to the available frequency of
N MHz (given rounded down: 1300 for Orin's 1300.5 MHz), and afterwards sets back the two
values read before. The order of the two writes keeps min <= max at every step (older
kernels refuse a min above the max): raising, the max goes first; lowering, the min.
The power mode (nvpmodel) caps the GPU through this same ``max_freq``: a frequency above
the cap is allowed, with a warning in the run.

The memory (EMC) clock has no such node that trb could set and put back cleanly:
``mem_mhz`` is refused on a Jetson.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import UserError
from ._paths import read_text, sysfs_path
from ._privilege import check_root, write_as_root

DEVFREQ = "/sys/class/devfreq"
#: device-tree names of the Jetson GPUs (Orin, Xavier, TX2, Nano/TX1; "gpu" on L4T 36)
GPU_NAMES = ("ga10b", "gv11b", "gp10b", "gm20b", "gpu")


def _of_name(entry: Path) -> str:
    name = read_text(entry / "device" / "of_node" / "name")
    if name:
        return name
    for line in read_text(entry / "device" / "uevent").splitlines():
        if line.startswith("OF_NAME="):
            return line.split("=", 1)[1].strip()
    return ""


def find_gpu_node() -> Optional[Path]:
    """The GPU's devfreq node under ``TRB_SYSFS_ROOT``, or None. Its real path (the
    ``/sys/devices/...`` folder the class entry links to): the one nvpmodel.conf and a
    sudoers rule name."""
    root = sysfs_path(DEVFREQ)
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return None
    by_suffix = None
    for entry in entries:
        if _of_name(entry) in GPU_NAMES:
            return entry.resolve()
        if by_suffix is None and entry.name.rsplit(".", 1)[-1] in GPU_NAMES:
            by_suffix = entry.resolve()
    return by_suffix


def _hz(path: Path) -> Optional[int]:
    text = read_text(path)
    return int(text) if text.isdigit() else None


def _mhz(hz: Optional[int]) -> Optional[float]:
    return None if hz is None else round(hz / 1e6, 3)


def gpu_range_text() -> str:
    """``306-1300.5``: the GPU's devfreq min-max in MHz, or "". For provenance."""
    node = find_gpu_node()
    if node is None:
        return ""
    lo, hi = _mhz(_hz(node / "min_freq")), _mhz(_hz(node / "max_freq"))
    return f"{lo:g}-{hi:g}" if lo is not None and hi is not None else ""


def _target(mode) -> Tuple[int, Optional[int]]:
    if hasattr(mode, "model_dump"):
        mode = mode.model_dump()
    if isinstance(mode, dict) and isinstance(mode.get("gpu_mhz"), int):
        return mode["gpu_mhz"], mode.get("mem_mhz")
    raise UserError("clocks", f"{mode!r}: expected {{gpu_mhz: N}}")


class GpuDevfreq:
    """``clocks: {gpu_mhz: N}`` on a Jetson: the GPU devfreq node's min and max held at N."""

    name = "clocks"

    def __init__(self, node: Optional[Path] = None):
        self._node = node
        self.notes: List[str] = []
        self.previous: Optional[Tuple[int, int]] = None  # (min, max) Hz to put back, while applied
        self._hz: Optional[int] = None

    @property
    def node(self) -> Optional[Path]:
        if self._node is None:
            self._node = find_gpu_node()
        return self._node

    def available(self) -> bool:
        return self.node is not None

    def frequencies(self) -> List[int]:
        """The GPU's available frequencies (Hz, ascending)."""
        return sorted({int(v) for v in read_text(self.node / "available_frequencies").split() if v.isdigit()})

    def _range(self) -> Tuple[int, int]:
        lo, hi = _hz(self.node / "min_freq"), _hz(self.node / "max_freq")
        if lo is None or hi is None:
            raise UserError("clocks", f"cannot read the GPU clock limits in {self.node}")
        return lo, hi

    def read(self) -> Dict[str, object]:
        lo, hi = self._range()
        return {"tool": "devfreq", "node": self.node.name, "gpu_min_mhz": _mhz(lo), "gpu_max_mhz": _mhz(hi),
                "gpu_cur_mhz": _mhz(_hz(self.node / "cur_freq")),
                "governor": read_text(self.node / "governor") or None}

    def check(self, mode) -> int:
        """The frequency (Hz) for ``mode``, refused in words naming the valid ones, and
        only where we may write the node. Changes nothing."""
        mhz, mem = _target(mode)
        if mem is not None:
            raise UserError("clocks.mem_mhz", "a Jetson's memory (EMC) clock cannot be held by trb (it follows the "
                                              "power mode; clocks: max pins it with jetson_clocks); leave mem_mhz out")
        if self.node is None:
            raise UserError("clocks", f"no GPU devfreq node found in {sysfs_path(DEVFREQ)} (looked for "
                                      f"{', '.join(GPU_NAMES)}); use clocks: default or max")
        freqs = self.frequencies()
        match = [f for f in freqs if f // 1_000_000 == mhz]
        if not match:
            valid = ", ".join(str(f // 1_000_000) for f in freqs) or "none listed"
            raise UserError("clocks.gpu_mhz", f"{mhz} MHz is not a frequency of this Jetson's GPU; valid: {valid} MHz "
                                              f"({self.node.name}/available_frequencies)")
        for name in ("max_freq", "min_freq"):
            check_root(["tee", str(self.node / name)], "clocks.gpu_mhz", f"writing {self.node / name}")
        self._hz = match[0]
        return self._hz

    def journal_entry(self, mode) -> Dict[str, object]:
        """How to undo ``apply`` (for the node's journal): the min and max to put back."""
        return {"kind": "devfreq", "node": str(self.node), "previous": list(self._range())}

    def apply(self, mode) -> Dict[str, object]:
        """Hold the GPU at the frequency, read back what is in force."""
        hz = self._hz or self.check(mode)
        lo, hi = self._range()
        if hz > hi:
            self.notes.append(f"clocks: the GPU is held at {_mhz(hz):g} MHz, above the {_mhz(hi):g} MHz maximum "
                              "of the power mode in force (its power budget does not hold during the run)")
        self.previous = (lo, hi)  # from the first write on, restore() puts these back
        try:
            self._write(hz, hz, current=(lo, hi))
        except RuntimeError as exc:
            raise UserError("clocks", str(exc)) from None
        return self.read()

    def restore(self) -> None:
        """Put the previous min and max back; a failure keeps them for the next try."""
        if self.previous is None:
            return
        self._write(*self.previous, current=self._range())
        self.previous = None

    def _write(self, lo: int, hi: int, current: Tuple[int, int]) -> None:
        # the max first when the new max is not below the current min, else the min first:
        # either way min <= max holds after each write
        order = (("max_freq", hi), ("min_freq", lo)) if hi >= current[0] else (("min_freq", lo), ("max_freq", hi))
        for name, value in order:
            a = write_as_root(self.node / name, value)
            if not a.ok:
                raise RuntimeError(f"could not write {value} to {self.node / name}: {a.first_line()}")
