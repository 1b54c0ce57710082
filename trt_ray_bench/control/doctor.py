"""What this machine offers for a run, and what the user must fix first: ``trb doctor``.

Only reads and asks (``which``, sysfs and /proc files, ``nvpmodel -q``, ``dpkg-query``,
``nvidia-smi -q``, ``sudo -n -l``); it never changes a clock, a power mode or a daemon.
A line that starts with ``FIX:`` names what a mode of the spec would be refused for.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Callable, List

from ._command import which
from ._paths import read_text
from ._privilege import through_sudo, root_problem

WIDTH = 13


def _line(label: str, text: str) -> str:
    return f"{label:<{WIDTH}} {text}"


def _root_text(argv: List[str], needed_by: str, missing: List[str]) -> str:
    """Whether ``argv`` can run as root without a password, in words; if not, its sudoers
    form is added to ``missing``."""
    if not through_sudo():
        return "root: yes (running as root)"
    problem = root_problem(argv)
    if problem is None:
        return "root: yes (passwordless sudo)"
    missing.append(" ".join([which(argv[0]) or argv[0], *argv[1:]]))
    return (f"FIX: {needed_by} needs root: run as root or allow passwordless sudo for "
            f"{os.path.basename(argv[0])} ({problem})")


def _safe(lines: List[str], label: str, part: Callable[[], List[str]]) -> None:
    """One part of the report; a part that fails says so and the others still run."""
    try:
        lines.extend(part())
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not fail
        lines.append(_line(label, f"could not be checked ({exc.__class__.__name__}: {exc})"))


def _jetson(board: str) -> List[str]:
    from .devfreq import find_gpu_node
    from .jetpack import generation, tensorrt_lines
    from .jetson_clocks import TOOL as JETSON_CLOCKS
    from .nvpmodel import TOOL as NVPMODEL, NvpModel, current_mode_text, modes_text
    from .platform import jetpack_version, l4t_release

    lines = [_line("platform", f"Jetson: {board}")]
    missing: List[str] = []  # commands that need a sudoers rule
    l4t = l4t_release()
    jetpack = jetpack_version(l4t)
    lines.append(_line("jetson linux", f"L4T {l4t}, JetPack {jetpack or 'unknown'}" if l4t else
                       "L4T release unknown (no /etc/nv_tegra_release, no nvidia-l4t-core package)"))
    gen = generation(l4t, jetpack)
    lines.append(_line("jetpack", f"JetPack {gen.jetpack}: Python {gen.python}, TensorRT {gen.tensorrt}, Ray {gen.ray}"
                       if gen else "generation unknown: JetPack 5 (L4T R35), 6 (R36) and 7 (R38, R39) are known"))
    _safe(lines, "trt module", lambda: tensorrt_lines(gen, label=_line))
    path = which("tegrastats")
    lines.append(_line("tegrastats", path or "MISSING: not on PATH; Jetson telemetry (GPU load, power rails) is off"))
    path = which(NVPMODEL)
    if path:
        try:
            modes = modes_text(NvpModel().modes())
        except Exception as exc:  # noqa: BLE001 - a UserError naming the file
            modes = str(exc)
        lines.append(_line("power mode", f"{current_mode_text() or 'unknown'}; modes: {modes}"))
        lines.append(_line("nvpmodel", f"{path}; {_root_text([NVPMODEL], 'power_mode', missing)}"))
    else:
        lines.append(_line("nvpmodel", "MISSING: not on PATH; power_mode is refused"))
    path = which(JETSON_CLOCKS)
    lines.append(_line("jetson_clocks", f"{path}; {_root_text([JETSON_CLOCKS], 'clocks: max', missing)}" if path else
                       "MISSING: not on PATH; clocks: max is refused"))
    node = find_gpu_node()
    if node is None:
        lines.append(_line("gpu devfreq", "MISSING: no GPU node in /sys/class/devfreq; "
                                          "clocks: {gpu_mhz: N} is refused"))
    else:
        freqs = sorted(int(v) for v in read_text(node / "available_frequencies").split() if v.isdigit())
        lo, hi = read_text(node / "min_freq"), read_text(node / "max_freq")
        now = f"{int(lo) / 1e6:g}-{int(hi) / 1e6:g} MHz" if lo.isdigit() and hi.isdigit() else "unknown"
        listed = ", ".join(str(f // 1_000_000) for f in freqs) or "none listed"
        lines.append(_line("gpu devfreq", f"{node.name}: now {now}; clocks: {{gpu_mhz: N}} takes {listed} MHz"))
        writes = _root_text(["tee", str(node / "max_freq")], "clocks: {gpu_mhz: N}", missing)
        lines.append(_line("", writes))
        if missing and missing[-1].endswith("/max_freq"):
            missing.append(missing[-1][: -len("max_freq")] + "min_freq")
    lines.append(_line("memory clock", "mem_mhz is refused on a Jetson (clocks: max pins it with jetson_clocks)"))
    if missing:
        lines.append(_line("sudoers", f"e.g. in /etc/sudoers.d/trb (visudo -f): {getpass.getuser()} ALL=(root) "
                                      f"NOPASSWD: {', '.join(missing)}"))
    return lines


def _cap_sys_admin() -> bool:
    """CAP_SYS_ADMIN (bit 21) in this process's effective capabilities."""
    for line in read_text(Path("/proc/self/status")).splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 21 & 1)
    return False


def _dgpu() -> List[str]:
    from .clocks import SMI, NvidiaSmiClocks
    from .mps import CONTROL, daemon_pids

    lines = [_line("platform", "desktop or datacenter NVIDIA GPU")]
    path = which(SMI)
    if not path:
        return lines + [_line("nvidia-smi", "MISSING: not on PATH (the NVIDIA driver's tool); clock modes are refused")]
    lines.append(_line("nvidia-smi", path))
    try:
        table = NvidiaSmiClocks(0).supported()
        gpus = sorted({g for gs in table.values() for g in gs})
        lines.append(_line("gpu clocks", f"GPU 0: {len(gpus)} graphics clocks {gpus[0]}..{gpus[-1]} MHz; memory "
                                         f"{', '.join(map(str, sorted(table, reverse=True)))} MHz"))
    except Exception as exc:  # noqa: BLE001 - a UserError in words
        lines.append(_line("gpu clocks", f"FIX: {exc}"))
    if os.geteuid() != 0:
        locks = "FIX: not root: clocks: max / {gpu_mhz: N} are refused (nvidia-smi -lgc needs root)"
    elif not _cap_sys_admin():
        locks = "FIX: root without CAP_SYS_ADMIN (a container?): clock locks will be refused"
    else:
        locks = "allowed (root with CAP_SYS_ADMIN; not tried: doctor changes nothing)"
    lines.append(_line("clock locks", locks))
    pids = daemon_pids()
    if which(CONTROL):
        mps = f"{which(CONTROL)}" + (f"; a daemon runs (pid {', '.join(map(str, pids))}), not started by trb"
                                     if pids else "; no daemon running (mps: true starts one)")
    else:
        mps = "MISSING: nvidia-cuda-mps-control not on PATH; mps: true is refused"
    lines.append(_line("mps", mps))
    return lines


def journal_lines(restore: bool = False) -> List[str]:
    """Machine changes a killed run left behind (the node's journal): listed with the way
    to undo them, or undone with ``restore``; a journal that cannot be read is named with
    what to check and how to clear it (never passed over, never removed). Every problem
    line holds ``FIX:`` (``trb doctor --restore`` exits 1 on one). Never raises."""
    from . import journal
    from ..errors import UserError

    try:
        docs = journal.found()
    except UserError as exc:  # the folder cannot be listed
        return [_line("journal", f"FIX: {exc.message}")]
    except Exception as exc:  # noqa: BLE001
        return [_line("journal", f"FIX: could not be read ({exc.__class__.__name__}: {exc})")]
    lines = [_line("journal", f"FIX: {journal.unreadable(j).message}") for j in docs if "error" in j]
    left = [j for j in docs if "error" not in j and not j["alive"]]
    if not left and not lines:
        return [_line("journal", f"nothing left changed by a killed run ({journal.journal_dir()})")]
    for j in left:
        if not restore:
            lines.append(_line("journal", f"FIX: {journal.describe(j)}: trb doctor --restore puts it back"))
            continue
        problems = journal.restore(j)
        lines.append(_line("journal", f"restored: {journal.describe(j)}" if not problems else
                           f"FIX: not restored: {'; '.join(problems)} ({j['path']}): fix by hand, then remove it"))
    return lines


def doctor_lines() -> List[str]:
    """The report, one line each: platform, and per platform the tools and permissions
    the clock, power and MPS modes need. Never raises."""
    from .platform import detect_platform

    lines: List[str] = []
    try:
        plat = detect_platform()
    except Exception as exc:  # noqa: BLE001
        return [_line("platform", f"could not be detected ({exc})")]
    if plat["kind"] == "jetson":
        _safe(lines, "jetson", lambda: _jetson(plat["board"]))
    elif plat["kind"] == "dgpu":
        _safe(lines, "gpu", _dgpu)
    elif plat.get("driver"):  # nvidia-smi is here, the driver does not answer it
        from .platform import driver_text

        lines.append(_line("platform", "CPU only: an NVIDIA driver is installed but does not answer"))
        lines.append(_line("nvidia-smi", f"FIX: {driver_text(plat['driver'])}"))
        lines.append(_line("runs here", "ONNX Runtime on the CPU; GPU backends (tensorrt, torch on cuda, ONNX "
                                        "Runtime's CUDA provider), clocks, power_mode and mps are refused until "
                                        "the driver answers"))
    else:
        lines.append(_line("platform", "CPU only (no NVIDIA GPU found)"))
        lines.append(_line("runs here", "ONNX Runtime on the CPU; clocks, power_mode and mps are "
                                      "refused"))
    return lines
