"""The machine state one experiment asks for (power mode, clock mode, MPS), applied as
one unit and always restored: in ``finally``, at interpreter exit, and on SIGTERM / SIGINT.

Which control carries out a mode depends on the platform: on a desktop or datacenter GPU
the clocks are nvidia-smi's (NvidiaSmiClocks); on a Jetson ``clocks: max`` is
``jetson_clocks`` (JetsonClocks), ``{gpu_mhz: N}`` the GPU's devfreq node (GpuDevfreq), and
``power_mode`` is nvpmodel's (NvpModel). The power mode goes first (nvpmodel resets the
clocks), and is set back last.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from typing import Dict, List, Optional, Union

from ..errors import UserError
from .clocks import NvidiaSmiClocks
from .devfreq import GpuDevfreq
from .journal import Journal, restore_left_behind
from .jetson_clocks import JetsonClocks
from .mps import MpsDaemon
from .nvpmodel import NvpModel
from .platform import detect_platform, driver_text

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_KINDS = {"dgpu": "it has a desktop or datacenter NVIDIA GPU", "cpu": "it has no NVIDIA GPU"}


def clocks_text(clocks) -> str:
    """The requested mode as the runs table shows it: ``default``, ``max``, ``gpu_mhz=1410``
    or ``gpu_mhz=1410,mem_mhz=2619``."""
    if isinstance(clocks, str):
        return clocks
    d = clocks.model_dump() if hasattr(clocks, "model_dump") else dict(clocks)
    return ",".join(f"{k}={d[k]}" for k in ("gpu_mhz", "mem_mhz") if d.get(k) is not None)


class MachineControls:
    """``check()`` refuses (UserError) before anything changes; ``apply()`` changes;
    ``restore()`` undoes what was changed, once, whatever happened in between. ``record``
    holds what a run stores: the modes asked for, the state before, in force and after.

    Nothing is executed for ``clocks: default`` with ``mps: false`` and no ``power_mode``
    (a /proc read only, to notice someone else's MPS daemon)."""

    def __init__(self, clocks: Union[str, dict, object] = "default", mps: bool = False, gpu_index: int = 0,
                 power_mode: Optional[int] = None, kind: Optional[str] = None,
                 mps_daemon: Optional[MpsDaemon] = None, journal_key: Optional[str] = None):
        self.clocks_mode = clocks
        #: the node's journal of this GPU's (board's) changes: written before any, cleared after the restore
        self.journal = Journal(journal_key) if journal_key else None
        self.power_mode = power_mode
        if kind is None and (clocks != "default" or power_mode is not None):
            kind = detect_platform()["kind"]
        self.kind = kind
        self.clocks: Optional[object] = None
        if clocks != "default":
            self.clocks = (JetsonClocks() if clocks == "max" else GpuDevfreq()) if kind == "jetson" else \
                NvidiaSmiClocks(gpu_index)
        self.nvpmodel: Optional[NvpModel] = NvpModel() if power_mode is not None and kind == "jetson" else None
        self.mps = bool(mps)
        self.daemon = mps_daemon or MpsDaemon()  # a GPU's own daemon on a machine with several
        self.record: Dict[str, object] = {
            "clocks_mode": clocks_text(clocks), "clocks_before": None, "clocks_in_force": None,
            "clocks_after": None, "mps": self.mps, "mps_state": None, "power_mode_asked": power_mode,
            "power_mode_before": None, "power_mode_in_force": None, "power_mode_after": None, "warnings": [],
        }
        self._entries: List[dict] = []  # the journal's entries so far
        self._entry_of: Dict[int, dict] = {}  # id(control) -> its entry
        self._checked = False
        self._armed = False
        self._previous: Dict[int, object] = {}

    @classmethod
    def from_spec(cls, spec, gpu_index: int = 0, mps_daemon: Optional[MpsDaemon] = None,
                  journal_key: Optional[str] = None) -> "MachineControls":
        """From an ExperimentSpec or a mapping with its ``clocks``, ``mps`` and ``power_mode``;
        for the GPU ``gpu_index`` (nvidia-smi's), with ``mps_daemon`` where given; changes
        journaled under ``journal_key`` (``journal_key_for``)."""
        get = spec.get if isinstance(spec, dict) else lambda k, d=None: getattr(spec, k, d)
        return cls(get("clocks", "default"), get("mps", False), gpu_index, power_mode=get("power_mode", None),
                   mps_daemon=mps_daemon, journal_key=journal_key)

    def changes(self) -> bool:
        """Whether ``apply`` changes the machine: a clock mode, a power mode or MPS asked."""
        return self.clocks is not None or self.nvpmodel is not None or self.mps

    def _controls(self) -> List[object]:
        """In the order they are applied (and restored in reverse)."""
        return [c for c in (self.nvpmodel, self.clocks, self.daemon) if c is not None]

    def check(self) -> Dict[str, object]:
        """Refuse what cannot be done (UserError), changing nothing of this run's own; the
        journals killed runs left on this machine are restored first (or refused in one
        line), so nothing is read or recorded over a state nobody checked."""
        if isinstance(self.clocks, NvidiaSmiClocks) or self.mps:  # the driver's tools: is there a driver?
            problem = detect_platform().get("driver")
            if problem:
                where, asked = ("clocks", clocks_text(self.clocks_mode)) if self.clocks is not None else ("mps", "true")
                raise UserError(where, f"{asked}: {driver_text(problem)}")
        if self.journal is not None:  # any GPU's of this machine: its writer is gone, nobody holds it
            self.record["warnings"].extend(restore_left_behind())
        if self.power_mode is not None and self.nvpmodel is None:
            raise UserError("power_mode", f"{self.power_mode}: power modes are a Jetson setting (nvpmodel) and this "
                                          f"node is not a Jetson ({_KINDS.get(self.kind, self.kind)}); "
                                          "leave power_mode out")
        if self.nvpmodel is not None:
            self.nvpmodel.check(self.power_mode)
        if self.clocks is not None:
            self.clocks.check(self.clocks_mode)
        self.daemon.check(self.mps)
        self._checked = True
        return dict(self.record)

    def apply(self) -> Dict[str, object]:
        """Apply the power mode, the clock mode, then MPS; on any failure undo what was done
        and re-raise. The states before are read first, so "after" compares with them."""
        if not self._checked:
            self.check()
        if self.clocks is not None or self.mps or self.nvpmodel is not None:
            self._arm()  # before the first change: a kill from here on still restores
        try:
            if self.nvpmodel is not None:
                self.record["power_mode_before"] = self.nvpmodel.read()
            if self.clocks is not None:
                self.record["clocks_before"] = self.clocks.read()
            # each change journaled (how to undo it) just before it is made
            if self.nvpmodel is not None:
                self._journal(self.nvpmodel, self.power_mode)
                self.record["power_mode_in_force"] = self.nvpmodel.apply(self.power_mode)
            if self.clocks is not None:
                self._journal(self.clocks, self.clocks_mode)
                self.record["clocks_in_force"] = self.clocks.apply(self.clocks_mode)
            self._journal(self.daemon, self.mps)
            self.record["mps_state"] = self.daemon.apply(self.mps)
        except BaseException:
            self.restore()
            raise
        finally:
            self._collect_notes()
        return dict(self.record)

    def restore(self) -> Dict[str, object]:
        """Undo in reverse order; idempotent. Failures become warnings (and keep the exit
        hooks armed so they are retried) rather than hiding the run's own outcome."""
        if not self._armed:
            return dict(self.record)
        problems, left = [], []
        for control in reversed(self._controls()):
            try:
                control.restore()
            except Exception as exc:  # noqa: BLE001 - every control gets its chance
                problems.append(f"{control.name}: {exc}")
                left.append(id(control))
        for control, key in ((self.clocks, "clocks_after"), (self.nvpmodel, "power_mode_after")):
            if control is not None:
                try:
                    self.record[key] = control.read()
                except Exception as exc:  # noqa: BLE001
                    self.record[key] = {"error": str(exc)}
        self._collect_notes()
        if problems:
            self.record["warnings"].extend(f"not restored: {p}" for p in problems)
            if self.journal is not None and self._entries:  # what is left to undo, and only that
                still = {id(self._entry_of[c]) for c in left if c in self._entry_of}
                self._entries = [e for e in self._entries if id(e) in still]
                self.journal.write(self._entries)
        else:
            if self.journal is not None:
                self.journal.clear()
            self._disarm()
        return dict(self.record)

    def _journal(self, control, mode) -> None:
        """Add how to undo ``control``'s coming change to the node's journal (rewritten
        whole, atomically), before the change is made."""
        if self.journal is None:
            return
        entry = control.journal_entry(mode)
        if entry:
            self._entries.append(entry)
            self._entry_of[id(control)] = entry
            self.journal.write(self._entries)

    def __enter__(self) -> "MachineControls":
        self.check()
        self.apply()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def _collect_notes(self) -> None:
        for control in self._controls():
            self.record["warnings"].extend(control.notes)
            control.notes.clear()

    # The process that applied the controls restores them even when it is told to stop.
    # Ray's workers turn SIGTERM into SystemExit (atexit runs); ``ray.kill`` exits at once,
    # which is why the driver restores before killing the Monitor.
    def _arm(self) -> None:
        if self._armed:
            return
        self._armed = True
        atexit.register(self.restore)
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def _disarm(self) -> None:
        self._armed = False
        atexit.unregister(self.restore)
        if threading.current_thread() is threading.main_thread():
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous.clear()

    def _on_signal(self, signum, frame) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.restore()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
